"""The synth's bar plans: `engine.music.steering.Steering` over `Controls`, read once per bar (pure, not thread-safe).

Steering owns where changes land and how they glide (genre weights, tempo, energy and brightness move linearly
from their value at the landing downbeat to the target); mode and section switch at the landing bar. Values are
defined at downbeats; bar b is rendered from its start value (downbeat b) to its end value (downbeat b + 1), so
the curves are continuous unless `ramp_bars` is 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.music.interpret import Controls
from engine.music.steering import Steering


@dataclass(frozen=True)
class BarPlan:
    """Everything the renderer needs to know about one bar's controls."""

    bar: int  # absolute bar index
    start: Controls  # controls at this bar's downbeat (weights, bpm, energy, brightness glide)
    end: Controls  # controls at the next downbeat
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


class PromptSchedule:
    """The controls' steering plus the section bookkeeping; `plan(bar)` must be called for bars 0, 1, 2, ..."""

    def __init__(self, initial: Controls) -> None:
        self._steering: Steering[Controls] = Steering(initial, Controls.lerp)
        self._mode = initial.mode
        self._section = initial.section
        self._section_start = 0
        self._previous_section: str | None = None

    def schedule(self, controls: Controls, land: int, ramp: int) -> None:
        """Queue a change at bar `land` (the caller guarantees it is not yet planned)."""
        self._steering.schedule(controls, land, ramp)

    def plan(self, bar: int) -> BarPlan:
        for change in self._steering.advance(bar):
            self._mode = change.target.mode
            if change.target.section != self._section:
                self._previous_section = self._section
                self._section = change.target.section
                self._section_start = change.land
        return BarPlan(
            bar=bar,
            start=self._steering.value(bar),
            end=self._steering.value(bar + 1),
            mode=self._mode,
            section=self._section,
            bars_in_section=bar - self._section_start,
            previous_section=self._previous_section,
        )
