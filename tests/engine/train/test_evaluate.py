"""`concert eval`'s pure parts: the octave-folded tempo error, on numbers and on real synth audio."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.music.prompt import Prompt
from engine.synth.analysis import estimate_bpm
from engine.synth.source import StyleSynth, SynthConfig
from engine.train.evaluate import tempo_error

tempi = st.floats(min_value=40.0, max_value=240.0, allow_nan=False)


@given(tempi, tempi)
def test_tempo_error_is_the_nearest_octave_distance(estimate: float, requested: float) -> None:
    err = tempo_error(estimate, requested)
    assert err == pytest.approx(
        min(abs(estimate - requested), abs(2 * estimate - requested), abs(estimate / 2 - requested))
    )
    assert 0 <= err <= abs(estimate - requested)
    assert tempo_error(requested, requested) == 0
    assert tempo_error(2 * requested, requested) == pytest.approx(0, abs=1e-9)  # a double-time reading is right


def test_tempo_error_still_counts_a_wrong_tempo() -> None:
    assert tempo_error(100.0, 120.0) == pytest.approx(20.0)
    assert tempo_error(174.0, 120.0) == pytest.approx(33.0)  # 174 / 2 = 87 is 33 away, 174 itself 54


@pytest.mark.parametrize("bad", [0.0, -90.0, float("nan")])
def test_tempo_error_refuses_non_tempi(bad: float) -> None:
    with pytest.raises(ValueError, match="tempi must be > 0"):
        tempo_error(bad, 120.0)
    with pytest.raises(ValueError, match="tempi must be > 0"):
        tempo_error(120.0, bad)


def test_folding_forgives_the_estimators_octave_reading_of_real_hip_hop() -> None:
    synth = StyleSynth(SynthConfig(seed=3), Prompt.of("hip-hop", bpm=84))
    pcm = np.concatenate([synth.next_chunk().pcm for _ in range(6)])  # (6 bars,)
    estimate = estimate_bpm(pcm, synth.sample_rate)
    assert tempo_error(estimate, 84.0) < 2.0
    assert tempo_error(estimate, 84.0 * 1.25) > 8.0  # a tempo 25 % off is not forgiven
