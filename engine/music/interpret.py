"""Free text and prompts → numeric style controls (pure; no I/O).

A style in a prompt is a genre id ("techno") or free text ("dark rolling techno").
Free text maps onto the genre vocabulary through keywords, and modifier words
("dark", "chill", "faster") nudge the controls. Text that names no genre is
refused with a message saying why, so nothing silently plays the wrong thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from engine.music.prompt import Prompt
from engine.music.styles import GENRE_IDS, GENRES, UnknownStyleError, genre

# word → (energy delta, brightness delta, bpm delta, mode or "")
_MODIFIERS: dict[str, tuple[float, float, float, str]] = {
    "dark": (0.0, -0.3, 0.0, "minor"),
    "moody": (-0.1, -0.2, 0.0, "minor"),
    "sad": (-0.1, -0.1, 0.0, "minor"),
    "melancholic": (-0.1, -0.1, 0.0, "minor"),
    "bright": (0.0, 0.3, 0.0, ""),
    "happy": (0.1, 0.2, 0.0, "major"),
    "uplifting": (0.1, 0.2, 0.0, "major"),
    "sunny": (0.0, 0.25, 0.0, "major"),
    "chill": (-0.25, -0.1, 0.0, ""),
    "calm": (-0.3, -0.1, 0.0, ""),
    "soft": (-0.2, -0.1, 0.0, ""),
    "hard": (0.25, 0.1, 0.0, ""),
    "heavy": (0.25, -0.05, 0.0, ""),
    "banging": (0.3, 0.1, 0.0, ""),
    "energetic": (0.3, 0.1, 0.0, ""),
    "fast": (0.1, 0.0, 8.0, ""),
    "faster": (0.1, 0.0, 8.0, ""),
    "slow": (-0.1, 0.0, -8.0, ""),
    "slower": (-0.1, 0.0, -8.0, ""),
    "warm": (0.0, -0.15, 0.0, ""),
}

_WORD = re.compile(r"[a-z0-9&'-]+")


@dataclass(frozen=True)
class Interpretation:
    weights: tuple[float, ...]  # one weight per genre in GENRES order, sums to 1
    energy_delta: float  # added to the genre energy, 0..1 scale
    brightness_delta: float  # added to the genre brightness, 0..1 scale
    bpm_delta: float  # added to the genre tempo, beats per minute
    mode: str  # "major", "minor" or "" (genre default)


@dataclass(frozen=True)
class Controls:
    """A prompt resolved to numbers: what the synth (and the model's conditioning) consume."""

    weights: np.ndarray  # (n_genres,) float64, sums to 1
    bpm: float  # beats per minute
    energy: float  # 0..1
    brightness: float  # 0..1
    mode: str  # "major" or "minor"
    section: str  # "intro", "build", "drop" or "breakdown"

    def dominant(self) -> str:
        return GENRE_IDS[int(np.argmax(self.weights))]

    def lerp(self, other: Controls, a: float) -> Controls:
        """A fraction `a` (0..1) of the way to `other`: weights, tempo, energy and brightness glide linearly;
        mode and section are `other`'s (they switch where a change lands)."""
        return Controls(
            self.weights + (other.weights - self.weights) * a,
            self.bpm + (other.bpm - self.bpm) * a,
            self.energy + (other.energy - self.energy) * a,
            self.brightness + (other.brightness - self.brightness) * a,
            other.mode,
            other.section,
        )


def interpret(style: str) -> Interpretation:
    """Map a genre id or free text to genre weights and control nudges."""
    text = style.strip().lower()
    n = len(GENRES)
    if text in GENRE_IDS:
        w = [0.0] * n
        w[GENRE_IDS.index(text)] = 1.0
        return Interpretation(tuple(w), 0.0, 0.0, 0.0, "")
    words = _WORD.findall(text.replace("drum & bass", "dnb").replace("drum and bass", "dnb"))
    hits = [0.0] * n
    de = db = dbpm = 0.0
    mode = ""
    for word in words:
        for i, g in enumerate(GENRES):
            if word == g.id or word in g.keywords:
                hits[i] += 1.0
        if word in _MODIFIERS:
            e, b, t, m = _MODIFIERS[word]
            de, db, dbpm = de + e, db + b, dbpm + t
            mode = m or mode
    total = sum(hits)
    if total == 0:
        raise UnknownStyleError(
            f"style {style!r} names no genre this set can play; use one of {', '.join(GENRE_IDS)} "
            "or words such as 'deep', 'warehouse', 'jungle', 'chill', 'retro'"
        )
    return Interpretation(tuple(h / total for h in hits), de, db, dbpm, mode)


def _clip01(x: float) -> float:
    return min(1.0, max(0.0, x))


def resolve(prompt: Prompt) -> Controls:
    """Resolve a prompt's styles and controls to numbers (explicit controls win over defaults)."""
    weights = np.zeros(len(GENRES))
    energy = brightness = bpm = 0.0
    minor_vote = 0.0
    for sw in prompt.mix:
        it = interpret(sw.style)
        w = np.asarray(it.weights) * sw.weight
        weights += w
        for wi, g in zip(it.weights, GENRES, strict=True):
            share = wi * sw.weight
            energy += share * _clip01(g.energy + it.energy_delta)
            brightness += share * _clip01(g.brightness + it.brightness_delta)
            bpm += share * (g.bpm + it.bpm_delta)
            mode = it.mode or g.mode
            minor_vote += share * (1.0 if mode == "minor" else 0.0)
    weights /= weights.sum()
    mode_s: str
    if prompt.mode is not None:
        mode_s = prompt.mode
    else:
        mode_s = genre(GENRE_IDS[int(np.argmax(weights))]).mode
        if any(interpret(sw.style).mode for sw in prompt.mix):
            mode_s = "minor" if minor_vote >= 0.5 else "major"
    return Controls(
        weights=weights,
        bpm=float(prompt.bpm if prompt.bpm is not None else bpm),
        energy=float(prompt.energy if prompt.energy is not None else energy),
        brightness=float(prompt.brightness if prompt.brightness is not None else brightness),
        mode=mode_s,
        section=prompt.section or "drop",
    )
