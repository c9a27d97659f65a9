"""Per-address caps shared by two workers through a real Redis: an address cannot hold twice its share by
landing on two processes, and a worker that dies frees its connections."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from concert.cluster.limits import SharedLimits
from concert.server.limits import LimitsConfig, Refusal


def _pair(redis_url: str, config: LimitsConfig) -> tuple[aioredis.Redis, SharedLimits, SharedLimits]:
    r = aioredis.from_url(redis_url)
    return r, SharedLimits(config, r, "t:"), SharedLimits(config, r, "t:")


def test_the_connection_cap_holds_across_workers(redis_url: str) -> None:
    async def main() -> None:
        r, one, two = _pair(redis_url, LimitsConfig(connections_per_address=4))
        try:
            handles = [await w.connect("10.0.0.1") for w in (one, two, one, two)]
            for w in (one, two):
                with pytest.raises(Refusal) as e:
                    await w.connect("10.0.0.1")
                assert e.value.code == "too_many_connections"
            assert await one.connect("10.0.0.2")  # another address has its own share
            await two.disconnect("10.0.0.1", handles[1])
            assert await one.connect("10.0.0.1")  # a slot freed on one worker is free on the other
            assert one.refused["too_many_connections"] == 1 and two.refused["too_many_connections"] == 1
        finally:
            await r.aclose()

    asyncio.run(main())


def test_message_rates_are_shared_per_device_and_per_address(redis_url: str) -> None:
    async def main() -> None:
        cfg = LimitsConfig(device_messages_per_minute=10.0, address_messages_per_minute=15.0)
        r, one, two = _pair(redis_url, cfg)
        try:
            taken = 0
            for i in range(10):  # one device, its messages split over two workers
                await (one if i % 2 else two).message("10.0.0.1", "dev-a")
                taken += 1
            with pytest.raises(Refusal, match="this phone"):
                await one.message("10.0.0.1", "dev-a")
            for i in range(5):  # a second device on the same address: the address's bucket runs dry at 15
                await (one if i % 2 else two).message("10.0.0.1", "dev-b")
            with pytest.raises(Refusal, match="your network"):
                await two.message("10.0.0.1", "dev-b")
            await one.message("10.0.0.9", "dev-c")  # other addresses are untouched
        finally:
            await r.aclose()

    asyncio.run(main())


def test_new_devices_per_minute_are_shared(redis_url: str) -> None:
    async def main() -> None:
        r, one, two = _pair(redis_url, LimitsConfig(new_devices_per_minute=6.0))
        try:
            for i in range(6):
                await (one if i % 2 else two).mint("10.0.0.1")
            with pytest.raises(Refusal) as e:
                await one.mint("10.0.0.1")
            assert e.value.code == "too_many_devices"
        finally:
            await r.aclose()

    asyncio.run(main())


def test_an_unreachable_redis_leaves_the_local_backstop(free_port: int) -> None:
    async def main() -> None:
        r = aioredis.from_url(f"redis://127.0.0.1:{free_port}/0", socket_connect_timeout=0.2)
        limits = SharedLimits(LimitsConfig(connections_per_address=2), r, "t:")
        try:
            await limits.connect("10.0.0.1")
            await limits.connect("10.0.0.1")
            with pytest.raises(Refusal):  # the process's own cap still holds
                await limits.connect("10.0.0.1")
            assert limits.outage.down
        finally:
            await r.aclose()

    asyncio.run(main())
