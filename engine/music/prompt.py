"""Prompts: a weighted mix of styles plus the musical controls the crowd steers.

A `Prompt` is immutable and validated on construction, so a bad one is refused
before it can reach a running source (the music goes on with the old prompt).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

from engine.music.meter import BPM_MAX, BPM_MIN
from engine.music.styles import GENRE_IDS, genre

Mode = Literal["major", "minor"]
Section = Literal["intro", "build", "drop", "breakdown"]
MODES: tuple[str, ...] = ("major", "minor")
SECTIONS: tuple[str, ...] = ("intro", "build", "drop", "breakdown")


class PromptError(ValueError):
    """A prompt that cannot be played: the message names the offending value."""


@dataclass(frozen=True)
class StyleWeight:
    style: str  # genre id from engine.music.styles, or free text (see engine.music.interpret)
    weight: float  # relative weight, > 0 (normalised by Prompt)

    def __post_init__(self) -> None:
        if not isinstance(self.style, str) or not self.style.strip():
            raise PromptError(f"style must be a non-empty string, got {self.style!r}")
        w = self.weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
            raise PromptError(f"weight for style {self.style!r} must be a finite number, got {w!r}")
        if w < 0:
            raise PromptError(f"weight for style {self.style!r} must be >= 0, got {w!r}")


@dataclass(frozen=True)
class Prompt:
    """What a source should play. `mix` weights are normalised to sum to 1."""

    mix: tuple[StyleWeight, ...]  # styles and their weights; zero weights dropped
    bpm: float | None = None  # target tempo, beats per minute; None: weighted default of the mix
    energy: float | None = None  # 0..1; None: weighted default of the mix
    brightness: float | None = None  # 0..1; None: weighted default of the mix
    mode: Mode | None = None  # None: the dominant genre's default
    section: Section | None = None  # None: "drop" (full arrangement)
    ramp_bars: int = 4  # bars over which weights, tempo, energy and brightness glide to this prompt
    labels: tuple[str, ...] = field(default=(), compare=False)  # free-text labels, for display only

    def __post_init__(self) -> None:
        mix = tuple(self.mix)
        if not mix:
            raise PromptError("prompt mix is empty: give at least one style with a weight > 0")
        for sw in mix:
            if not isinstance(sw, StyleWeight):
                raise PromptError(f"prompt mix entries must be StyleWeight, got {sw!r}")
        total = sum(sw.weight for sw in mix)
        if total <= 0:
            raise PromptError(f"prompt mix weights are all zero: {[(s.style, s.weight) for s in mix]}")
        merged: dict[str, float] = {}
        for sw in mix:
            if sw.weight > 0:
                merged[sw.style] = merged.get(sw.style, 0.0) + sw.weight / total
        object.__setattr__(self, "mix", tuple(StyleWeight(s, w) for s, w in merged.items()))
        if self.bpm is not None:
            _check_number("bpm", self.bpm, BPM_MIN, BPM_MAX)
        for name in ("energy", "brightness"):
            v = getattr(self, name)
            if v is not None:
                _check_number(name, v, 0.0, 1.0)
        if self.mode is not None and self.mode not in MODES:
            raise PromptError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.section is not None and self.section not in SECTIONS:
            raise PromptError(f"section must be one of {SECTIONS}, got {self.section!r}")
        if isinstance(self.ramp_bars, bool) or not isinstance(self.ramp_bars, int) or not 0 <= self.ramp_bars <= 64:
            raise PromptError(f"ramp_bars must be an integer in 0..64, got {self.ramp_bars!r}")

    @classmethod
    def of(cls, style: str, **controls: object) -> Prompt:
        """A prompt of one style at weight 1."""
        return cls(mix=(StyleWeight(style, 1.0),), **controls)  # type: ignore[arg-type]

    def with_controls(self, **controls: object) -> Prompt:
        return replace(self, **controls)  # type: ignore[arg-type]

    def dominant(self) -> str:
        """The style with the largest weight (first listed wins ties)."""
        return max(self.mix, key=lambda sw: sw.weight).style

    def as_json(self) -> list[dict[str, object]]:
        return [{"style": sw.style, "weight": round(sw.weight, 4)} for sw in self.mix]


def _check_number(name: str, v: object, lo: float, hi: float) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise PromptError(f"{name} must be a finite number, got {v!r}")
    if not lo <= v <= hi:
        raise PromptError(f"{name} must be within {lo:g}..{hi:g}, got {v!r}")


def prompt_from_json(items: object, **controls: object) -> Prompt:
    """Build a Prompt from `[{"style": ..., "weight": ...}, ...]` (external input)."""
    if not isinstance(items, list):
        raise PromptError(f"prompt must be a list of {{style, weight}} objects, got {type(items).__name__}")
    mix = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "style" not in item:
            raise PromptError(f"prompt[{i}] must be an object with 'style' and 'weight', got {item!r}")
        mix.append(StyleWeight(item["style"], item.get("weight", 1.0)))
    return Prompt(mix=tuple(mix), **controls)  # type: ignore[arg-type]


__all__ = [
    "GENRE_IDS",
    "MODES",
    "SECTIONS",
    "Mode",
    "Prompt",
    "PromptError",
    "Section",
    "StyleWeight",
    "genre",
    "prompt_from_json",
]
