"""The training corpus: sets rendered by the style synth through its real steering path, labelled per frame.

A corpus is a folder of *pieces*. Each piece is one steered set of `piece_seconds`: a `Steering` script decides,
bar by bar, what the crowd and the DJ would have done (the conductor's song arrangement — intro, build, drop,
breakdown by phrase — genre segues on song boundaries, live moves on phrase boundaries: energy, tempo, "drop it",
blends, and now and then a DJ override on any bar), and `StyleSynth.set_prompt` lands each change on its bar and
glides it in over `ramp_bars`, exactly as in a live set. Every codec frame carries its labels: genre weights,
tempo, energy, brightness, mode and section, read from a twin of the synth's own `PromptSchedule`.

    <dir>/corpus.json              the config and the list of pieces (written last)
    <dir>/<split>-<index>.npy      int16 mono audio at sample_rate
    <dir>/<split>-<index>.npz      per-frame labels (see `Labels`)

Everything is deterministic from `CorpusConfig.seed`; train and held-out pieces are seeded apart. A build that
is stopped resumes: finished pieces are kept. Corpora live outside the repository and are never committed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from engine.music.arrangement import Arrangement
from engine.music.interpret import resolve
from engine.music.prompt import SECTIONS, Prompt, StyleWeight
from engine.music.styles import GENRE_IDS, GENRES
from engine.synth.schedule import PromptSchedule
from engine.synth.source import StyleSynth, SynthConfig
from engine.train.files import atomic_path

SPLITS = ("train", "holdout")
MANIFEST = "corpus.json"


class CorpusError(Exception):
    """A corpus folder that cannot be used; the message names the file at fault."""


@dataclass(frozen=True)
class CorpusConfig:
    seed: int = 0  # seeds every piece; train and held-out pieces draw from different seed streams
    train_hours: float = 10.0  # hours of audio in the training split
    holdout_pieces: int = 48  # pieces in the held-out split (16 left the eval with 3 clips of some genres)
    piece_seconds: float = 90.0  # length of one steered piece, seconds
    sample_rate: int = 24000  # Hz, the synth's and the codec's rate
    hop_length: int = 480  # samples per label frame (the codec's hop: 50 frames/s at 24 kHz)
    round_bars: int = 8  # bars per phrase, as `concert serve --round-bars`
    song_phrases: int = 4  # phrases per song, as `concert serve --song-phrases`
    mode_flip: float = 0.25  # share of genre choices played in the mode opposite the genre's default (the DJ's
    # and the crowd's mode control): without it lo-fi in minor was 1 % of lo-fi, and a judge read it as hip-hop

    def __post_init__(self) -> None:
        if not self.train_hours > 0 or not self.piece_seconds >= 4:
            raise ValueError(
                f"need train_hours > 0 and piece_seconds >= 4, got {self.train_hours}, {self.piece_seconds}"
            )
        if not 0.0 <= self.mode_flip <= 1.0:
            raise ValueError(f"mode_flip must be in [0, 1], got {self.mode_flip!r}")
        if self.holdout_pieces < 1 or self.sample_rate % self.hop_length:
            raise ValueError("need holdout_pieces >= 1 and a sample_rate that is a whole number of hops")
        Arrangement(round_bars=self.round_bars, song_phrases=self.song_phrases)  # raises on a bad arrangement

    @property
    def key(self) -> str:
        """A short hash of the whole config: what tells one corpus from another (the token caches use it)."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:8]

    @property
    def train_pieces(self) -> int:
        return max(1, math.ceil(self.train_hours * 3600 / self.piece_seconds))

    def count(self, split: str) -> int:
        return self.train_pieces if split == "train" else self.holdout_pieces

    def piece_seed(self, split: str, index: int) -> int:
        """The seed of one piece: a hash of (corpus seed, split, index), so the splits never share a seed."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        state = np.random.SeedSequence([self.seed, SPLITS.index(split), index]).generate_state(1)
        return int(state[0] & 0x7FFFFFFF)


@dataclass(frozen=True)
class Labels:
    """What is playing at every frame of a piece (frame f covers samples f * hop .. (f + 1) * hop - 1)."""

    weights: np.ndarray  # (F, num_genres) float32 genre weights, sum 1
    bpm: np.ndarray  # (F,) float32 beats per minute
    energy: np.ndarray  # (F,) float32 0..1
    brightness: np.ndarray  # (F,) float32 0..1
    minor: np.ndarray  # (F,) uint8 1 = minor mode
    section: np.ndarray  # (F,) int8 index into engine.music.prompt.SECTIONS
    bar: np.ndarray  # (F,) float32 bar clock at the frame's centre (bar index + fraction)

    @property
    def frames(self) -> int:
        return len(self.bpm)

    def genre(self) -> np.ndarray:
        """(F,) int64 index of the dominant genre."""
        return np.argmax(self.weights, axis=1)

    def save(self, path: Path) -> None:
        np.savez(path, **asdict(self))

    @classmethod
    def load(cls, path: Path) -> Labels:
        try:
            with np.load(path) as data:
                return cls(**{name: data[name] for name in cls.__dataclass_fields__})
        except (OSError, KeyError, ValueError, EOFError) as error:
            raise CorpusError(f"corpus labels {path} are unreadable or incomplete: {error}") from error


class Steering:
    """A seeded stand-in for the crowd and the DJ: `prompt_at(bar)` is the change to land on `bar`, or None."""

    def __init__(self, seed: int, schedule: Arrangement, mode_flip: float) -> None:
        self.rng = np.random.default_rng(seed)
        self.schedule = schedule
        self.mode_flip = mode_flip  # share of genre choices in the mode opposite the genre's default
        self.genre = int(self.rng.integers(len(GENRES)))
        self.other: int | None = None  # second genre of a blend
        self.share = 1.0  # weight of `genre` in a blend
        self.bpm = self._tempo(self.genre)
        self.energy = self._energy(self.genre)
        self.brightness = float(np.clip(GENRES[self.genre].brightness + self.rng.normal(0, 0.12), 0.05, 0.95))
        self.mode = self._mode(self.genre)  # None: the genre's default

    def _mode(self, g: int) -> str | None:
        if self.rng.random() >= self.mode_flip:
            return None
        return "major" if GENRES[g].mode == "minor" else "minor"

    def _tempo(self, g: int) -> float:
        return float(self.rng.uniform(GENRES[g].bpm_min, GENRES[g].bpm_max))

    def _energy(self, g: int) -> float:
        return float(np.clip(GENRES[g].energy + self.rng.normal(0, 0.2), 0.05, 1.0))

    def _new_genre(self) -> None:
        choices = [i for i in range(len(GENRES)) if i != self.genre]
        self.genre = int(self.rng.choice(choices))
        self.other = None
        self.share = 1.0
        if self.rng.random() < 0.2:  # a blend, as the crowd's `blend` mode makes them
            self.other = int(self.rng.choice([i for i in range(len(GENRES)) if i != self.genre]))
            self.share = float(self.rng.uniform(0.5, 0.8))
        self.bpm = self._tempo(self.genre)
        self.energy = self._energy(self.genre)
        self.brightness = float(np.clip(GENRES[self.genre].brightness + self.rng.normal(0, 0.12), 0.05, 0.95))
        self.mode = self._mode(self.genre)

    def _prompt(self, section: str, ramp: int) -> Prompt:
        mix = [StyleWeight(GENRE_IDS[self.genre], self.share)]
        if self.other is not None:
            mix.append(StyleWeight(GENRE_IDS[self.other], 1.0 - self.share))
        return Prompt(
            mix=tuple(mix),
            bpm=float(np.clip(self.bpm, 50.0, 200.0)),
            energy=self.energy,
            brightness=self.brightness,
            mode=self.mode,  # type: ignore[arg-type]
            section=section,  # type: ignore[arg-type]
            ramp_bars=ramp,
        )

    def prompt_at(self, bar: int) -> Prompt | None:
        sched, rng = self.schedule, self.rng
        section = sched.section_for(bar)
        if bar == 0:
            return self._prompt(section, 0)
        if bar % sched.song_bars == 0:  # the direction round lands: segue, blend or stay
            if rng.random() < 0.7:
                self._new_genre()
            return self._prompt(section, int(rng.choice([2, 4, 4, 8])))
        if bar % sched.round_bars == 0:  # a live-moves round lands on the phrase
            if rng.random() < 0.15:  # the DJ overrides the crowd
                self._new_genre()
                return self._prompt(section, 4)
            if rng.random() < 0.35:
                self.energy = float(np.clip(self.energy + rng.choice([-0.2, 0.2]), 0.05, 1.0))
            if rng.random() < 0.3:
                g = GENRES[self.genre]
                self.bpm = float(np.clip(self.bpm + rng.choice([-6.0, 6.0]), g.bpm_min - 6, g.bpm_max + 6))
            if rng.random() < 0.1:
                section = "drop"  # "drop it!"
            return self._prompt(section, 1)
        if rng.random() < 0.02:  # a DJ change on any bar
            self._new_genre()
            return self._prompt(section, int(rng.choice([0, 2, 4])))
        return None


def render_piece(config: CorpusConfig, seed: int) -> tuple[np.ndarray, Labels]:
    """One steered piece: (int16 audio (T,), its per-frame labels). Deterministic from `seed`."""
    schedule = Arrangement(round_bars=config.round_bars, song_phrases=config.song_phrases)
    steering = Steering(seed, schedule, config.mode_flip)
    first = steering.prompt_at(0)
    assert first is not None
    synth = StyleSynth(SynthConfig(sample_rate=config.sample_rate, seed=seed % 100_000), first)
    twin = PromptSchedule(resolve(first))  # the synth's schedule, replayed for the labels
    total = round(config.piece_seconds * config.sample_rate)
    pieces: list[np.ndarray] = []
    bars: list[tuple[int, int, object]] = []  # (start sample, samples, BarPlan)
    written = 0
    bar = 0
    while written < total:
        prompt = steering.prompt_at(bar) if bar > 0 else None
        if prompt is not None:
            landed = synth.set_prompt(prompt, at_bar=bar)
            twin.schedule(resolve(prompt), landed, prompt.ramp_bars)
        chunk = synth.next_chunk()
        bars.append((written, len(chunk.pcm), twin.plan(bar)))
        pieces.append(chunk.pcm)
        written += len(chunk.pcm)
        bar += 1
    audio = np.concatenate(pieces)[:total]  # (T,)
    pcm16 = np.round(np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)  # (T,)
    return pcm16, _frame_labels(bars, total, config.hop_length)


def _frame_labels(bars: Sequence[tuple[int, int, object]], total: int, hop: int) -> Labels:
    frames = total // hop
    centre = np.arange(frames) * hop + hop / 2  # (F,) sample at each frame's centre
    starts = np.array([b[0] for b in bars])  # (bars,)
    index = np.searchsorted(starts, centre, side="right") - 1  # (F,) bar holding each frame
    lengths = np.array([b[1] for b in bars], dtype=np.float64)
    a = (centre - starts[index]) / lengths[index]  # (F,) fraction of the bar
    plans = [b[2] for b in bars]
    w0 = np.stack([p.start.weights for p in plans])[index]  # type: ignore[attr-defined]  # (F, G)
    w1 = np.stack([p.end.weights for p in plans])[index]  # type: ignore[attr-defined]  # (F, G)

    def glide(name: str) -> np.ndarray:
        s = np.array([getattr(p.start, name) for p in plans])[index]  # type: ignore[attr-defined]
        e = np.array([getattr(p.end, name) for p in plans])[index]  # type: ignore[attr-defined]
        return (s + (e - s) * a).astype(np.float32)

    return Labels(
        weights=(w0 + (w1 - w0) * a[:, None]).astype(np.float32),
        bpm=glide("bpm"),
        energy=glide("energy"),
        brightness=glide("brightness"),
        minor=np.array([p.mode == "minor" for p in plans], dtype=np.uint8)[index],  # type: ignore[attr-defined]
        section=np.array([SECTIONS.index(p.section) for p in plans], dtype=np.int8)[index],  # type: ignore[attr-defined]
        bar=(index + a).astype(np.float32),
    )


def _build_one(job: tuple[CorpusConfig, str, int, str]) -> str:
    config, split, index, folder = job
    name = f"{split}-{index:05d}"
    audio_path, label_path = Path(folder) / f"{name}.npy", Path(folder) / f"{name}.npz"
    if audio_path.is_file() and label_path.is_file():
        return name  # finished by an earlier (stopped) build
    pcm, labels = render_piece(config, config.piece_seed(split, index))
    tmp = Path(folder) / f".{name}.{os.getpid()}"
    np.save(f"{tmp}.npy", pcm)
    labels.save(Path(f"{tmp}.npz"))
    os.replace(f"{tmp}.npz", label_path)  # labels first: audio present means both are
    os.replace(f"{tmp}.npy", audio_path)
    return name


def build_corpus(folder: Path, config: CorpusConfig, workers: int = 1, progress: bool = True) -> Corpus:
    """Render every missing piece of `config` into `folder` (resumable), then write the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / MANIFEST
    if manifest.is_file():
        try:
            old = json.loads(manifest.read_text())
        except (OSError, ValueError) as error:
            raise CorpusError(f"{manifest} is unreadable ({error}); remove it to rebuild the manifest") from error
        if old.get("config") != asdict(config):
            raise CorpusError(f"{manifest} was built with another config ({old.get('config')}); use a new folder")
    jobs = [(config, split, i, str(folder)) for split in SPLITS for i in range(config.count(split))]
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="corpus", unit="piece", disable=not progress)
    if workers <= 1:
        for job in jobs:
            _build_one(job)
            bar.update()
    else:
        with ProcessPoolExecutor(workers) as pool:
            for _ in pool.map(_build_one, jobs, chunksize=4):
                bar.update()
    bar.close()
    pieces = {split: [f"{split}-{i:05d}" for i in range(config.count(split))] for split in SPLITS}
    with atomic_path(manifest) as tmp:
        tmp.write_text(json.dumps({"config": asdict(config), "pieces": pieces}, indent=1))
    return Corpus(folder)


