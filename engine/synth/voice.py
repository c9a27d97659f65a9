"""One genre's layer of the mix: its kit, its buses and how a bar of it is rendered.

Buses: drums (low-pass by brightness), bass and music (high-passed, low-pass by
brightness and section: closed in intros, opening through builds), and fx
(vinyl crackle). Bass and music duck under the kick by `spec.duck`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.synth.arrange import BarContext, arrange
from engine.synth.bus import Bus
from engine.synth.config import SynthConfig
from engine.synth.drums import build_kit
from engine.synth.filters import bandpass, highpass, lowpass
from engine.synth.instruments import NoteRenderer
from engine.synth.specs import GenreSpec
from engine.synth.tempo import BarGrid

SWEEP_BLOCKS = 6  # sub-blocks per bar in which a moving cutoff is re-designed


@dataclass(frozen=True)
class Span:
    """A control over one bar: its value at the downbeat and at the next downbeat."""

    start: float
    end: float

    @property
    def mid(self) -> float:
        return 0.5 * (self.start + self.end)

    def at(self, fraction: float) -> float:
        return self.start + (self.end - self.start) * fraction


def opening(section: str, build: Span) -> Span:
    """Filter opening factor (multiplies low-pass cutoffs) for a section."""
    if section == "build":
        return Span(0.15 + 0.85 * build.start**1.5, 0.15 + 0.85 * build.end**1.5)
    factor = {"intro": 0.45, "breakdown": 0.85}.get(section, 1.0)
    return Span(factor, factor)


class GenreVoice:
    def __init__(self, spec: GenreSpec, index: int, config: SynthConfig, notes: NoteRenderer) -> None:
        self.spec = spec
        self.index = index
        self.sr = config.sample_rate
        self.seed = config.seed
        self.notes = notes
        self.kit = build_kit(spec.kit, self.sr, np.random.default_rng([config.seed, 17, index]))
        declick = max(1, round(config.declick_seconds * self.sr))
        self.buses = {
            "drums": Bus(1, declick),
            "bass": Bus(1, declick),
            "music": Bus(2, declick),
            "fx": Bus(2, declick),
        }
        self._duck = self._duck_shape()
        self._click = (np.exp(-np.arange(24) / 3.0) * np.sign(np.sin(np.arange(24) * 2.1))).astype(np.float32)
        self._duck_carry = np.zeros(0, dtype=np.float32)  # (k,) duck gain continuing into the next bar
        self.playing = False

    def _duck_shape(self) -> np.ndarray:
        """(k,) gain dip after a kick: 4 ms down, ~180 ms back up."""
        down = round(0.004 * self.sr)
        up = np.arange(round(0.35 * self.sr)) / self.sr  # (k,) seconds
        shape = np.concatenate([np.linspace(1.0, 0.0, down, endpoint=False), np.exp(-up / 0.06)])
        return (1.0 - self.spec.duck * shape).astype(np.float32)

    def silence(self) -> None:
        for bus in self.buses.values():
            bus.reset()
        self._duck_carry = np.zeros(0, dtype=np.float32)
        self.playing = False

    def _cutoffs(self, lo_hi: tuple[float, float], brightness: Span, open_: Span) -> list[float]:
        """Low-pass cutoffs, Hz: one for the bar, or SWEEP_BLOCKS if it moves by more than ~6 % in the bar."""
        lo, hi = lo_hi
        start, end = (lo * (hi / lo) ** brightness.at(f) * open_.at(f) for f in (0.0, 1.0))
        blocks = SWEEP_BLOCKS if max(start, end) > 1.06 * min(start, end) else 1
        fr = [(i + 0.5) / blocks for i in range(blocks)]
        return [lo * (hi / lo) ** brightness.at(f) * open_.at(f) for f in fr]

    def render(
        self, ctx: BarContext, grid: BarGrid, energy: Span, brightness: Span, weight: Span, build: Span
    ) -> tuple[np.ndarray, np.ndarray]:
        """One bar: (n,) dry output and (n,) reverb send, float32."""
        spec, n = self.spec, grid.samples
        rng = np.random.default_rng([self.seed, ctx.bar, self.index])
        parts, kicks = self._place(ctx, grid, rng)
        self.playing = True
        x = self._filter(parts, n, brightness, opening(ctx.section, build))
        if spec.duck > 0 and (kicks or len(self._duck_carry)):
            duck = self._duck_curve(n, kicks)
            x["bass"] = x["bass"] * duck
            x["music"] = x["music"] * duck

        def level(bus: str, base: float, energy_share: float) -> np.ndarray | float:
            g0 = base * (1 - energy_share + energy_share * energy.start) * weight.start
            g1 = base * (1 - energy_share + energy_share * energy.end) * weight.end
            return x[bus] * self.buses[bus].gain(g0, g1, n)

        drums = level("drums", spec.drums_level, 0.45)
        music = level("music", spec.music_level, 0.25)
        out = drums + music + level("bass", spec.bass_level, 0.3) + level("fx", spec.crackle, 0.0)  # (n,)
        send = spec.reverb_drums * drums + spec.reverb_music * music  # (n,)
        return np.asarray(out, np.float32), np.asarray(send, np.float32)

    def _place(
        self, ctx: BarContext, grid: BarGrid, rng: np.random.Generator
    ) -> tuple[dict[str, list[tuple[int, np.ndarray]]], list[int]]:
        """The bar's events as (sample offset, signal) parts per bus, and the kick offsets."""
        spec, sr = self.spec, self.sr
        hits, notes = arrange(spec, ctx, rng)
        parts: dict[str, list[tuple[int, np.ndarray]]] = {k: [] for k in self.buses}
        hit_at = grid.offsets(np.array([h.beat for h in hits]))  # (n_hits,) samples
        if spec.humanize > 0 and len(hits):
            jitter = np.round(rng.normal(0.0, spec.humanize, len(hits)) * sr).astype(np.int64)  # (n_hits,)
            hit_at = np.where(hit_at > 0, np.maximum(0, hit_at + jitter), hit_at)
        kicks = []
        for h, off in zip(hits, hit_at.tolist(), strict=True):
            if h.voice == "kick":
                kicks.append(off)
            parts["drums"].append((off, self.kit[h.voice] * np.float32(h.gain)))
        bounds = grid.offsets(np.array([b for nt in notes for b in (nt.beat, nt.beat + nt.beats)]))  # (2 k,)
        for nt, (on, off) in zip(notes, bounds.reshape(-1, 2).tolist(), strict=True):
            parts[nt.bus].append((on, self.notes.note(nt.timbre, nt.midi, off - on, nt.gain, rng)))
        if spec.crackle > 0:
            parts["fx"] += self._crackle(grid.samples, rng)
        return parts, kicks

    def _filter(
        self, parts: dict[str, list[tuple[int, np.ndarray]]], n: int, brightness: Span, open_: Span
    ) -> dict[str, np.ndarray]:
        """Mix each bus (with its carry) and run its filter: (n,) per bus."""
        spec, sr, b = self.spec, self.sr, self.buses
        hp = highpass(140.0, sr)
        flat = Span(1.0, 1.0)
        designs = {
            "drums": [lowpass(c, sr) for c in self._cutoffs(spec.drums_cutoff, brightness, flat)],
            "bass": [lowpass(c, sr, 0.9) for c in self._cutoffs(spec.bass_cutoff, brightness, open_)],
            "music": [
                np.vstack([hp, lowpass(c, sr, 0.8)]) for c in self._cutoffs(spec.music_cutoff, brightness, open_)
            ],
            "fx": [np.vstack([highpass(300.0, sr), bandpass(3000.0, sr, 0.4)])],
        }
        out = {}
        for name, bus in b.items():
            x = bus.mix(n, parts[name])
            out[name] = bus.filter.sweep(designs[name], x) if (name != "fx" or spec.crackle > 0) else x
        return out

    def _duck_curve(self, n: int, kicks: list[int]) -> np.ndarray:
        """(n,) sidechain gain; a dip that outlasts the bar continues in the next one."""
        k = len(self._duck)
        curve = np.ones(max([n, len(self._duck_carry)] + [o + k for o in kicks]), dtype=np.float32)
        curve[: len(self._duck_carry)] = self._duck_carry
        for o in kicks:
            np.minimum(curve[o : o + k], self._duck, out=curve[o : o + k])
        tail = curve[n:]
        self._duck_carry = tail.copy() if np.any(tail < 1.0) else np.zeros(0, dtype=np.float32)
        return curve[:n]

    def _crackle(self, n: int, rng: np.random.Generator) -> list[tuple[int, np.ndarray]]:
        """Vinyl: a bed of hiss and sparse clicks of random size."""
        hiss = (rng.standard_normal(n) * 0.025).astype(np.float32)
        parts = [(0, hiss)]
        count = rng.poisson(7.0 * n / self.sr)
        for o, a in zip(rng.integers(0, n, count), rng.uniform(0.05, 0.5, count), strict=True):
            parts.append((int(o), self._click * np.float32(a * rng.choice([-1.0, 1.0]))))
        return parts
