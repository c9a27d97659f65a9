from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from concert.crowd.rounds import Schedule, seconds_until
from engine.music.prompt import SECTIONS


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    round_bars = draw(st.integers(1, 32))
    return Schedule(
        round_bars=round_bars,
        song_phrases=draw(st.integers(1, 12)),
        close_lead_bars=draw(st.integers(0, round_bars - 1)),
    )


bars = st.integers(0, 100_000)


def test_default_schedule_walkthrough() -> None:
    s = Schedule()
    assert s.song_bars == 32
    assert [s.phrase_of(b) for b in (0, 7, 8, 31, 32)] == [0, 0, 1, 3, 4]
    assert [s.song_of(b) for b in (0, 31, 32, 63, 64)] == [0, 0, 1, 1, 2]
    assert [s.next_phrase_start(b) for b in (0, 7, 8)] == [8, 8, 16]
    assert [s.next_song_start(b) for b in (0, 31, 32)] == [32, 32, 64]
    # moves close 2 bars before each phrase boundary; inside the lead the next one is meant
    assert [s.moves_close_bar(b) for b in (0, 5, 6, 7, 8, 14, 15)] == [6, 6, 6, 14, 14, 14, 22]
    assert [s.direction_close_bar(b) for b in (0, 29, 30, 31, 32)] == [30, 30, 30, 62, 62]
    assert s.landing_bar(30) == 32
    assert [s.section_for(b) for b in range(0, 40, 8)] == ["intro", "build", "drop", "breakdown", "intro"]


def test_zero_lead_closes_on_the_boundary_but_never_at_bar_zero() -> None:
    s = Schedule(round_bars=4, song_phrases=2, close_lead_bars=0)
    assert [s.moves_close_bar(b) for b in (0, 3, 4, 5)] == [4, 4, 4, 8]
    assert [s.direction_close_bar(b) for b in (0, 8, 9)] == [8, 8, 16]


@pytest.mark.parametrize(
    ("phrases", "arrangement"),
    [
        (1, ("drop",)),
        (2, ("intro", "drop")),
        (3, ("intro", "drop", "breakdown")),
        (4, ("intro", "build", "drop", "breakdown")),
        (5, ("intro", "build", "drop", "drop", "breakdown")),
        (6, ("intro", "drop", "build", "drop", "drop", "breakdown")),
        (8, ("intro", "drop", "drop", "build", "drop", "drop", "drop", "breakdown")),
    ],
)
def test_arrangement(phrases: int, arrangement: tuple[str, ...]) -> None:
    assert Schedule(song_phrases=phrases).arrangement() == arrangement


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"round_bars": 0}, "round_bars"),
        ({"round_bars": 8.0}, "8.0"),
        ({"song_phrases": 0}, "song_phrases"),
        ({"close_lead_bars": -1}, "-1"),
        ({"close_lead_bars": 8}, "less than round_bars"),
        ({"round_bars": 1, "close_lead_bars": 1}, "less than round_bars"),
        ({"round_bars": True}, "True"),
    ],
)
def test_schedule_validates(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        Schedule(**kwargs)


def test_bars_must_be_natural_numbers() -> None:
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="bar"):
            Schedule().phrase_of(bad)  # type: ignore[arg-type]


def test_seconds_until() -> None:
    assert seconds_until(0.0, 1, 120.0) == pytest.approx(2.0)  # 4 beats at 2 beats/s
    assert seconds_until(6.5, 8, 174.0, beats_per_bar=4) == pytest.approx(1.5 * 4 * 60 / 174)
    assert seconds_until(3, 8, 90.0, beats_per_bar=3) == pytest.approx(10.0)
    assert seconds_until(9.0, 8, 120.0) == 0.0
    for kwargs in ({"bpm": 0.0}, {"bpm": float("nan")}, {"beats_per_bar": 0}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            seconds_until(0.0, 8, **{"bpm": 120.0, **kwargs})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bar_now"):
        seconds_until(float("inf"), 8, 120.0)


@given(schedules(), bars)
def test_boundaries_are_multiples_of_the_period_and_come_next(s: Schedule, bar: int) -> None:
    phrase, song = s.next_phrase_start(bar), s.next_song_start(bar)
    assert phrase % s.round_bars == 0 and bar < phrase <= bar + s.round_bars
    assert song % s.song_bars == 0 and bar < song <= bar + s.song_bars
    assert s.phrase_of(phrase) == s.phrase_of(bar) + 1 and s.song_of(song) == s.song_of(bar) + 1


@given(schedules(), bars)
def test_close_bars_are_the_next_close_a_lead_before_a_boundary(s: Schedule, bar: int) -> None:
    for close, period in ((s.moves_close_bar(bar), s.round_bars), (s.direction_close_bar(bar), s.song_bars)):
        landing = s.landing_bar(close)
        assert close >= bar
        assert landing == close + s.close_lead_bars and landing % period == 0 and landing > 0
        assert close - period < bar or landing == period  # no earlier close (landing on bar > 0) was skipped
        assert close <= bar + period  # a round is never more than one period away
    assert s.direction_close_bar(bar) in {s.moves_close_bar(b) for b in range(bar, s.direction_close_bar(bar) + 1)}


@given(schedules(), bars)
def test_direction_lands_on_a_song_start_with_an_intro_when_songs_have_one(s: Schedule, bar: int) -> None:
    landing = s.landing_bar(s.direction_close_bar(bar))
    assert s.phrase_in_song(landing) == 0
    if s.song_phrases >= 2:
        assert s.section_for(landing) == "intro"


@given(schedules(), st.integers(0, 50))
def test_sections_cover_every_bar_of_every_song(s: Schedule, song: int) -> None:
    start = song * s.song_bars
    sections = [s.section_for(b) for b in range(start, start + s.song_bars)]
    assert all(sec in SECTIONS for sec in sections)
    assert "drop" in sections
    per_phrase = sections[:: s.round_bars]
    assert tuple(per_phrase) == s.arrangement() and len(per_phrase) == s.song_phrases
    for i, sec in enumerate(sections):  # constant within a phrase
        assert sec == per_phrase[i // s.round_bars]
    if s.song_phrases >= 3:
        assert per_phrase[0] == "intro" and per_phrase[-1] == "breakdown"
    if s.song_phrases >= 4:
        assert per_phrase.count("build") == 1 and per_phrase[per_phrase.index("build") + 1] == "drop"


@given(st.floats(0, 1e4), st.integers(0, 10_000), st.floats(40, 220), st.integers(1, 12))
def test_seconds_until_is_proportional_and_never_negative(now: float, target: int, bpm: float, beats: int) -> None:
    t = seconds_until(now, target, bpm, beats)
    assert t >= 0.0
    if target >= now:
        assert t == pytest.approx((target - now) * beats * 60 / bpm)