class Corpus:
    """A built corpus, read lazily: audio is memory-mapped, labels load on first use."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        manifest = self.folder / MANIFEST
        try:
            raw = json.loads(manifest.read_text())
            missing = {f.name for f in fields(CorpusConfig)} - set(raw["config"])
            if missing:
                lacks = ", ".join(sorted(missing))
                raise ValueError(f"built by an older concert (its config lacks {lacks}); rebuild it")
            self.config = CorpusConfig(**raw["config"])
            self.names: dict[str, list[str]] = {split: list(raw["pieces"][split]) for split in SPLITS}
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise CorpusError(f"{manifest} is missing or not a corpus manifest ({error}); build it first") from error
        self._labels: dict[str, Labels] = {}

    def audio(self, name: str) -> np.ndarray:
        """(T,) int16, memory-mapped."""
        path = self.folder / f"{name}.npy"
        try:
            return np.load(path, mmap_mode="r")
        except (OSError, ValueError) as error:
            raise CorpusError(f"corpus audio {path} is unreadable: {error}") from error

    def labels(self, name: str) -> Labels:
        if name not in self._labels:
            self._labels[name] = Labels.load(self.folder / f"{name}.npz")
        return self._labels[name]

    def float_audio(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """(n,) float32 in [-1, 1] of samples start..stop."""
        return np.asarray(self.audio(name)[start:stop], dtype=np.float32) / 32767.0

    def crops(self, split: str, rng: np.random.Generator, batch: int, samples: int) -> np.ndarray:
        """(batch, samples) float32 random crops of random pieces of `split`, starting on a frame boundary."""
        hop = self.config.hop_length
        out = np.empty((batch, samples), dtype=np.float32)  # (B, T)
        names = self.names[split]
        for b in range(batch):
            audio = self.audio(names[int(rng.integers(len(names)))])
            start = int(rng.integers(0, max(1, (len(audio) - samples) // hop))) * hop
            out[b] = np.asarray(audio[start : start + samples], dtype=np.float32) / 32767.0
        return out

    def __iter__(self) -> Iterator[str]:
        for split in SPLITS:
            yield from self.names[split]

    @property
    def hours(self) -> dict[str, float]:
        c = self.config
        return {split: len(self.names[split]) * c.piece_seconds / 3600 for split in SPLITS}
