"""The steered training corpus: determinism, seeds, per-frame labels, Steering, resume and its error messages."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.music.arrangement import Arrangement
from engine.music.prompt import SECTIONS
from engine.music.styles import GENRE_IDS, GENRES
from engine.train.corpus import (
    MANIFEST,
    SPLITS,
    Corpus,
    CorpusConfig,
    CorpusError,
    Labels,
    Steering,
    build_corpus,
    render_piece,
)

TINY = CorpusConfig(train_hours=16 / 3600, piece_seconds=8.0, holdout_pieces=1)  # 2 train pieces + 1 held out
# a short schedule so 24 s pieces cross several phrase and song boundaries (the live Schedule needs round_bars > 2)
STEERED = CorpusConfig(train_hours=16 / 3600, piece_seconds=24.0, holdout_pieces=1, round_bars=3, song_phrases=2)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus") / "c"
    build_corpus(folder, TINY, progress=False)
    return folder


@pytest.fixture(scope="module")
def corpus(corpus_dir: Path) -> Corpus:
    return Corpus(corpus_dir)


def _piece_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in (".npy", ".npz"))


# --- config and seeds ---------------------------------------------------------------------------------------------


def test_config_counts_pieces() -> None:
    assert TINY.train_pieces == 2
    assert TINY.count("train") == 2 and TINY.count("holdout") == 1
    assert CorpusConfig(train_hours=10.0, piece_seconds=90.0).train_pieces == 400


@pytest.mark.parametrize(
    "kwargs",
    [
        {"train_hours": 0.0},
        {"train_hours": -1.0},
        {"piece_seconds": 3.9},
        {"holdout_pieces": 0},
        {"sample_rate": 24000, "hop_length": 7},
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        CorpusConfig(**kwargs)  # type: ignore[arg-type]


def test_train_and_holdout_seeds_never_collide() -> None:
    config = CorpusConfig(holdout_pieces=64)  # 400 train pieces
    train = {config.piece_seed("train", i) for i in range(config.train_pieces)}
    holdout = {config.piece_seed("holdout", i) for i in range(config.holdout_pieces)}
    assert len(train) == config.train_pieces  # no two pieces of a split share a seed either
    assert len(holdout) == config.holdout_pieces
    assert not train & holdout
    assert all(0 <= s < 2**31 for s in train | holdout)


def test_piece_seeds_are_stable_and_depend_on_the_corpus_seed() -> None:
    a, b = CorpusConfig(seed=0), CorpusConfig(seed=1)
    assert a.piece_seed("train", 3) == CorpusConfig(seed=0).piece_seed("train", 3)
    assert a.piece_seed("train", 3) != b.piece_seed("train", 3)
    assert a.piece_seed("train", 0) != a.piece_seed("holdout", 0)


def test_piece_seed_rejects_an_unknown_split() -> None:
    with pytest.raises(ValueError, match="split"):
        TINY.piece_seed("test", 0)


# --- build, determinism, resume -----------------------------------------------------------------------------------


def test_build_writes_every_piece_and_the_manifest(corpus_dir: Path, corpus: Corpus) -> None:
    raw = json.loads((corpus_dir / MANIFEST).read_text())
    assert CorpusConfig(**raw["config"]) == TINY
    assert raw["pieces"] == {"train": ["train-00000", "train-00001"], "holdout": ["holdout-00000"]}
    assert list(corpus) == ["train-00000", "train-00001", "holdout-00000"]
    assert corpus.config == TINY
    assert corpus.hours == pytest.approx({"train": 16 / 3600, "holdout": 8 / 3600})
    names = {p.name for p in corpus_dir.iterdir()}
    assert names == {MANIFEST} | {f"{n}.{ext}" for n in corpus for ext in ("npy", "npz")}  # no temp files left
    for name in corpus:
        audio = corpus.audio(name)
        assert audio.dtype == np.int16 and audio.shape == (round(TINY.piece_seconds * TINY.sample_rate),)
        assert np.abs(audio.astype(np.int32)).max() > 1000  # music, not silence


def test_pieces_differ_from_each_other(corpus: Corpus) -> None:
    a, b, h = (np.asarray(corpus.audio(n)) for n in corpus)
    assert not np.array_equal(a, b) and not np.array_equal(a, h) and not np.array_equal(b, h)


def test_build_is_deterministic_across_folders(tmp_path: Path, corpus_dir: Path) -> None:
    other = build_corpus(tmp_path / "again", TINY, progress=False)
    for name in other:
        assert (tmp_path / "again" / f"{name}.npy").read_bytes() == (corpus_dir / f"{name}.npy").read_bytes()
        mine, theirs = other.labels(name), Labels.load(corpus_dir / f"{name}.npz")
        for field in Labels.__dataclass_fields__:
            a, b = getattr(mine, field), getattr(theirs, field)
            assert a.dtype == b.dtype and np.array_equal(a, b), field


def test_parallel_build_equals_serial_build(tmp_path: Path, corpus_dir: Path) -> None:
    other = build_corpus(tmp_path / "parallel", TINY, workers=2, progress=False)
    for name in other:
        assert (tmp_path / "parallel" / f"{name}.npy").read_bytes() == (corpus_dir / f"{name}.npy").read_bytes()
        assert np.array_equal(other.labels(name).weights, Labels.load(corpus_dir / f"{name}.npz").weights)


def test_render_piece_is_deterministic_and_seeded() -> None:
    a, la = render_piece(TINY, 7)
    b, lb = render_piece(TINY, 7)
    c, _ = render_piece(TINY, 8)
    assert np.array_equal(a, b) and np.array_equal(la.bar, lb.bar) and np.array_equal(la.weights, lb.weights)
    assert not np.array_equal(a, c)


def test_resume_renders_only_the_missing_piece(tmp_path: Path, corpus_dir: Path) -> None:
    folder = tmp_path / "resume"
    shutil.copytree(corpus_dir, folder)
    victim = folder / "train-00001.npy"
    original = victim.read_bytes()
    victim.unlink()
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in _piece_files(folder)}
    corpus = build_corpus(folder, TINY, progress=False)
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in _piece_files(folder)}
    assert victim.read_bytes() == original  # the re-rendered piece is the same piece
    rewritten = {name for name in after if before.get(name) != after[name]}
    assert rewritten == {"train-00001.npy", "train-00001.npz"}  # the rest was kept as it was
    assert list(corpus) == ["train-00000", "train-00001", "holdout-00000"]


def test_rebuild_with_another_config_is_refused(tmp_path: Path, corpus_dir: Path) -> None:
    folder = tmp_path / "other"
    shutil.copytree(corpus_dir, folder)
    with pytest.raises(CorpusError, match=str(folder / MANIFEST)):
        build_corpus(
            folder, CorpusConfig(train_hours=16 / 3600, piece_seconds=8.0, holdout_pieces=1, seed=1), progress=False
        )
    with pytest.raises(CorpusError, match="another config"):
        build_corpus(folder, CorpusConfig(train_hours=24 / 3600, piece_seconds=8.0, holdout_pieces=1), progress=False)


def test_rebuild_over_a_corrupt_manifest_raises_corpus_error(tmp_path: Path) -> None:
    folder = tmp_path / "corrupt"
    folder.mkdir()
    (folder / MANIFEST).write_text("{not json")
    with pytest.raises(CorpusError, match=str(folder / MANIFEST)):
        build_corpus(folder, TINY, progress=False)


# --- reading a corpus ---------------------------------------------------------------------------------------------


def test_corpus_without_manifest_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=str(tmp_path / MANIFEST)):
        Corpus(tmp_path)


@pytest.mark.parametrize("text", ["{not json", '{"pieces": {}}', '{"config": {"bogus": 1}, "pieces": {}}', "[]"])
def test_corpus_with_a_broken_manifest_names_the_path(tmp_path: Path, text: str) -> None:
    (tmp_path / MANIFEST).write_text(text)
    with pytest.raises(CorpusError, match=str(tmp_path / MANIFEST)):
        Corpus(tmp_path)


def test_unreadable_piece_files_name_the_path(tmp_path: Path, corpus_dir: Path) -> None:
    folder = tmp_path / "broken"
    shutil.copytree(corpus_dir, folder)
    (folder / "train-00000.npy").write_bytes(b"garbage")
    (folder / "train-00001.npz").write_bytes(b"garbage")
    corpus = Corpus(folder)
    with pytest.raises(CorpusError, match=str(folder / "train-00000.npy")):
        corpus.audio("train-00000")
    with pytest.raises(CorpusError, match=str(folder / "train-00001.npz")):
        corpus.labels("train-00001")
    np.savez(folder / "holdout-00000.npz", bpm=np.zeros(3))  # a labels file with fields missing
    with pytest.raises(CorpusError, match="holdout-00000.npz"):
        corpus.labels("holdout-00000")


def test_float_audio_scales_the_int16_samples(corpus: Corpus) -> None:
    raw = np.asarray(corpus.audio("train-00000"))
    x = corpus.float_audio("train-00000", 100, 600)
    assert x.dtype == np.float32 and x.shape == (500,)
    np.testing.assert_array_equal(x, raw[100:600].astype(np.float32) / 32767.0)
    assert np.abs(corpus.float_audio("train-00000")).max() <= 1.0


def test_crops_are_frame_aligned_slices_of_the_split(corpus: Corpus) -> None:
    hop, samples = TINY.hop_length, 4800
    for split in SPLITS:
        out = corpus.crops(split, np.random.default_rng(3), 6, samples)
        assert out.shape == (6, samples) and out.dtype == np.float32
        assert np.abs(out).max() <= 1.0
        pieces = [corpus.float_audio(n) for n in corpus.names[split]]
        for crop in out:
            starts = [
                s
                for piece in pieces
                for s in np.nonzero(piece[: len(piece) - samples + 1] == crop[0])[0]
                if np.array_equal(piece[s : s + samples], crop)
            ]
            assert any(s % hop == 0 for s in starts), f"a {split} crop is not a frame-aligned slice of a {split} piece"
    again = corpus.crops("train", np.random.default_rng(3), 6, samples)
    np.testing.assert_array_equal(again, corpus.crops("train", np.random.default_rng(3), 6, samples))


# --- labels -------------------------------------------------------------------------------------------------------


def test_labels_are_well_formed(corpus: Corpus) -> None:
    bpm_lo, bpm_hi = 50.0, 200.0  # Steering clamps every prompt's tempo to this range
    for name in corpus:
        labels, audio = corpus.labels(name), corpus.audio(name)
        frames = len(audio) // TINY.hop_length
        assert labels.frames == frames == 400
        for field in Labels.__dataclass_fields__:
            assert len(getattr(labels, field)) == frames, field
        assert labels.weights.shape == (frames, len(GENRES)) and labels.weights.dtype == np.float32
        assert (labels.weights >= 0).all()
        np.testing.assert_allclose(labels.weights.sum(axis=1), 1.0, atol=1e-5)
        assert labels.bar[0] >= 0 and labels.bar[0] < 0.05  # the clock starts at the first bar's downbeat
        assert (np.diff(labels.bar) > 0).all()
        assert ((labels.bpm >= bpm_lo) & (labels.bpm <= bpm_hi)).all()
        for field in ("energy", "brightness"):
            values = getattr(labels, field)
            assert ((values >= 0) & (values <= 1)).all(), field
        assert set(np.unique(labels.minor)) <= {0, 1}
        assert labels.section.min() >= 0 and labels.section.max() < len(SECTIONS)
        assert labels.genre().shape == (frames,) and labels.genre().dtype == np.int64


def test_bar_clock_matches_the_tempo(corpus: Corpus) -> None:
    """A frame lasts hop / sr seconds; at bpm beats per minute (4 to the bar) the clock advances bpm/240 * that."""
    for name in corpus:
        labels = corpus.labels(name)
        steady = np.abs(np.diff(labels.bpm)) < 1e-3  # frames of a bar at a steady tempo
        seconds = TINY.hop_length / TINY.sample_rate
        advance = np.diff(labels.bar)
        expected = labels.bpm[1:] / 240.0 * seconds
        np.testing.assert_allclose(advance[steady], expected[steady], rtol=0.02)


def _landings(seed: int, config: CorpusConfig, bars: int) -> dict[int, tuple[set[int], int]]:
    """A twin Steering's changes: landing bar -> (genres in the target mix, ramp bars)."""
    steering = Steering(
        seed, Arrangement(round_bars=config.round_bars, song_phrases=config.song_phrases), config.mode_flip
    )
    out = {}
    for bar in range(bars):
        prompt = steering.prompt_at(bar)
        if prompt is not None:
            out[bar] = ({GENRE_IDS.index(sw.style) for sw in prompt.mix}, prompt.ramp_bars)
    return out


