"""The set's one bar clock: bar numbers that only move forward, and where playback is between them (pure).

Sources count bars on their own render clocks (they must: a change is scheduled on a bar not yet rendered).
What the audience hears runs on this clock, kept by the audible deck (`engine.playback.failover.Failover`): it stamps
every block it hands to the player with the bars starting in it, renumbered so they follow each other one by
one whichever source is audible, and with `Chunk.bar`, the bar position at the block's first sample. The
conductor, the outputs and the state frames read that stamp; nobody re-derives it.

    source bars   primary: 7 8 9 ┆            ┆ 12 13       (a source's own count; the fallback's differs)
    the set       ──────── 7 8 9 ┆ 10 11 (fb) ┆ 12 13 ──▶   (one bar per bar start, always +1)

Between bar starts the position moves linearly at the length of the last whole bar (the tempo now); it never
reaches the next bar before that bar's start is heard.
"""

from __future__ import annotations

from dataclasses import replace

from engine.source import Chunk

NEARLY_A_BAR = 0.999  # the fraction the position may reach before the next bar start is heard


class BarClock:
    """Stamps blocks on their way to the player; one instance per set, fed in playback order.

    Every bar start heard is the next bar: a source whose own count differs (the other source, or this one after
    it fell behind) is renumbered by an offset kept per source, which `offset` gives for scheduling.
    """

    def __init__(self) -> None:
        self._offset: dict[str, int] = {}  # set bar = source bar + offset, per source
        self._last_bar = -1  # last bar handed out
        self._bar_start = 0  # sample (set timeline) where that bar started
        self._bar_samples = 0  # samples the last whole bar took; 0 until two bar starts were heard

    def offset(self, source: str) -> int:
        """Set bar = `source`'s own bar + this."""
        return self._offset.get(source, 0)

    def position(self, sample: int) -> float | None:
        """Bar position of `sample` (at or after the last bar start), None before the first bar start."""
        if self._last_bar < 0:
            return None
        if self._bar_samples <= 0:
            return float(self._last_bar)
        frac = (sample - self._bar_start) / self._bar_samples
        return self._last_bar + min(max(frac, 0.0), NEARLY_A_BAR)

    def stamp(self, chunk: Chunk, source: str = "primary") -> Chunk:
        """`chunk` (on the set's timeline) with its bars renumbered onto this clock and `bar` set."""
        start = self.position(chunk.start_sample)  # where the block begins, by the bars heard before it
        bars = []
        offset = self._offset.get(source, 0)
        for off, bar in chunk.bar_starts:
            if bar + offset != self._last_bar + 1:  # another source's count, or this one's after a gap
                offset = self._last_bar + 1 - bar
            here = chunk.start_sample + off
            if self._last_bar >= 0:
                self._bar_samples = here - self._bar_start
            self._last_bar, self._bar_start = bar + offset, here
            bars.append((off, self._last_bar))
        self._offset[source] = offset
        if bars and bars[0][0] == 0:  # the block opens on a downbeat
            start = float(bars[0][1])
        return replace(chunk, bar_starts=tuple(bars), bar=start)
