"""The steering contract every source keeps: a change lands on a bar and glides in over `ramp` bars (pure).

    value ▲            ┌── target
          │         ╱
          │      ╱        a change scheduled for bar `land` glides linearly (in bars) from the value the
          │───╱           stream had at `land` to its target, reached `ramp` bars later (ramp 0: a jump)
          └──┴──┴──┴──▶ bar
            land   land + ramp

Later changes replace pending ones: scheduling a change drops every pending change that lands on the same or
a later bar; earlier pending changes stay and land first. A change that lands while a glide is under way
starts from wherever that glide had got to, so the curve never jumps (unless `ramp` is 0).

What is steered is the caller's: the synth's `Controls`, the token model's conditioning state. `blend(start,
end, a)` says what lies a fraction `a` of the way between two of them. Not thread-safe: the sources hold
their own lock around it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Glide(Generic[T]):
    start: T  # value at the landing bar
    end: T  # target, reached `ramp` bars after landing
    land: float  # bar the glide starts on
    ramp: int  # bars the glide takes; 0 = a jump at `land`

    def fraction(self, bar: float) -> float:
        """How far along the glide the bar clock at `bar` is: 0 before `land`, 1 from `land + ramp` on."""
        if self.ramp <= 0:
            return 1.0 if bar >= self.land else 0.0
        return min(1.0, max(0.0, (bar - self.land) / self.ramp))


@dataclass(frozen=True)
class Change(Generic[T]):
    land: int  # bar the change lands on
    target: T  # where its glide ends
    ramp: int  # bars its glide takes


class Steering(Generic[T]):
    """The glide in force and the changes waiting to land; `advance` must be called with a clock that only grows."""

    def __init__(self, initial: T, blend: Callable[[T, T, float], T]) -> None:
        self._blend = blend
        self.glide: Glide[T] = Glide(initial, initial, 0.0, 0)
        self._pending: list[Change[T]] = []

    @property
    def pending(self) -> tuple[Change[T], ...]:
        return tuple(self._pending)

    def schedule(self, target: T, land: int, ramp: int) -> None:
        """Queue a change on bar `land` (the caller guarantees that bar is not yet rendered)."""
        if ramp < 0:
            raise ValueError(f"ramp must be >= 0 bars, got {ramp}")
        self._pending = [c for c in self._pending if c.land < land]
        self._pending.append(Change(land, target, ramp))

    def advance(self, bar: float) -> list[Change[T]]:
        """Land every pending change due by bar clock `bar`; returns them, oldest first."""
        landed = []
        while self._pending and self._pending[0].land <= bar:
            change = self._pending.pop(0)
            self.glide = Glide(self.value(change.land), change.target, float(change.land), change.ramp)
            landed.append(change)
        return landed

    def value(self, bar: float) -> T:
        """The steered value at bar clock `bar` on the glide in force."""
        g = self.glide
        a = g.fraction(bar)
        if a <= 0.0:
            return g.start
        if a >= 1.0:
            return g.end
        return self._blend(g.start, g.end, a)
