"""CUE sheets from setlist records: positions in CD frames, tracks per file, the 99-track limit, quoting."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from concert.outputs.cue import MAX_TRACKS, cue_sheet, timestamp


def test_timestamps_are_minutes_seconds_and_frames() -> None:
    assert timestamp(0) == "00:00:00"
    assert timestamp(61.5) == "01:01:38"  # 0.5 s = 37.5 frames, rounded
    assert timestamp(3599.99) == "59:59:74" and timestamp(3599.999) == "60:00:00"
    assert timestamp(-1) == "00:00:00"


@given(st.floats(min_value=0, max_value=7200, allow_nan=False))
def test_a_timestamp_is_within_half_a_frame(seconds: float) -> None:
    mm, ss, ff = (int(x) for x in timestamp(seconds).split(":"))
    assert abs(mm * 60 + ss + ff / 75 - seconds) <= 0.5 / 75 + 1e-9 and ss < 60 and ff < 75


def test_a_busy_hour_keeps_99_tracks_and_says_so() -> None:
    records = [{"event": "landed", "t": 1.0 + i, "label": f"S{i}", "by": "crowd", "votes": i} for i in range(150)]
    text = cue_sheet(records, "audio-0000.w64", 0, 3600.0, opening="the set")
    assert text.count("TRACK") == MAX_TRACKS and "REM 52 later changes" in text
    assert '"the set"' in text  # the opening before the first change


def test_other_events_and_other_hours_are_left_out_and_quotes_are_safe() -> None:
    records = [
        {"event": "round", "t": 10.0, "label": "Techno"},
        {"event": "landed", "t": 20.0, "label": 'Lo "fi"', "by": "dj"},
        {"event": "landed", "t": 4000.0, "label": "Trance", "by": "dj"},
    ]
    text = cue_sheet(records, "audio-0000.w64", 0, 3600.0, opening="House")
    assert text.count("TRACK") == 2 and "Trance" not in text and "Techno" not in text
    assert "\"Lo 'fi' (dj)\"" in text
    later = cue_sheet(records, "audio-0001.w64", 1, 3600.0, opening="House")
    assert later.count("TRACK") == 2 and later.index("Lo 'fi'") < later.index("Trance")