def test_genre_changes_glide_in_from_their_landing_bar() -> None:
    """Labels change only while a landed change glides; a new dominant genre is one the landed prompt asked for."""
    changes = 0
    for seed in range(12):
        _, labels = render_piece(STEERED, seed)
        bar = labels.bar.astype(np.float64)
        landings = _landings(seed, STEERED, math.ceil(bar[-1]) + 1)
        assert 0 in landings and landings[0][1] == 0
        genre = labels.genre()
        for f in range(1, labels.frames):
            b, prev = math.floor(bar[f]), math.floor(bar[f - 1])
            moved = np.abs(labels.weights[f] - labels.weights[f - 1]).max() > 1e-6
            land = max(k for k in landings if k <= b)
            styles, ramp = landings[land]
            before = max(k for k in landings if k <= prev)  # the change in force at the previous frame
            gliding = (
                b < land + ramp  # this frame's bar is inside a ramp
                or prev < before + landings[before][1]  # the previous frame's was (the ramp ended between them)
                or (b == land and prev == land - 1)  # a jump on this bar's downbeat
            )
            if moved:
                assert gliding, f"seed {seed}: weights moved at bar {bar[f]:.3f}, no change glides (last {land})"
            if genre[f] != genre[f - 1]:
                changes += 1
                w = labels.weights[f]
                tie = abs(float(w[genre[f]] - w[genre[f - 1]])) < 1e-4  # two genres level: argmax picks either
                assert genre[f] in styles or tie, f"seed {seed}: bar {bar[f]:.3f} turned to {genre[f]}, not {styles}"
                if ramp == 0:  # a jump: exactly on the downbeat, within one frame of the integer bar
                    assert b == land and bar[f] - land < bar[f] - bar[f - 1]
    assert changes >= 1, "no steered piece changed genre: the test saw nothing"


