from __future__ import annotations

import asyncio

from concert.server.fanout import Fanout


def test_slow_client_only_gets_the_latest_frame_and_never_delays_others() -> None:
    async def main() -> None:
        fan = Fanout(send_timeout=5.0)
        fast: list[str] = []
        slow: list[str] = []
        release = asyncio.Event()

        async def send_fast(frame: str) -> None:
            fast.append(frame)

        async def send_slow(frame: str) -> None:
            await release.wait()
            slow.append(frame)

        fan.subscribe(send_fast)
        fan.subscribe(send_slow)
        for i in range(5):
            fan.publish(f"s{i}")
            await asyncio.sleep(0.01)
        assert fast == [f"s{i}" for i in range(5)]
        release.set()
        await asyncio.sleep(0.05)
        assert slow == ["s0", "s4"]  # the first frame in flight, then only the newest

    asyncio.run(main())


def test_stalled_or_failing_clients_are_dropped() -> None:
    async def main() -> None:
        fan = Fanout(send_timeout=0.05)

        async def stall(frame: str) -> None:
            await asyncio.sleep(10)

        async def fail(frame: str) -> None:
            raise ConnectionError("gone")

        got: list[str] = []

        async def ok(frame: str) -> None:
            got.append(frame)

        fan.subscribe(stall)
        fan.subscribe(fail)
        sub = fan.subscribe(ok)
        fan.publish("a")
        await asyncio.sleep(0.2)
        assert fan.dropped == 2
        assert len(fan) == 1
        fan.publish("b")
        await asyncio.sleep(0.02)
        assert got == ["a", "b"]
        await fan.unsubscribe(sub)
        assert len(fan) == 0

    asyncio.run(main())
