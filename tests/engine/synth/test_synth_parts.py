"""The synth's pure parts: tempo maths, prompt schedule, harmony, arrangement, analysis helpers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad

from engine.music.interpret import resolve
from engine.music.prompt import Prompt
from engine.synth.analysis import _peak, estimate_bpm, onset_rate, spectral_centroid
from engine.synth.arrange import BarContext, arrange
from engine.synth.bus import Bus
from engine.synth.effects import soft_limit
from engine.synth.genres import SPECS
from engine.synth.harmony import chord_for
from engine.synth.schedule import PromptSchedule
from engine.synth.tempo import BarGrid, bar_seconds, beat_seconds
from engine.synth.wavetable import ToneBank

SR = 24000


@pytest.mark.parametrize(("bpm0", "bpm1"), [(120.0, 120.0), (124.0, 140.0), (174.0, 90.0)])
def test_beat_times_integrate_a_tempo_linear_in_beats(bpm0: float, bpm1: float) -> None:
    for x in (0.5, 1.7, 4.0):
        exact, _ = quad(lambda u: 60.0 / (bpm0 + (bpm1 - bpm0) * u / 4.0), 0.0, x)
        assert float(beat_seconds(x, bpm0, bpm1)) == pytest.approx(exact, rel=1e-9)
    assert float(beat_seconds(5.0, bpm0, bpm1)) == pytest.approx(bar_seconds(bpm0, bpm1) + 60.0 / bpm1)


def test_bar_grid_maps_the_last_beat_onto_the_next_downbeat() -> None:
    g = BarGrid(SR, 124.0, 132.0)
    assert g.offset(0.0) == 0 and g.offset(4.0) == g.samples
    assert g.samples == round(bar_seconds(124.0, 132.0) * SR)
    offs = g.offsets(np.arange(0.0, 4.01, 1.0))
    assert np.all(np.diff(np.diff(offs)) < 0)  # speeding up: beats get shorter


def test_schedule_glides_and_switches_at_the_landing_bar() -> None:
    sched = PromptSchedule(resolve(Prompt.of("house")))
    plans = [sched.plan(0), sched.plan(1)]
    sched.schedule(resolve(Prompt.of("techno", bpm=132.0, section="build", ramp_bars=2)), land=2, ramp=2)
    plans += [sched.plan(b) for b in range(2, 6)]
    assert [p.start.bpm for p in plans] == [124.0, 124.0, 124.0, 128.0, 132.0, 132.0]
    assert [p.end.bpm for p in plans] == [124.0, 124.0, 128.0, 132.0, 132.0, 132.0]
    assert [p.section for p in plans] == ["drop", "drop", "build", "build", "build", "build"]
    assert [p.bars_in_section for p in plans[2:]] == [0, 1, 2, 3]
    assert plans[3].start.weights[0] == pytest.approx(0.5)


def test_schedule_replaces_later_pending_changes_and_flags_the_impact() -> None:
    sched = PromptSchedule(resolve(Prompt.of("house", section="build")))
    sched.schedule(resolve(Prompt.of("house", section="breakdown")), land=3, ramp=0)
    sched.schedule(resolve(Prompt.of("house", section="intro")), land=5, ramp=0)
    sched.schedule(resolve(Prompt.of("house", section="drop")), land=4, ramp=0)  # replaces the bar-5 change
    plans = [sched.plan(b) for b in range(7)]
    assert [p.section for p in plans] == ["build"] * 3 + ["breakdown"] + ["drop"] * 3
    assert [p.impact for p in plans] == [False] * 4 + [True, False, False]


def test_a_jump_with_zero_ramp_lands_exactly_on_its_bar() -> None:
    sched = PromptSchedule(resolve(Prompt.of("house")))
    sched.schedule(resolve(Prompt.of("house", bpm=100.0, ramp_bars=0)), land=1, ramp=0)
    p0, p1 = sched.plan(0), sched.plan(1)
    assert (p0.start.bpm, p0.end.bpm, p1.start.bpm) == (124.0, 124.0, 100.0)


def test_chords_follow_the_mode_and_voicings_stay_in_register() -> None:
    am = chord_for(9, "minor", 0, 3)
    a = chord_for(9, "major", 0, 3)
    assert am.tones == (9, 0, 4) and a.tones == (9, 1, 4)
    assert all(57 <= m < 69 for m in am.voicing(57))
    assert chord_for(9, "minor", 5, 4).tones == (5, 9, 0, 4)  # VI7 of A minor: F A C E
    with pytest.raises(ValueError, match="mode"):
        chord_for(9, "dorian", 0, 3)


def _ctx(section: str, energy: float = 0.8, genre: int = 2) -> BarContext:
    return BarContext(
        bar=0, energy=energy, brightness=0.5, section=section, build=0.9, key=9, mode="minor", degree=0,
        chord_start=True, chord_bars_left=1, fresh=True, seed=0, genre_index=genre,
    )  # fmt: skip


def test_arrangement_rules_per_section() -> None:
    spec = SPECS[2]  # trance: lead, arp, pad, rolling bass
    rng = np.random.default_rng(0)
    hits, notes = arrange(spec, _ctx("drop"), rng)
    assert {"kick", "clap", "open_hat"} <= {h.voice for h in hits}
    assert {n.timbre for n in notes} >= {"roll_bass", "supersaw", "pluck", "saw_lead"}
    hits, notes = arrange(spec, _ctx("breakdown"), rng)
    assert hits == [] and not any(n.bus == "bass" for n in notes)
    assert any(n.timbre == "saw_lead" for n in notes)
    hits, notes = arrange(spec, _ctx("intro"), rng)
    assert "clap" not in {h.voice for h in hits} and not any(n.timbre == "saw_lead" for n in notes)
    hits, _ = arrange(spec, _ctx("build"), rng)
    rolls = [h for h in hits if h.voice == "snare"]
    assert len(rolls) >= 16  # sixteenths plus 32nds near the peak of the build


def test_energy_thins_the_drums() -> None:
    spec = SPECS[0]
    low, _ = arrange(spec, _ctx("drop", energy=0.1, genre=0), np.random.default_rng(0))
    high, _ = arrange(spec, _ctx("drop", energy=0.95, genre=0), np.random.default_rng(0))
    assert len(high) > 2 * len(low)


def test_bus_carries_tails_into_the_next_bar_and_declicks_gain_jumps() -> None:
    bus = Bus(1, declick=10)
    tail = np.ones(15, dtype=np.float32)
    first = bus.mix(10, [(5, tail)])
    second = bus.mix(10, [])
    assert first.tolist() == [0.0] * 5 + [1.0] * 5 and second.tolist() == [1.0] * 10
    bus.gain(1.0, 1.0, 10)
    curve = bus.gain(0.0, 0.0, 10)
    assert isinstance(curve, np.ndarray) and curve[0] == pytest.approx(1.0) and curve[-1] < 0.15


def test_loops_tile_seamlessly_at_the_requested_pitch() -> None:
    bank = ToneBank(SR)
    x = bank.tone("saw", 110.0, SR, start=123)
    spec = np.abs(np.fft.rfft(x))
    assert np.argmax(spec) == pytest.approx(110, abs=1)
    loop = bank.loop("saw", 110.0)
    assert np.array_equal(x[: len(loop)], np.roll(loop, -123)[: len(loop)])  # a periodic tiling
    assert abs(loop[0] - loop[-1]) <= np.max(np.abs(np.diff(loop)))  # the seam is like any other step
    sine = bank.tone("sine", 440.0, SR)
    assert np.max(np.abs(np.diff(sine))) <= 2 * np.pi * 440 / SR * 1.01  # no hard edges anywhere


def test_soft_limit_keeps_small_signals_and_bounds_peaks() -> None:
    x = np.array([0.1, -0.5, 0.79, 1.5, -3.0, 40.0], dtype=np.float32)
    y = soft_limit(x)
    assert np.array_equal(y[:3], x[:3])
    assert np.all(np.abs(y) <= 1.0) and np.all(np.sign(y) == np.sign(x))


def _click_track(bpm: float, seconds: float) -> np.ndarray:
    x = np.zeros(int(seconds * SR), dtype=np.float32)
    click = (np.sin(2 * np.pi * 1000 * np.arange(240) / SR) * np.exp(-np.arange(240) / 40)).astype(np.float32)
    for t in np.arange(0.0, seconds - 0.02, 60.0 / bpm):
        i = int(t * SR)
        x[i : i + 240] += click
    return x


@pytest.mark.parametrize("bpm", [72.0, 124.0, 174.0])
def test_estimate_bpm_finds_a_click_track_tempo(bpm: float) -> None:
    assert estimate_bpm(_click_track(bpm, 12.0), SR) == pytest.approx(bpm, rel=0.01)


def test_analysis_helpers() -> None:
    t = np.arange(SR) / SR
    assert spectral_centroid(np.sin(2 * np.pi * 440 * t), SR) == pytest.approx(440, rel=0.1)
    assert spectral_centroid(np.sin(2 * np.pi * 3000 * t), SR) > 2500
    assert onset_rate(_click_track(120.0, 6.0), SR) == pytest.approx(2.0, rel=0.1)
    with pytest.raises(ValueError, match="mono"):
        estimate_bpm(np.zeros((2, SR)), SR)
    with pytest.raises(ValueError, match="silent"):
        estimate_bpm(np.zeros(SR * 4), SR)


def test_the_bar_lag_refinement_stays_in_its_window() -> None:
    # The window's largest value at its edge is no peak: a parabola through it and its neighbours put the
    # "vertex" 20 lags away, and the tempo estimate at 666 bpm (seen on a generated synthwave segment).
    acf = np.zeros(64)
    acf[34:42] = [5.0, 3.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4]  # falling through the window 38 +- 2.5 (lags 35..41)
    assert 35 <= _peak(acf, 38.0, 2.5) <= 41
    acf[:] = 0.0
    acf[38:41] = [2.0, 4.0, 3.0]  # a real peak at 39: refined between its neighbours
    assert 39 < _peak(acf, 38.0, 2.5) < 39.5


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.05, 0.6))
def test_estimate_bpm_keeps_to_its_range(seed: int, density: float) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(SR * 6) * (rng.random(SR * 6) < density / 100)  # sparse random clicks, 6 s
    assert 60.0 <= estimate_bpm(x.astype(np.float32), SR) <= 200.0