def test_a_jump_lands_on_the_bar() -> None:
    """A ramp-0 change (the DJ's hard cut) switches the genre between the last frame before the bar and the first."""
    found = 0
    for seed in range(300):  # jumps are rare (2 % of bars, a third of those ramp 0): find some in the steering
        landings = _landings(seed, STEERED, 14)
        jumps = [b for b, (_, ramp) in landings.items() if b > 0 and ramp == 0]
        if not jumps:
            continue
        _, labels = render_piece(STEERED, seed)
        bar = labels.bar.astype(np.float64)
        for land in jumps:
            if land >= bar[-1]:
                continue
            after = int(np.searchsorted(bar, land))  # first frame of the landing bar
            before = after - 1
            assert bar[before] < land <= bar[after]
            styles, _ = landings[land]
            assert labels.genre()[after] in styles
            stay = labels.weights[after : np.searchsorted(bar, land + 1)]  # the rest of the bar holds the new mix
            np.testing.assert_allclose(stay, np.broadcast_to(labels.weights[after], stay.shape), atol=1e-6)
            found += 1
        if found >= 2:
            break
    assert found >= 1, "no ramp-0 change in 300 steered pieces"


# --- Steering -----------------------------------------------------------------------------------------------------


def test_steering_over_many_bars_covers_every_move() -> None:
    schedule = Arrangement()  # 8-bar phrases, 4-phrase songs, as `concert serve`
    steering = Steering(0, schedule, CorpusConfig().mode_flip)
    prompts = {bar: steering.prompt_at(bar) for bar in range(4000)}
    landed = {bar: p for bar, p in prompts.items() if p is not None}
    assert all(bar in landed for bar in range(0, 4000, schedule.round_bars))  # every phrase lands a round
    assert landed[0].ramp_bars == 0
    genre_changes = tempo_changes = blends = 0
    previous = landed[0]
    for bar in sorted(landed)[1:]:
        p = landed[bar]
        assert 50.0 <= float(p.bpm) <= 200.0  # type: ignore[arg-type]
        assert 0.05 <= float(p.energy) <= 1.0  # type: ignore[arg-type]
        assert 0.05 <= float(p.brightness) <= 0.95  # type: ignore[arg-type]
        assert p.section == schedule.section_for(bar) or p.section == "drop"  # the arrangement, or "drop it!"
        if p.mix[0].style != previous.mix[0].style:
            genre_changes += 1
        elif p.bpm != previous.bpm:
            tempo_changes += 1
        if len(p.mix) == 2:
            assert all(sw.weight > 0 for sw in p.mix)
            blends += 1
        previous = p
    sections = {p.section for p in landed.values()}
    assert sections == set(SECTIONS)
    assert genre_changes >= 50 and tempo_changes >= 20 and blends >= 10
    assert {p.mix[0].style for p in landed.values()} == set(GENRE_IDS)  # every genre gets played
    assert {0, 1, 2, 4, 8} <= {p.ramp_bars for p in landed.values()}
    assert any(p is not None and bar % schedule.round_bars for bar, p in prompts.items())  # DJ moves off-phrase


