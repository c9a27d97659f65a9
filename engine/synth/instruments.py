"""Pitched timbres and the note renderer.

A timbre is a few detuned voices of a band-limited loop (see wavetable.py). A
"pluck" fades from a bright spectrum to a dark one, which sounds like a
low-pass envelope without running a filter per note. Bells are sums of
inharmonic sine partials, each with its own decay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from engine.synth.harmony import midi_hz
from engine.synth.wavetable import ToneBank


@dataclass(frozen=True)
class Timbre:
    bright: str  # spectrum at the attack (a name in wavetable.SPECTRA)
    dark: str = ""  # spectrum it fades to with time constant `pluck`; "" = stays bright
    detune: tuple[float, ...] = (0.0,)  # cents, one voice per entry
    pluck: float = 0.0  # s, time constant of the bright -> dark fade
    decay: float = 0.0  # s, amplitude decay time constant while held; 0 = sustain
    attack: float = 0.004  # s
    release: float = 0.06  # s
    sub: float = 0.0  # level of a sine at the fundamental (body for basses)
    partials: tuple[tuple[float, float, float], ...] = ()  # bells: (frequency ratio, level, decay s)

    def __post_init__(self) -> None:
        if self.dark and self.pluck <= 0:
            raise ValueError(f"a timbre fading to {self.dark!r} needs pluck > 0, got {self.pluck!r}")


TIMBRES: MappingProxyType[str, Timbre] = MappingProxyType(
    {
        "sub": Timbre("sine", attack=0.006, release=0.05),
        "organ_bass": Timbre("saw", "mellow", pluck=0.06, decay=0.5, release=0.04, sub=0.3),
        "rumble": Timbre("soft_saw", "sine", pluck=0.04, decay=0.12, release=0.05, sub=0.4),
        "roll_bass": Timbre("saw", "triangle", pluck=0.05, decay=0.3, release=0.03, sub=0.3),
        "reese": Timbre("saw", detune=(-14.0, 0.0, 13.0), attack=0.01, release=0.08, sub=0.5),
        "boom_sub": Timbre("sine", attack=0.004, decay=1.2, release=0.08),
        "upright": Timbre("triangle", "sine", pluck=0.05, decay=0.6, attack=0.006, release=0.06),
        "synth_bass": Timbre("saw", "soft_saw", pluck=0.09, decay=0.4, release=0.04, sub=0.25),
        "drone": Timbre("triangle", detune=(-4.0, 4.0), attack=1.5, release=2.0, sub=0.3),
        "supersaw": Timbre("saw", detune=(-19.0, -8.0, 0.0, 8.0, 19.0), attack=0.03, release=0.35),
        "warm_pad": Timbre("soft_saw", detune=(-9.0, 0.0, 9.0), attack=0.12, release=0.5),
        "glass_pad": Timbre("soft_square", detune=(-9.0, -3.0, 4.0, 10.0), attack=1.2, release=2.5),
        "epiano": Timbre("epiano", "mellow", pluck=0.25, decay=1.5, attack=0.003, release=0.18),
        "stab": Timbre("saw", "organ", pluck=0.06, decay=0.25, release=0.06, detune=(-6.0, 6.0)),
        "dark_stab": Timbre("saw", "soft_square", pluck=0.03, decay=0.15, release=0.08, detune=(-10.0, 10.0)),
        "pluck": Timbre("saw", "sine", pluck=0.05, decay=0.18, release=0.03, detune=(-7.0, 7.0)),
        "saw_lead": Timbre("saw", detune=(-7.0, 7.0), attack=0.01, release=0.12),
        "square_lead": Timbre("square", "soft_square", pluck=0.3, detune=(-5.0, 5.0), attack=0.01, release=0.1),
        "soft_lead": Timbre("triangle", detune=(-3.0, 3.0), attack=0.02, release=0.2),
        "bell": Timbre(
            "sine",
            attack=0.002,
            release=0.3,
            partials=((1.0, 1.0, 1.4), (2.76, 0.45, 0.6), (5.40, 0.2, 0.3), (8.93, 0.1, 0.15)),
        ),
    }
)


class NoteRenderer:
    """Renders one note of a timbre to a float32 array (gate + release samples long)."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.bank = ToneBank(sample_rate)
        self._idx = np.arange(sample_rate * 4, dtype=np.float32)  # (n,) sample index, grown on demand

    def _index(self, n: int) -> np.ndarray:
        if n > len(self._idx):
            self._idx = np.arange(max(n, 2 * len(self._idx)), dtype=np.float32)
        return self._idx[:n]

    def release_samples(self, timbre: str) -> int:
        return max(1, round(TIMBRES[timbre].release * self.sample_rate))

    def note(self, timbre: str, midi: float, gate: int, gain: float, rng: np.random.Generator) -> np.ndarray:
        """(gate + release,) float32: `midi` held `gate` samples, then released."""
        if timbre not in TIMBRES:
            raise ValueError(f"unknown timbre {timbre!r}; known: {', '.join(TIMBRES)}")
        tb = TIMBRES[timbre]
        sr = self.sample_rate
        gate = max(1, gate)
        rel = self.release_samples(timbre)
        n = gate + rel
        hz = midi_hz(midi)
        idx = self._index(n)  # (n,)
        if tb.partials:
            x = np.zeros(n, dtype=np.float32)
            for ratio, level, decay in tb.partials:
                if hz * ratio < 0.45 * sr:
                    env = np.exp(idx * np.float32(-1.0 / (decay * sr)))
                    x += self.bank.tone("sine", hz * ratio, n, int(rng.integers(0, 1 << 16))) * (level * env)
        else:
            x = np.zeros(n, dtype=np.float32)
            fade = np.exp(idx * np.float32(-1.0 / (tb.pluck * sr))) if tb.dark else None  # (n,) bright share
            for cents in tb.detune:
                f = hz * 2.0 ** (cents / 1200.0)
                start = int(rng.integers(0, 1 << 16))
                bright = self.bank.tone(tb.bright, f, n, start)
                if fade is not None:
                    dark = self.bank.tone(tb.dark, f, n, start)
                    x += dark + fade * (bright - dark)
                else:
                    x += bright
            x *= np.float32(1.0 / math.sqrt(len(tb.detune)))
            if tb.sub > 0:
                x += np.float32(tb.sub) * self.bank.tone("sine", hz, n, 0)
        env = np.minimum(idx * np.float32(1.0 / max(1.0, tb.attack * sr)), np.float32(1.0))  # (n,) attack
        if tb.decay > 0:
            env *= np.exp(idx * np.float32(-1.0 / (tb.decay * sr)))
        env[gate:] *= np.linspace(1.0, 0.0, rel, dtype=np.float32)  # release to exactly zero
        x *= env * np.float32(gain)
        return x
