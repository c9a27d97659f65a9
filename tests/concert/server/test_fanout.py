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


def test_sends_that_wait_finish_in_order_with_their_outcomes() -> None:
    """A send stepped by hand that suspends (on a future, or a bare yield) finishes as if a task ran it."""

    async def main() -> None:
        fan = Fanout(send_timeout=1.0)
        got: list[str] = []
        gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def yields_then_sends(frame: str) -> None:
            await asyncio.sleep(0)  # a bare yield
            await asyncio.sleep(0.01)  # a timer future
            got.append(frame)

        async def reads_the_future(frame: str) -> None:
            got.append(f"{frame}:{await gate}")  # the value the future resolves to reaches the send

        broken: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def future_fails(frame: str) -> None:
            await broken

        fan.subscribe(yields_then_sends)
        fan.subscribe(reads_the_future)
        fan.subscribe(future_fails)
        fan.publish("a")
        await asyncio.sleep(0.05)
        assert got == ["a"] and len(fan) == 3  # the other two still wait, nobody dropped
        broken.set_exception(ConnectionResetError("peer gone"))
        gate.set_result("opened")
        await asyncio.sleep(0.02)
        assert sorted(got) == ["a", "a:opened"]
        assert fan.dropped == 1 and len(fan) == 2  # the failed future failed its send

    asyncio.run(main())


def test_unsubscribing_cancels_a_waiting_send_inside_it() -> None:
    async def main() -> None:
        fan = Fanout(send_timeout=5.0)
        cleaned: list[str] = []

        async def stuck(frame: str) -> None:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cleaned.append(frame)
                raise

        sub = fan.subscribe(stuck)
        fan.publish("x")
        await asyncio.sleep(0.01)
        assert sub.task is not None
        await fan.unsubscribe(sub)
        assert cleaned == ["x"] and len(fan) == 0 and fan.dropped == 0

    asyncio.run(main())


def test_a_timed_out_send_is_cancelled_inside_and_the_client_dropped() -> None:
    async def main() -> None:
        fan = Fanout(send_timeout=0.05)
        cleaned: list[str] = []

        async def stuck(frame: str) -> None:
            try:
                await asyncio.Event().wait()
            finally:
                cleaned.append(frame)

        fan.subscribe(stuck)
        fan.publish("y")
        await asyncio.sleep(0.15)
        assert cleaned == ["y"] and fan.dropped == 1 and len(fan) == 0

    asyncio.run(main())


def test_a_cancellation_between_bare_yields_reaches_the_send() -> None:
    """Cancelled while the send sits on a bare yield (no future to cancel), the send itself sees the cancel."""

    async def main() -> None:
        fan = Fanout(send_timeout=5.0)
        cleaned: list[str] = []

        async def spins(frame: str) -> None:
            try:
                while True:
                    await asyncio.sleep(0)
            finally:
                cleaned.append(frame)

        sub = fan.subscribe(spins)
        fan.publish("z")
        await asyncio.sleep(0.01)
        await asyncio.wait_for(fan.unsubscribe(sub), 1.0)  # a swallowed cancel would spin on forever
        assert cleaned == ["z"]

    asyncio.run(main())