def test_steering_is_deterministic() -> None:
    def script(seed: int) -> list[object]:
        s = Steering(seed, Arrangement(), CorpusConfig().mode_flip)
        return [s.prompt_at(bar) for bar in range(300)]

    assert script(4) == script(4)
    assert script(4) != script(5)


def test_steering_plays_every_genre_in_both_modes() -> None:
    """The crowd and the DJ can set the mode: the corpus must hold lo-fi in minor and techno in major too."""
    flip = CorpusConfig().mode_flip
    modes: dict[str, list[str]] = {g: [] for g in GENRE_IDS}
    for seed in range(40):
        s = Steering(seed, Arrangement(), flip)
        for bar in range(600):
            p = s.prompt_at(bar)
            if p is not None:
                default = next(g.mode for g in GENRES if g.id == p.mix[0].style)
                modes[p.mix[0].style].append(default if p.mode is None else p.mode)
    for genre, played in modes.items():
        default = next(g.mode for g in GENRES if g.id == genre)
        off = sum(m != default for m in played) / len(played)
        assert 0.5 * flip <= off <= 1.5 * flip, (genre, off, len(played))
    never = Steering(0, Arrangement(), 0.0)
    assert all(p is None or p.mode is None for p in (never.prompt_at(b) for b in range(600)))
    with pytest.raises(ValueError, match="mode_flip"):
        CorpusConfig(mode_flip=1.5)


def test_a_corpus_from_an_older_concert_is_refused(tmp_path: Path, corpus: Corpus) -> None:
    raw = json.loads((corpus.folder / MANIFEST).read_text())
    del raw["config"]["mode_flip"]
    (tmp_path / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(CorpusError, match=f"{tmp_path / MANIFEST}.*older concert.*mode_flip"):
        Corpus(tmp_path)
