"""The set's one bar clock (`engine.playback.clock.BarClock`): renumbering across sources, position between bars."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.playback.clock import BarClock
from engine.source import Chunk, NowPlaying

NOW = NowPlaying("house", 120.0, "drop", 0.5, (("house", 1.0),))


def block(start: int, n: int, bars: tuple[tuple[int, int], ...] = ()) -> Chunk:
    return Chunk(np.zeros(n, np.float32), 1000, start, bars, NOW)


def test_position_moves_between_bar_starts_at_the_last_bar_length() -> None:
    clock = BarClock()
    first = clock.stamp(block(0, 100, ((0, 0),)))
    assert first.bar == 0.0 and first.bar_starts == ((0, 0),)
    assert clock.stamp(block(100, 100)).bar == 0.0  # one bar start heard: no length known yet
    second = clock.stamp(block(200, 100, ((50, 1),)))  # bar 1 at sample 250: bars last 250 samples
    assert second.bar == 0.0  # still no bar length to move by
    assert clock.stamp(block(300, 100)).bar == pytest.approx(1 + 50 / 250)
    assert clock.stamp(block(1000, 100)).bar == pytest.approx(1.999)  # never past the next start unheard
    assert clock.stamp(block(1100, 100, ((0, 2),))).bar == 2.0  # a block opening on a downbeat is on it


def test_a_new_source_continues_the_count_and_keeps_its_offset() -> None:
    clock = BarClock()
    clock.stamp(block(0, 100, ((0, 0),)), "primary")
    clock.stamp(block(100, 100, ((0, 1),)), "primary")
    a = clock.stamp(block(200, 100, ((0, 57),)), "fallback")  # the synth counts its own bars
    assert a.bar_starts == ((0, 2),) and clock.offset("fallback") == 2 - 57
    b = clock.stamp(block(300, 100, ((0, 58),)), "fallback")
    assert b.bar_starts == ((0, 3),)
    c = clock.stamp(block(400, 100, ((10, 2),)), "primary")  # the primary fell behind its old count
    assert c.bar_starts == ((10, 4),) and clock.offset("primary") == 2


@given(st.lists(st.tuples(st.sampled_from(["primary", "fallback"]), st.integers(-3, 3)), max_size=60))
def test_bars_only_move_forward_one_at_a_time(steps: list[tuple[str, int]]) -> None:
    clock, own = BarClock(), {"primary": 0, "fallback": 40}
    start, heard, positions = 0, [], []
    for source, jump in steps:
        own[source] = max(0, own[source] + jump)  # a source's own count may jump either way
        out = clock.stamp(block(start, 100, ((20, own[source]),)), source)
        heard += [b for _, b in out.bar_starts]
        positions.append(out.bar)
        start += 100
    assert heard == list(range(len(heard)))  # the set's first bar is 0, whatever the source counted
    known = [p for p in positions if p is not None]
    assert known == sorted(known)
