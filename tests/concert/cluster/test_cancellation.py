"""A task cancelled while it awaits Redis stops, on a real redis-server. redis-py can swallow the cancellation of
a call that is taking a connection from the pool and return its reply instead; a retrying loop around such a
call then never ends (a conductor ignored SIGTERM that way and played on as an orphan). Each Redis wrapper of
ours turns a swallowed cancellation back into CancelledError (`concert.store.base.honour_cancellation`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial

import pytest
import redis.asyncio as aioredis

from concert.cluster.bus import Bus
from concert.cluster.lease import Lease
from concert.store.base import honour_cancellation
from concert.store.redis_store import RedisStore


async def _cancelled_at_once(call: Callable[[], Awaitable[object]]) -> list[str]:
    """How `call` ends when its task is cancelled right after it starts, and a few ms later: "cancelled",
    "returned" (the swallow), or "finished first" (done before the cancel came, which is no cancellation)."""
    outcomes = []
    for delay in (0.0, 0.0, 0.001, 0.01):
        task = asyncio.ensure_future(call())
        await asyncio.sleep(0)  # the task runs up to its first wait: taking a connection from the pool
        if delay:
            await asyncio.sleep(delay)
        if not task.cancel():
            outcomes.append("finished first")
            continue
        try:
            await task
            outcomes.append("returned")
        except asyncio.CancelledError:
            outcomes.append("cancelled")
    return outcomes


def test_a_cancelled_wait_for_commands_stops(redis_url: str) -> None:
    async def main() -> list[str]:
        outcomes = []
        for _ in range(3):
            bus = Bus(redis_url)
            try:
                await bus.last_command_id()  # a connection waits in the pool: the swallow happens taking it
                outcomes += await _cancelled_at_once(partial(bus.next_commands, "$", block_ms=500))
            finally:
                await bus.aclose()
        return outcomes

    outcomes = asyncio.run(main())
    assert "cancelled" in outcomes and "returned" not in outcomes, outcomes


def test_cancelled_lease_and_store_calls_stop(redis_url: str) -> None:
    async def main() -> list[str]:
        outcomes = []
        for _ in range(3):
            r = aioredis.from_url(redis_url)
            store = RedisStore(redis_url)
            try:
                await r.ping()
                await store.ping()
                lease = Lease(r, "t:lease", "a", ttl_s=1.0)
                outcomes += await _cancelled_at_once(lease.renew)
                outcomes += await _cancelled_at_once(partial(store.vote, 1, "d" * 22, "stay"))
            finally:
                await r.aclose()
                await store.aclose()
        return outcomes

    outcomes = asyncio.run(main())
    assert "cancelled" in outcomes and "returned" not in outcomes, outcomes


def test_honour_cancellation_raises_only_for_a_task_asked_to_stop() -> None:
    async def swallowing() -> str:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            pass  # what redis-py sometimes does
        honour_cancellation()
        return "returned"

    async def main() -> None:
        calm = asyncio.ensure_future(swallowing())
        assert await calm == "returned"  # nobody asked it to stop: nothing happens
        asked = asyncio.ensure_future(swallowing())
        await asyncio.sleep(0)
        asked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asked

    asyncio.run(main())
