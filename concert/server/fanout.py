"""Explicit fan-out of state frames: one latest-only slot and one sender task per client.

A slow or dead client never delays the others: its slot only ever holds the newest
frame (older unsent frames are replaced), and a client whose send fails or stalls
past `send_timeout` is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Send = Callable[[str], Awaitable[None]]


@dataclass(eq=False)
class Subscriber:
    send: Send
    pending: str | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    closed: bool = False


class Fanout:
    """Publish a text frame to every subscriber without awaiting any of them."""

    def __init__(self, send_timeout: float = 5.0, batch: int = 32, spread: float = 0.1) -> None:
        self.send_timeout = send_timeout  # seconds a single send may take before the client is dropped
        self.batch = batch  # subscribers woken per event-loop iteration
        self.spread = spread  # seconds over which one frame's batches are spaced out, so no burst hogs the loop
        self._latest: str | None = None
        self._spreader: asyncio.Task[None] | None = None
        self._subs: set[Subscriber] = set()
        self.dropped = 0  # clients dropped for stalling or failing

    def __len__(self) -> int:
        return len(self._subs)

    def subscribe(self, send: Send) -> Subscriber:
        sub = Subscriber(send)
        sub.task = asyncio.get_running_loop().create_task(self._pump(sub))
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
        """Hand `frame` to every subscriber, waking them `batch` at a time.

        Between batches the event loop polls I/O, so a burst of sends to a big crowd
        never holds up vote acknowledgements for the whole burst.
        """
        self._latest = frame
        if self._spreader is None or self._spreader.done():
            self._spreader = asyncio.get_running_loop().create_task(self._spread())

    async def _spread(self) -> None:
        while self._latest is not None:
            frame, self._latest = self._latest, None
            subs = list(self._subs)
            batches = max(1, -(-len(subs) // self.batch))
            gap = self.spread / batches if batches > 1 else 0.0  # seconds between batches
            for i, sub in enumerate(subs):
                sub.pending = frame
                sub.wake.set()
                if i % self.batch == self.batch - 1:
                    await asyncio.sleep(gap)  # a newer frame meanwhile gets a full pass of its own

    async def _pump(self, sub: Subscriber) -> None:
        while not sub.closed:
            await sub.wake.wait()
            sub.wake.clear()
            frame, sub.pending = sub.pending, None
            if frame is None:
                continue
            try:
                await asyncio.wait_for(sub.send(frame), self.send_timeout)
            except (TimeoutError, Exception):
                self.dropped += 1
                sub.closed = True
                self._subs.discard(sub)
                return
