"""Bar-aligned round scheduling for a DJ set (pure arithmetic on bar numbers).

A set is counted in bars from bar 0. Bars group into *phrases* of `round_bars`
bars and phrases into *songs* of `song_phrases` phrases:

    bar      0       8       16      24      32      40 ...     (round_bars=8, song_phrases=4)
    phrase   |  0    |  1    |  2    |  3    |  4    |
    song     |  0                            |  1
    section  intro   build   drop    breakdown intro ...

Two ballots run side by side:

* the **moves** ballot closes at the end of every phrase and lands on the next
  phrase;
* the **direction** ballot (where the next song goes) closes at the end of the
  song's last phrase and lands on the next song's first bar, so the segue runs
  from the old song's outro ("breakdown") into the new song's intro.

Each round closes `close_lead_bars` bars *before* its boundary: the generator
runs ahead of playback, and the lead gives it time to render the change so it
lands exactly on the boundary. A round that closes at bar `c` lands on bar
`c + close_lead_bars`. "At bar b" means at the start of bar b; a close bar equal
to the current bar means "close now".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.music.arrangement import Arrangement, check_bar, check_int
from engine.music.meter import BEATS_PER_BAR


@dataclass(frozen=True)
class Schedule(Arrangement):
    """The arrangement (`engine.music.arrangement`) plus when each round closes ahead of its boundary."""

    close_lead_bars: int = 2  # bars before a boundary at which its round closes, 0..round_bars-1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("close_lead_bars", self.close_lead_bars, 0)
        if self.close_lead_bars >= self.round_bars:
            raise ValueError(
                f"close_lead_bars must be less than round_bars ({self.round_bars}) so every round is open "
                f"for at least one bar, got {self.close_lead_bars!r}"
            )

    def moves_close_bar(self, bar: int) -> int:
        """The first moves close at or after `bar`: next_phrase_start − close_lead_bars, or, when
        `bar` is already past that (inside the lead), the close of the following phrase."""
        return _close_at_or_after(check_bar(bar), self.round_bars, self.close_lead_bars)

    def direction_close_bar(self, bar: int) -> int:
        """The first direction close at or after `bar`: next_song_start − close_lead_bars, or, when
        `bar` is already past that, the close of the following song."""
        return _close_at_or_after(check_bar(bar), self.song_bars, self.close_lead_bars)

    def landing_bar(self, close_bar: int) -> int:
        """The boundary bar on which a round closing at `close_bar` lands."""
        return check_bar(close_bar) + self.close_lead_bars


def seconds_until(bar_now: float, target_bar: int, bpm: float, beats_per_bar: int = BEATS_PER_BAR) -> float:
    """Seconds from (fractional) bar position `bar_now` until the start of `target_bar`, 0 once passed.

    bpm: beats per minute; beats_per_bar: beats in one bar (4 for 4/4).
    """
    if isinstance(bar_now, bool) or not isinstance(bar_now, (int, float)) or not math.isfinite(bar_now) or bar_now < 0:
        raise ValueError(f"bar_now must be a finite bar position >= 0, got {bar_now!r}")
    check_bar(target_bar)
    if isinstance(bpm, bool) or not isinstance(bpm, (int, float)) or not math.isfinite(bpm) or bpm <= 0:
        raise ValueError(f"bpm must be a finite number > 0, got {bpm!r}")
    check_int("beats_per_bar", beats_per_bar, 1)
    return max(0.0, (target_bar - bar_now) * beats_per_bar * 60.0 / bpm)


def _close_at_or_after(bar: int, period: int, lead: int) -> int:
    """Smallest k·period − lead (k >= 1) that is >= bar."""
    k = max(1, -(-(bar + lead) // period))
    return k * period - lead
