"""A mixer bus: overlap-add of events with a carry into later bars, a stateful filter, a declicked gain.

Events (one-shots, notes) are added at sample offsets that may run past the
bar; the overflow is kept and added to the next bar, so tails cross bar joins
intact. The bus filter keeps its state between bars. A gain that jumps between
bars is smoothed over a few milliseconds, so level changes never click.
"""

from __future__ import annotations

import numpy as np

from engine.synth.filters import StreamFilter


class Bus:
    def __init__(self, sections: int, declick: int) -> None:
        self.filter = StreamFilter(sections)
        self._sections = sections
        self._declick = declick  # samples
        self._carry = np.zeros(0, dtype=np.float32)  # (k,) audio that belongs to the coming bars
        self._last_gain: float | None = None

    @property
    def last_gain(self) -> float:
        """The gain at the end of the last bar (0 before the first)."""
        return self._last_gain or 0.0

    def reset(self) -> None:
        """Forget tails, filter state and gain (the bus went silent)."""
        self.filter = StreamFilter(self._sections)
        self._carry = np.zeros(0, dtype=np.float32)
        self._last_gain = None

    def mix(self, n: int, parts: list[tuple[int, np.ndarray]]) -> np.ndarray:
        """(n,) float32: the carry plus every (offset, signal) part; what passes the bar is carried."""
        end = max([n, len(self._carry)] + [o + len(x) for o, x in parts])
        buf = np.zeros(end, dtype=np.float32)  # (end,)
        buf[: len(self._carry)] += self._carry
        for o, x in parts:
            buf[o : o + len(x)] += x
        tail = buf[n:]
        self._carry = tail.copy() if np.any(tail) else np.zeros(0, dtype=np.float32)
        return buf[:n]

    def gain(self, g0: float, g1: float, n: int) -> np.ndarray | float:
        """Gain curve over the bar: linear g0 -> g1, the jump from the previous bar's end smoothed."""
        last, self._last_gain = self._last_gain, g1
        jump = 0.0 if last is None else last - g0
        if g0 == g1 and abs(jump) < 1e-9:
            return g0
        curve = np.linspace(g0, g1, n, endpoint=False, dtype=np.float32)  # (n,)
        if abs(jump) >= 1e-9:
            m = min(n, self._declick)
            curve[:m] += np.float32(jump) * np.linspace(1.0, 0.0, m, dtype=np.float32)
        return curve
