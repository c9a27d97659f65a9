"""The conductor lease on a real redis-server: one holder, renewals only by it, a lapsed lease changes hands."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from concert.cluster.lease import Lease


def test_one_holder_at_a_time_and_only_it_renews_or_releases(redis_url: str) -> None:
    async def main() -> None:
        r = aioredis.from_url(redis_url)
        try:
            a, b = Lease(r, "t:lease", "a", ttl_s=1.0), Lease(r, "t:lease", "b", ttl_s=1.0)
            assert await a.acquire() and not await b.acquire()
            assert await a.acquire()  # the holder may ask again
            assert await a.renew() and not await b.renew()
            assert not await b.release() and await a.holder() == "a"
            assert await a.release() and await a.holder() is None
            assert await b.acquire() and await b.holder() == "b"
        finally:
            await r.aclose()

    asyncio.run(main())


def test_a_lapsed_lease_goes_to_the_standby_and_the_old_holder_learns_it(redis_url: str) -> None:
    async def main() -> None:
        r = aioredis.from_url(redis_url)
        try:
            a, b = Lease(r, "t:lease", "a", ttl_s=0.4), Lease(r, "t:lease", "b", ttl_s=0.4)
            assert await a.acquire()
            for _ in range(4):  # renewed in time, it holds well past its ttl
                await asyncio.sleep(a.renew_every_s)
                assert await a.renew() and not await b.acquire()
            await asyncio.sleep(0.6)  # a froze past the expiry
            assert await b.acquire()
            assert not await a.renew()  # and cannot take it back by renewing
            assert await b.holder() == "b"
        finally:
            await r.aclose()

    asyncio.run(main())


def test_bad_lease_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        Lease(object(), "k", "a", ttl_s=0.0)
    with pytest.raises(ValueError, match="owner"):
        Lease(object(), "k", "", ttl_s=1.0)


def test_a_standby_waits_out_an_unreachable_redis_instead_of_crashing(free_port: int) -> None:
    from concert.cluster.conductor_node import _take

    async def main() -> bool:
        r = aioredis.from_url(f"redis://127.0.0.1:{free_port}/0", socket_connect_timeout=0.2)
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(1.0, stop.set)
        try:
            return await _take(Lease(r, "t:lease", "standby", ttl_s=0.6), stop)
        finally:
            await r.aclose()

    assert asyncio.run(main()) is False  # no lease, no exception: it polled until told to stop
