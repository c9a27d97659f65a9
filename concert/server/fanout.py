"""Explicit fan-out of state frames: latest-only per client, sent inline, slow clients finished aside.

A slow or dead client never delays the others: while one of its sends is still waiting on the socket, newer
frames only replace its one pending slot, and a send that stalls past `send_timeout` (or fails) drops it.

The common send completes without waiting (the socket has room: uvicorn writes the frame and returns), so the
fan-out steps each send coroutine by hand and only one that really waits gets a task of its own. A task, an
event and a timer per client per frame cost more than the write itself; at 10,000 phones they were half of
the fan-out's time. Every `batch` clients the loop polls I/O, so a big crowd's burst never holds up acks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass
from typing import Any

Send = Callable[[str], Coroutine[Any, Any, None]]  # an async def: the fan-out steps its coroutine


@dataclass(eq=False)
class Subscriber:
    send: Send
    pending: str | None = None  # the newest frame not yet started (only while a send is in flight)
    task: asyncio.Task[None] | None = None  # finishes a send that had to wait, then the pending frame
    closed: bool = False


class _Waiting(Exception):
    """A hand-stepped send suspended on `awaited` (a future, or None for a bare yield)."""

    def __init__(self, coro: Coroutine[Any, Any, None], awaited: Any) -> None:
        self.coro, self.awaited = coro, awaited


def _step(coro: Coroutine[Any, Any, None], value: BaseException | None = None) -> None:
    """Run `coro` until it finishes (return) or suspends (raise _Waiting); its own exceptions propagate."""
    try:
        awaited = coro.send(None) if value is None else coro.throw(value)
    except StopIteration:
        return
    raise _Waiting(coro, awaited)


class _Resume:
    """Awaitable that parks the running task on what a hand-stepped coroutine yielded, as a Task would have."""

    def __init__(self, awaited: Any) -> None:
        self.awaited = awaited

    def __await__(self) -> Generator[Any, None, None]:
        yield self.awaited  # a blocking future (the task waits for it) or None (one loop iteration)


async def _drive(coro: Coroutine[Any, Any, None], awaited: Any) -> None:
    """Finish a hand-stepped coroutine that suspended on `awaited`, as if a task had run it all along."""
    while True:
        error: BaseException | None = None
        try:
            await _Resume(awaited)
        except BaseException as e:  # the future's failure, or this task's cancellation: raised where it waits
            error = e
        try:
            _step(coro, error)
            return
        except _Waiting as again:
            awaited = again.awaited


class Fanout:
    """Publish a text frame to every subscriber without awaiting any of them."""

    def __init__(self, send_timeout: float = 5.0, batch: int = 64) -> None:
        self.send_timeout = send_timeout  # seconds a single send may take before the client is dropped
        self.batch = batch  # sends between two polls of the event loop
        self._latest: str | None = None
        self._spreader: asyncio.Task[None] | None = None
        self._subs: set[Subscriber] = set()
        self.dropped = 0  # clients dropped for stalling or failing

    def __len__(self) -> int:
        return len(self._subs)

    def subscribe(self, send: Send) -> Subscriber:
        sub = Subscriber(send)
        self._subs.add(sub)
        return sub

    async def unsubscribe(self, sub: Subscriber) -> None:
        sub.closed = True
        self._subs.discard(sub)
        if sub.task is not None and sub.task is not asyncio.current_task():
            sub.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sub.task

    def publish(self, frame: str) -> None:
        """Hand `frame` to every subscriber, `batch` sends per event-loop iteration."""
        self._latest = frame
        if self._spreader is None or self._spreader.done():
            self._spreader = asyncio.get_running_loop().create_task(self._spread())

    async def _spread(self) -> None:
        while self._latest is not None:
            frame, self._latest = self._latest, None
            for i, sub in enumerate(list(self._subs)):
                if sub.closed:
                    continue
                if sub.task is not None:  # a send is waiting on this client: keep only the newest frame
                    sub.pending = frame
                else:
                    self._start(sub, frame)
                if i % self.batch == self.batch - 1:
                    await asyncio.sleep(0)  # acks and votes in between; a newer frame gets a full pass of its own

    def _start(self, sub: Subscriber, frame: str) -> None:
        try:
            _step(sub.send(frame))  # usually the whole send, here and now
        except _Waiting as waiting:
            sub.task = asyncio.get_running_loop().create_task(self._finish(sub, waiting))
        except Exception:
            self._drop(sub)

    async def _finish(self, sub: Subscriber, waiting: _Waiting) -> None:
        """Finish a send that waited, then send whatever frame came meanwhile; drop the client on a stall."""
        try:
            async with asyncio.timeout(self.send_timeout):
                await _drive(waiting.coro, waiting.awaited)
            while (frame := sub.pending) is not None and not sub.closed:
                sub.pending = None
                try:
                    _step(sub.send(frame))
                except _Waiting as again:
                    async with asyncio.timeout(self.send_timeout):
                        await _drive(again.coro, again.awaited)
        except Exception:  # TimeoutError included
            self._drop(sub)
        finally:
            sub.task = None

    def _drop(self, sub: Subscriber) -> None:
        self.dropped += 1
        sub.closed = True
        self._subs.discard(sub)
