"""The musical constants every part of the set shares: the meter and the tempo bounds (one owner each).

Every genre here is in 4/4. The tempo bounds are what any source accepts: `engine.music.prompt.Prompt` refuses
tempi outside them, and the conductor keeps the crowd's tempo moves inside them.
"""

from __future__ import annotations

BEATS_PER_BAR = 4  # beats in one bar (4/4)
BPM_MIN = 40.0  # slowest tempo any source accepts, beats per minute
BPM_MAX = 220.0  # fastest tempo any source accepts, beats per minute


def bar_seconds(bpm: float) -> float:
    """Seconds one bar lasts at a steady `bpm` (beats per minute)."""
    if not bpm > 0:
        raise ValueError(f"bpm must be > 0, got {bpm!r}")
    return BEATS_PER_BAR * 60.0 / bpm


def clamp_bpm(bpm: float) -> float:
    """`bpm` kept within [BPM_MIN, BPM_MAX]."""
    return min(BPM_MAX, max(BPM_MIN, bpm))
