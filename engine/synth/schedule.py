"""Prompt changes on the bar clock: where they land and how they glide (pure, not thread-safe).

A change lands on a bar and glides over `ramp_bars` bars: genre weights, tempo,
energy and brightness move linearly from their value at the landing downbeat to
the target; mode and section switch at the landing bar. Values are defined at
downbeats; bar b is rendered from its start value (downbeat b) to its end value
(downbeat b + 1), so the curves are continuous unless `ramp_bars` is 0.

Pending changes: a new change replaces every pending change that lands on the
same or a later bar; earlier pending changes stay and land first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.interpret import Controls


@dataclass(frozen=True)
class Level:
    """The gliding controls at one downbeat."""

    weights: np.ndarray  # (n_genres,) float64, sums to 1
    bpm: float  # beats per minute
    energy: float  # 0..1
    brightness: float  # 0..1

    @classmethod
    def of(cls, c: Controls) -> Level:
        return cls(np.asarray(c.weights, dtype=np.float64).copy(), c.bpm, c.energy, c.brightness)

    def lerp(self, other: Level, a: float) -> Level:
        if a <= 0.0:
            return self
        if a >= 1.0:
            return other
        return Level(
            self.weights + (other.weights - self.weights) * a,
            self.bpm + (other.bpm - self.bpm) * a,
            self.energy + (other.energy - self.energy) * a,
            self.brightness + (other.brightness - self.brightness) * a,
        )


@dataclass(frozen=True)
class Glide:
    start: Level  # value at the landing downbeat
    end: Level  # target, reached `ramp` bars later
    land: int  # bar index of the landing downbeat
    ramp: int  # bars, 0 = jump

    def at(self, downbeat: int) -> Level:
        if self.ramp == 0:
            return self.end if downbeat >= self.land else self.start
        return self.start.lerp(self.end, (downbeat - self.land) / self.ramp)


@dataclass(frozen=True)
class BarPlan:
    """Everything the renderer needs to know about one bar's controls."""

    bar: int  # absolute bar index
    start: Level  # controls at this bar's downbeat
    end: Level  # controls at the next downbeat
    mode: str  # "major" or "minor"
    section: str  # "intro", "build", "drop" or "breakdown"
    bars_in_section: int  # 0 on the bar where the section started
    previous_section: str | None  # the section before this one, None at stream start

    @property
    def impact(self) -> bool:
        """First bar of a drop that follows another section."""
        return (
            self.section == "drop"
            and self.bars_in_section == 0
            and self.previous_section is not None
            and self.previous_section != "drop"
        )


@dataclass(frozen=True)
class _Change:
    land: int  # bar index
    controls: Controls
    ramp: int  # bars


@dataclass
class PromptSchedule:
    """Owns the glide in force and the pending changes; `plan(bar)` must be called for bars 0, 1, 2, ..."""

    initial: Controls
    _glide: Glide = field(init=False)
    _mode: str = field(init=False)
    _section: str = field(init=False)
    _section_start: int = field(init=False, default=0)
    _previous_section: str | None = field(init=False, default=None)
    _pending: list[_Change] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        level = Level.of(self.initial)
        self._glide = Glide(level, level, 0, 0)
        self._mode = self.initial.mode
        self._section = self.initial.section

    def schedule(self, controls: Controls, land: int, ramp: int) -> None:
        """Queue a change at bar `land` (the caller guarantees it is not yet planned)."""
        self._pending = [c for c in self._pending if c.land < land]
        self._pending.append(_Change(land, controls, ramp))

    def plan(self, bar: int) -> BarPlan:
        while self._pending and self._pending[0].land <= bar:
            c = self._pending.pop(0)
            self._glide = Glide(self._glide.at(c.land), Level.of(c.controls), c.land, c.ramp)
            self._mode = c.controls.mode
            if c.controls.section != self._section:
                self._previous_section = self._section
                self._section = c.controls.section
                self._section_start = c.land
        return BarPlan(
            bar=bar,
            start=self._glide.at(bar),
            end=self._glide.at(bar + 1),
            mode=self._mode,
            section=self._section,
            bars_in_section=bar - self._section_start,
            previous_section=self._previous_section,
        )
