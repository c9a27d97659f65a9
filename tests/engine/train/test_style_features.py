"""The style judge's features: level invariance, key invariance of the harmony part, and their error messages."""

from __future__ import annotations

import numpy as np
import pytest

from engine.music.prompt import Prompt
from engine.synth.source import StyleSynth, SynthConfig
from engine.train.style_features import FEATURE_DIM, HARMONY_DIM, MIN_SECONDS, style_features

SR = 24000


def synth(style: str, seconds: float, seed: int = 0) -> np.ndarray:
    s = StyleSynth(SynthConfig(seed=seed), Prompt.of(style))
    parts, n = [], 0
    while n < seconds * SR:
        parts.append(s.next_chunk().pcm)
        n += len(parts[-1])
    return np.concatenate(parts)[: round(seconds * SR)]  # (samples,)


def chord(root_hz: float, seconds: float = 4.0) -> np.ndarray:
    """A minor triad with a few harmonics on `root_hz`."""
    t = np.arange(round(seconds * SR)) / SR
    out = np.zeros_like(t)
    for ratio in (1.0, 2 ** (3 / 12), 2 ** (7 / 12)):
        for h in (1, 2, 3):
            out += np.sin(2 * np.pi * root_hz * ratio * h * t) / h
    return 0.1 * out


def test_features_do_not_change_with_playback_level() -> None:
    x = synth("house", 6.0)
    f = style_features(x, SR)
    assert f.shape == (FEATURE_DIM,) and f.dtype == np.float32 and np.all(np.isfinite(f))
    for gain in (0.25, 0.5, 2.0):
        np.testing.assert_allclose(style_features(gain * x, SR), f, rtol=1e-4, atol=1e-4)
    other = style_features(synth("ambient", 6.0), SR)
    assert np.abs(other - f).max() > 0.5  # and the features do tell two genres apart


def test_harmony_part_is_key_invariant_but_hears_the_chord() -> None:
    a = style_features(chord(220.0), SR)[-HARMONY_DIM:]
    c = style_features(chord(220.0 * 2 ** (3 / 12)), SR)[-HARMONY_DIM:]  # the same chord a minor third up
    np.testing.assert_allclose(a, c, atol=0.05)  # harmonics fall on slightly different bins
    major, minor = a[0], a[1]
    assert minor > major  # a minor triad matches the minor key profile better
    t = np.arange(4 * SR) / SR
    single = style_features(0.1 * np.sin(2 * np.pi * 220.0 * t), SR)[-HARMONY_DIM:]
    assert np.abs(single - a).max() > 0.1  # one pure tone is not a triad


def test_bad_input_raises_clear_errors() -> None:
    with pytest.raises(ValueError, match="too short"):
        style_features(np.zeros(round(SR * (MIN_SECONDS - 0.5))), SR)
    with pytest.raises(ValueError, match="mono"):
        style_features(np.zeros((2, 3 * SR)), SR)
    x = synth("techno", 3.0)
    x[100] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        style_features(x, SR)
    silent = style_features(np.zeros(3 * SR), SR)  # silence is valid input, not an error
    assert np.all(np.isfinite(silent))
