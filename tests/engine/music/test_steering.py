"""The one steering contract (`engine.music.steering`), property-tested on numbers: land, glide, replace."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.music.steering import Glide, Steering


def lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


changes = st.lists(
    st.tuples(st.integers(0, 40), st.floats(-10, 10, allow_nan=False), st.integers(0, 8)), min_size=1, max_size=8
)


@given(changes)
def test_the_curve_never_jumps_and_every_landed_change_reaches_its_target(plan: list[tuple[int, float, int]]) -> None:
    s = Steering(0.0, lerp)
    for land, target, ramp in plan:
        s.schedule(target, land, ramp)
    expected = {c.land: c for c in s.pending}  # what survives replacement
    previous = s.value(0.0)
    landed = []
    for tick in range(0, 60 * 4):
        bar = tick / 4
        before = s.value(bar)
        for change in s.advance(bar):
            landed.append(change)
            assert s.glide.start == pytest.approx(before)  # a glide starts where the curve was
        now = s.value(bar)
        if s.glide.ramp:  # a glide moves at most (its span / ramp) per bar: a quarter-bar tick is a small step
            span = abs(s.glide.end - s.glide.start)
            assert abs(now - previous) <= span / s.glide.ramp * 0.25 + 1e-9 or bar == s.glide.land
        previous = now
    assert [c.land for c in landed] == sorted(expected)
    last = landed[-1]
    assert s.value(last.land + last.ramp) == pytest.approx(last.target)


def test_a_later_change_replaces_pending_ones_on_the_same_or_later_bars_only() -> None:
    s = Steering(0.0, lerp)
    s.schedule(1.0, 4, 0)
    s.schedule(2.0, 8, 0)
    s.schedule(3.0, 8, 2)  # replaces the change on bar 8, keeps bar 4
    assert [(c.land, c.target) for c in s.pending] == [(4, 1.0), (8, 3.0)]
    s.schedule(9.0, 2, 0)  # lands before both: both dropped
    assert [(c.land, c.target) for c in s.pending] == [(2, 9.0)]


def test_a_change_mid_glide_starts_from_where_the_glide_had_got_to() -> None:
    s = Steering(0.0, lerp)
    s.schedule(8.0, 0, 4)
    s.advance(0)
    s.schedule(-4.0, 2, 2)
    s.advance(2)
    assert s.glide.start == pytest.approx(4.0)  # half way from 0 to 8
    assert s.value(3) == pytest.approx(0.0) and s.value(4) == pytest.approx(-4.0)


def test_glide_fraction_and_bad_ramps() -> None:
    g = Glide(0.0, 1.0, 4.0, 4)
    assert [g.fraction(b) for b in (3.0, 4.0, 6.0, 8.0, 9.0)] == [0.0, 0.0, 0.5, 1.0, 1.0]
    jump = Glide(0.0, 1.0, 4.0, 0)
    assert (jump.fraction(3.99), jump.fraction(4.0)) == (0.0, 1.0)
    with pytest.raises(ValueError, match="ramp must be >= 0"):
        Steering(0.0, lerp).schedule(1.0, 3, -1)
