from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from concert.server.protocol import (
    MAX_FRAME_BYTES,
    ProtocolError,
    RateLimiter,
    Suggest,
    Upvote,
    Vote,
    parse_client_message,
)


def test_parses_the_three_message_kinds() -> None:
    assert parse_client_message('{"type":"vote","round":7,"option":"techno"}') == Vote(7, "techno")
    assert parse_client_message('{"type":"suggest","text":"dark techno"}') == Suggest("dark techno")
    assert parse_client_message('{"type":"upvote","suggestion":"3"}') == Upvote("3")


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "bad_json"),
        ("[1,2]", "bad_json"),
        ('{"round":1}', "unknown_type"),
        ('{"type":"dance"}', "unknown_type"),
        ('{"type":"vote","option":"x"}', "bad_field"),
        ('{"type":"vote","round":"7","option":"x"}', "bad_field"),
        ('{"type":"vote","round":true,"option":"x"}', "bad_field"),
        ('{"type":"vote","round":7,"option":""}', "bad_field"),
        ('{"type":"vote","round":7,"option":5}', "bad_field"),
        ('{"type":"suggest"}', "bad_field"),
        ('{"type":"upvote","suggestion":null}', "bad_field"),
        ("[" * 5000, "too_big"),
    ],
)
def test_bad_frames_get_typed_errors(frame: str, code: str) -> None:
    with pytest.raises(ProtocolError) as e:
        parse_client_message(frame)
    assert e.value.code == code
    assert e.value.message


def test_deep_nesting_under_the_cap_is_refused_not_crashed() -> None:
    with pytest.raises(ProtocolError) as e:
        parse_client_message("[" * (MAX_FRAME_BYTES - 10))
    assert e.value.code == "bad_json"


@given(st.text(max_size=600))
def test_arbitrary_text_never_crashes(text: str) -> None:
    try:
        parse_client_message(text)
    except ProtocolError as e:
        assert e.code in {"bad_json", "unknown_type", "bad_field", "too_big", "refused"}


@given(st.integers(min_value=-(2**63), max_value=2**63), st.text(min_size=1, max_size=64))
def test_any_valid_vote_round_trips(round_id: int, option: str) -> None:
    frame = json.dumps({"type": "vote", "round": round_id, "option": option})
    assert parse_client_message(frame) == Vote(round_id, option)


def test_rate_limiter_allows_bursts_then_refuses_then_recovers() -> None:
    rl = RateLimiter(rate=10, burst=5, strikes_to_close=3)
    assert all(rl.allow(0.0) for _ in range(5))
    assert not rl.allow(0.0)
    assert rl.allow(0.2)  # 2 tokens refilled
    assert not rl.should_close
    rl.allow(0.2)
    rl.allow(0.2)
    rl.allow(0.2)
    assert rl.should_close
