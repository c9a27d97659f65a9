"""StyleSynth behaviour: protocol, determinism, genres, controls, sections, glides, joins, levels."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from concert.bench.synth import bench_synth
from engine.music.prompt import Prompt, StyleWeight
from engine.music.styles import GENRES, UnknownStyleError, genre
from engine.source import AudioSource, Chunk
from engine.synth.analysis import band_rms, estimate_bpm, onset_rate, rms_db, spectral_centroid
from engine.synth.source import StyleSynth, SynthConfig
from engine.synth.tempo import bar_seconds

SR = 24000
DRUM_GENRES = [g.id for g in GENRES if g.id != "ambient"]


def synth(prompt: Prompt | str, seed: int = 0) -> StyleSynth:
    return StyleSynth(SynthConfig(sample_rate=SR, seed=seed), Prompt.of(prompt) if isinstance(prompt, str) else prompt)


def chunks(s: StyleSynth, bars: int) -> list[Chunk]:
    return [s.next_chunk() for _ in range(bars)]


def pcm(s: StyleSynth, bars: int, skip: int = 0) -> np.ndarray:
    cs = chunks(s, bars + skip)[skip:]
    return np.concatenate([c.pcm for c in cs])


def test_implements_the_audio_source_protocol_with_a_bar_clock() -> None:
    s = synth("house")
    assert isinstance(s, AudioSource)
    assert s.sample_rate == SR and s.next_bar == 0
    start = 0
    for bar in range(3):
        c = s.next_chunk()
        assert c.pcm.dtype == np.float32 and c.pcm.ndim == 1 and c.sample_rate == SR
        assert c.bar_starts == ((0, bar),)
        assert c.start_sample == start
        assert len(c.pcm) == round(bar_seconds(124.0, 124.0) * SR)
        start += len(c.pcm)
        assert s.next_bar == bar + 1
        np_ = c.now_playing
        assert (np_.genre, np_.bpm, np_.section) == ("house", 124.0, "drop")
        assert np_.energy == pytest.approx(genre("house").energy)
        assert np_.mix == (("house", 1.0),)


def test_same_seed_and_prompt_sequence_gives_bit_identical_audio() -> None:
    def run(seed: int) -> np.ndarray:
        s = synth("techno", seed=seed)
        out = [s.next_chunk().pcm]
        s.set_prompt(Prompt(mix=(StyleWeight("techno", 0.5), StyleWeight("trance", 0.5)), ramp_bars=2))
        out += [s.next_chunk().pcm for _ in range(2)]
        s.set_prompt(Prompt.of("trance", section="build"), at_bar=4)
        out += [s.next_chunk().pcm for _ in range(3)]
        return np.concatenate(out)

    a, b, c = run(0), run(0), run(1)
    assert np.array_equal(a, b)
    assert len(a) == len(c) and not np.allclose(a, c)


@pytest.mark.parametrize("style", DRUM_GENRES)
def test_each_drum_genre_plays_at_its_own_tempo(style: str) -> None:
    g = genre(style)
    x = pcm(synth(style), bars=max(4, round(12 * g.bpm / 240)))
    bpm = estimate_bpm(x, SR, lo=g.bpm_min - 20, hi=g.bpm_max + 20)
    assert bpm == pytest.approx(g.bpm, rel=0.02)


def test_genres_sound_measurably_different() -> None:
    features = {}
    for g in GENRES:
        x = pcm(synth(g.id), bars=4)
        low = band_rms(x, SR, 30, 150)
        features[g.id] = np.array([np.log(spectral_centroid(x, SR)), np.log(low + 1e-6), rms_db(x) / 10])
    ids = list(features)
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            assert np.linalg.norm(features[a] - features[b]) > 0.05, (a, b)


def test_brightness_raises_the_spectral_centroid() -> None:
    dark = pcm(synth(Prompt.of("house", brightness=0.1)), bars=4, skip=1)
    bright = pcm(synth(Prompt.of("house", brightness=0.9)), bars=4, skip=1)
    assert spectral_centroid(bright, SR) > 1.4 * spectral_centroid(dark, SR)


@pytest.mark.parametrize("style", ["house", "techno", "drum-and-bass"])
def test_energy_raises_loudness_and_onset_density(style: str) -> None:
    calm = pcm(synth(Prompt.of(style, energy=0.15)), bars=6, skip=1)
    wild = pcm(synth(Prompt.of(style, energy=0.95)), bars=6, skip=1)
    assert rms_db(wild) > rms_db(calm) + 2.0
    assert onset_rate(wild, SR) > 1.3 * onset_rate(calm, SR)


def test_breakdown_has_far_less_kick_than_the_drop() -> None:
    for style in ("house", "trance", "hip-hop"):
        drop = pcm(synth(Prompt.of(style, section="drop")), bars=4, skip=1)
        breakdown = pcm(synth(Prompt.of(style, section="breakdown")), bars=4, skip=1)
        assert band_rms(breakdown, SR, 30, 120) < 0.15 * band_rms(drop, SR, 30, 120), style


def test_intro_is_sparser_than_the_drop() -> None:
    intro = pcm(synth(Prompt.of("trance", section="intro")), bars=4, skip=1)
    drop = pcm(synth(Prompt.of("trance", section="drop")), bars=4, skip=1)
    assert rms_db(intro) < rms_db(drop) - 1.0
    assert onset_rate(intro, SR) < onset_rate(drop, SR)


def test_build_grows_and_the_drop_lands_with_an_impact() -> None:
    s = synth(Prompt.of("house", section="build"))
    bars = [c.pcm for c in chunks(s, 8)]
    first, last = bars[0], bars[7]
    assert onset_rate(last, SR) > onset_rate(first, SR)  # the roll thickens
    assert spectral_centroid(last, SR) > 1.2 * spectral_centroid(first, SR)  # the filter opens, the riser climbs
    s.set_prompt(Prompt.of("house", section="drop"))
    impact, after = s.next_chunk(), s.next_chunk()
    assert impact.now_playing.section == "drop"
    head = round(0.3 * SR)
    assert rms_db(impact.pcm[:head]) > rms_db(after.pcm[:head]) + 1.0


def test_tempo_glides_over_ramp_bars_without_a_jump() -> None:
    s = synth("house")
    old = [len(c.pcm) for c in chunks(s, 2)]
    land = s.set_prompt(Prompt.of("house", bpm=140.0, ramp_bars=4))
    assert land == 2
    cs = chunks(s, 6)
    lengths = [len(c.pcm) for c in cs]
    long, short = round(bar_seconds(124, 124) * SR), round(bar_seconds(140, 140) * SR)
    assert old == [long, long]
    ramp = lengths[:4]
    assert long > ramp[0] and ramp[-1] > short  # strictly between the old and new bar lengths
    assert all(a > b for a, b in zip(ramp, ramp[1:], strict=False))  # and falling monotonically
    steps = np.diff([long] + ramp + [short])
    assert np.max(np.abs(steps)) < 0.4 * (long - short)  # no single jump carries the change
    assert lengths[4:] == [short, short]
    assert [round(c.now_playing.bpm) for c in cs] == [124, 128, 132, 136, 140, 140]


def test_weights_glide_and_the_blend_sits_between_its_genres() -> None:
    def centroid(prompt: Prompt) -> float:
        return spectral_centroid(pcm(synth(prompt), bars=4, skip=1), SR)

    house, ambient = centroid(Prompt.of("house")), centroid(Prompt.of("ambient"))
    blend_prompt = Prompt(mix=(StyleWeight("house", 0.5), StyleWeight("ambient", 0.5)))
    blend = centroid(blend_prompt)
    assert min(house, ambient) < blend < max(house, ambient)
    c = synth(blend_prompt).next_chunk()
    assert dict(c.now_playing.mix) == pytest.approx({"house": 0.5, "ambient": 0.5})

    s = synth("house")
    chunks(s, 1)
    s.set_prompt(Prompt.of("ambient", ramp_bars=4))
    cs = chunks(s, 6)
    mixes = [dict(c.now_playing.mix) for c in cs]
    assert [round(m.get("house", 0.0), 2) for m in mixes] == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    centroids = [spectral_centroid(c.pcm, SR) for c in cs]
    assert all(a > b for a, b in zip(centroids[:4], centroids[1:5], strict=True))  # darker bar by bar


def test_a_bad_prompt_raises_and_the_old_style_keeps_playing() -> None:
    s, ref = synth("lofi"), synth("lofi")
    chunks(s, 1)
    chunks(ref, 1)
    with pytest.raises(UnknownStyleError, match="polka"):
        s.set_prompt(Prompt.of("polka"))
    assert s.next_bar == 1
    a, b = s.next_chunk(), ref.next_chunk()
    assert a.now_playing.genre == "lofi"
    assert np.array_equal(a.pcm, b.pcm)


def test_landing_bars_and_pending_changes() -> None:
    s = synth("house")
    chunks(s, 2)
    assert s.set_prompt(Prompt.of("house", section="breakdown"), at_bar=0) == 2  # already rendered: next bar
    assert s.set_prompt(Prompt.of("house", section="build"), at_bar=6) == 6
    assert s.set_prompt(Prompt.of("house", section="intro", mode="major"), at_bar=4) == 4  # drops the bar-6 change
    sections = [c.now_playing.section for c in chunks(s, 6)]
    assert sections == ["breakdown", "breakdown", "intro", "intro", "intro", "intro"]
    with pytest.raises(ValueError, match="at_bar"):
        s.set_prompt(Prompt.of("house"), at_bar=1.5)  # type: ignore[arg-type]


def test_set_prompt_is_safe_from_another_thread() -> None:
    s = synth("synthwave")
    errors: list[BaseException] = []
    landed: list[int] = []

    def steer() -> None:
        try:
            for i in range(40):
                landed.append(s.set_prompt(Prompt.of("synthwave", energy=(i % 10) / 10, ramp_bars=1)))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=steer)
    t.start()
    got = chunks(s, 6)
    t.join()
    assert not errors
    assert landed == sorted(landed) and all(0 <= b <= 6 for b in landed)
    assert [c.bar_starts[0][1] for c in got] == list(range(6))


def test_no_clicks_where_bars_join() -> None:
    for prompt in (
        Prompt.of("ambient", section="breakdown"),
        Prompt.of("trance", section="breakdown"),
        Prompt.of("lofi"),
        Prompt.of("house", bpm=100.0, ramp_bars=0),
    ):
        s = synth(prompt)
        cs = chunks(s, 2)
        s.set_prompt(Prompt.of(prompt.dominant(), bpm=150.0, ramp_bars=3))  # joins inside a tempo glide too
        cs += chunks(s, 4)
        x = np.concatenate([c.pcm for c in cs])
        d = np.abs(np.diff(x))
        joins = np.cumsum([len(c.pcm) for c in cs])[:-1] - 1
        inner = np.delete(d, joins)
        assert d[joins].max() <= np.percentile(inner, 99.9), prompt.dominant()


def test_section_and_genre_changes_do_not_click() -> None:
    s = synth("trance")
    cs = chunks(s, 2)
    for p in (
        Prompt.of("trance", section="breakdown", ramp_bars=0),
        Prompt.of("hip-hop", section="drop", ramp_bars=0),
        Prompt.of("ambient", ramp_bars=0),
    ):
        s.set_prompt(p)
        cs += chunks(s, 2)
    x = np.concatenate([c.pcm for c in cs])
    d = np.abs(np.diff(x))
    joins = np.cumsum([len(c.pcm) for c in cs])[:-1] - 1
    assert d[joins].max() <= np.max(np.delete(d, joins))


@pytest.mark.parametrize("style", [g.id for g in GENRES])
def test_levels_are_finite_limited_and_sensible(style: str) -> None:
    x = pcm(synth(Prompt.of(style, energy=1.0, brightness=1.0)), bars=4, skip=1)
    assert np.all(np.isfinite(x))
    assert np.max(np.abs(x)) <= 1.0
    drop = pcm(synth(style), bars=4, skip=1)
    assert -21.0 <= rms_db(drop) <= -11.0


def test_bench_returns_sane_numbers() -> None:
    result = bench_synth(seconds=3.0, seed=1)
    assert set(result) == {"x_realtime", "seconds_rendered", "genres"}
    assert result["genres"] == 8
    assert result["seconds_rendered"] >= 3.0
    assert result["x_realtime"] > 0
    with pytest.raises(ValueError, match="seconds"):
        bench_synth(seconds=0)


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        SynthConfig(sample_rate=100)
    with pytest.raises(ValueError, match="seed"):
        SynthConfig(seed=-1)
    with pytest.raises(ValueError, match="key"):
        SynthConfig(key=12)
