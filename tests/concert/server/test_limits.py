"""Per-address caps (`concert.server.limits`), on a passed-in clock: connections, new devices, messages."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from concert.server.limits import Bucket, Gate, LimitsConfig, Refusal


def test_an_address_holds_at_most_its_connections_and_gets_them_back() -> None:
    gate = Gate(LimitsConfig(connections_per_address=3))
    for _ in range(3):
        gate.connect("10.0.0.1", 0.0)
    with pytest.raises(Refusal) as e:
        gate.connect("10.0.0.1", 0.0)
    assert e.value.code == "too_many_connections"
    gate.connect("10.0.0.2", 0.0)  # another address is not affected
    gate.disconnect("10.0.0.1", 1.0)
    gate.connect("10.0.0.1", 1.0)
    assert gate.refused == {"too_many_connections": 1}


def test_new_devices_per_minute_refill_over_time() -> None:
    gate = Gate(LimitsConfig(new_devices_per_minute=6.0))
    for _ in range(6):
        gate.mint("a", 0.0)
    with pytest.raises(Refusal, match="too many new devices"):
        gate.mint("a", 1.0)
    gate.mint("a", 11.0)  # one more every 10 s
    with pytest.raises(Refusal):
        gate.mint("a", 11.5)


def test_a_device_is_rate_limited_across_its_connections_and_an_address_across_its_devices() -> None:
    gate = Gate(LimitsConfig(device_messages_per_minute=100.0, address_messages_per_minute=150.0))
    for _ in range(100):
        gate.message("a", "phone-1", 0.0)
    with pytest.raises(Refusal) as e:
        gate.message("a", "phone-1", 0.0)  # a new socket does not reset the device's bucket
    assert e.value.code == "rate_limited" and "this phone" in e.value.message
    for _ in range(50):
        gate.message("a", "phone-2", 0.0)
    with pytest.raises(Refusal, match="your network"):
        gate.message("a", "phone-3", 0.0)  # the address's share is spent
    gate.message("b", "phone-4", 0.0)


def test_idle_state_is_forgotten_so_memory_stays_bounded() -> None:
    gate = Gate(LimitsConfig(idle_seconds=60.0))
    for i in range(1000):
        gate.message(f"10.0.{i // 250}.{i % 250}", f"phone-{i}", 0.0)
    assert gate.tracked == (1000, 1000)
    gate.connect("10.9.9.9", 30.0)  # open connections keep their address
    gate.message("10.9.9.9", "late", 100.0)
    assert gate.tracked == (1, 1)


@given(st.lists(st.floats(0.0, 5.0), min_size=1, max_size=200))
def test_a_bucket_never_grants_more_than_a_minutes_worth_plus_the_refill(gaps: list[float]) -> None:
    bucket, now, granted = Bucket(30.0), 0.0, 0
    for gap in gaps:
        now += gap
        granted += bucket.take(now)
    assert granted <= 30 + now * 30 / 60 + 1e-9


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="connections_per_address"):
        LimitsConfig(connections_per_address=0)
    with pytest.raises(ValueError, match="new_devices_per_minute"):
        LimitsConfig(new_devices_per_minute=0)
