"""A web worker: phones' websockets, pages, /stream and the booth's HTTP, with the set itself elsewhere.

Several workers share one port; the conductor process plays the set (`conductor_node`). A worker checks each
vote against the ballots of the last state frame (`OpenBallots`, the conductor's own rule) and writes it to
the shared store itself: the hot path costs one Redis script, never a trip through the conductor. Suggestions
and the booth's actions go to the conductor as commands; state frames and MP3 arrive by pub/sub and are fanned
out here. A worker dying costs its own clients a reconnect (the page retries with back-off and keeps its
signed device cookie, valid on every worker); the music does not stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from concert.cluster.bus import ANARCHY, Bus, BusConfig, CommandTimeoutError
from concert.cluster.limits import SharedLimits
from concert.config import ServeConfig
from concert.crowd.ballots import OpenBallots, Refused
from concert.crowd.conductor import Counters
from concert.outputs.mp3 import Mp3Stream
from concert.outputs.opus import OpusStream
from concert.outputs.stream import StreamConfig
from concert.server.fanout import Fanout
from concert.server.heap import HeapConfig, HeapStats, hygiene
from concert.server.identity import DeviceSigner
from concert.server.outage import Outage
from concert.store import open_store
from concert.store.base import RoundClosedError, Store, StoreConfig, StoreUnavailableError, UnknownSuggestionError

log = logging.getLogger(__name__)

FIRST_STATE_S = 30.0  # a worker waits this long for a conductor's first state frame before it starts anyway
REPORT_EVERY_S = 1.0  # how often a worker reports its client count, seconds


async def ask(bus: Bus, action: str, body: dict[str, Any]) -> dict[str, Any]:
    """Run `action` on the conductor and return its reply's fields; Refused(code, message) when it refused.

    CommandTimeoutError when no conductor answered, StoreUnavailableError when Redis is unreachable."""
    reply = await bus.command(action, body)
    if "error" in reply:
        raise Refused(str(reply["error"]), str(reply.get("message")))
    return {k: v for k, v in reply.items() if k != "ok"}


class Floor:
    """The conductor as a worker sees it: `vote`, `suggest`, `upvote` and `state`, like `Conductor`'s."""

    def __init__(self, store: Store, bus: Bus) -> None:
        self.store = store
        self.bus = bus
        self.counters = Counters()
        self.frame: str | None = None  # the last state frame, as published
        self._state: dict[str, Any] | None = None
        self._ballots: OpenBallots | None = None
        self._news_pending = False
        self._sending: set[asyncio.Task[None]] = set()
        self._played: dict[str, Any] | None = None

    def take_frame(self, frame: str) -> None:
        """A state frame from the conductor: the ballots open now."""
        state = json.loads(frame)
        state.pop("type", None)
        self.frame, self._state, self._ballots = frame, state, OpenBallots.from_state(state)

    async def state(self, clients: int) -> dict[str, Any]:
        if self._state is None:
            raise StoreUnavailableError("no conductor has published the set's state yet")
        return self._state

    async def played(self) -> dict[str, Any]:
        """The conductor's recent changes, from its last snapshot; read again only when the state says more landed."""
        landed = int((self._state or {}).get("landed", 0))
        if self._played is None or self._played["landed"] != landed:
            snap = await self.bus.load_snapshot() or {}
            booth = snap.get("booth") or {}
            played = [p for p in booth.get("played", ()) if isinstance(p, dict)]
            self._played = {"landed": int(booth.get("landed", landed)), "recent": list(reversed(played))}
        return self._played

    async def vote(self, device: str, round_id: int, option_id: str) -> None:
        if self._ballots is None:
            raise Refused("wrong_round", "the set is starting; vote in a moment")
        cast_ = self._ballots.check(round_id, option_id)
        try:
            result = await self.store.vote(round_id, device, option_id)
        except RoundClosedError:
            raise Refused("wrong_round", f"round {round_id} just closed; vote in the next one") from None
        if result.previous is not None:
            self.counters.vote_changes += 1
        else:
            self.counters.votes += 1
            if cast_.kind == "direction" and cast_.style is not None and self._mode() == "anarchy":
                self._nudge(ANARCHY + cast_.style)
                return
        self._nudge()

    def _mode(self) -> str:
        return str((self._state or {}).get("mode", ""))

    def _nudge(self, message: str = "") -> None:
        """Tell the conductor a tally moved (at most one message per 50 ms per worker), or pass on an anarchy
        pull (every one). Never awaited by the vote: the ack does not wait for it."""
        if not message:
            if self._news_pending:
                return
            self._news_pending = True
        task = asyncio.get_running_loop().create_task(self._send_news(message))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send_news(self, message: str) -> None:
        try:
            if not message:
                try:
                    await asyncio.sleep(0.05)
                finally:
                    self._news_pending = False  # from here a new tally change schedules its own message
            await self.bus.news(message)
        except StoreUnavailableError:
            pass  # the next state frame carries the tally anyway

    async def suggest(self, device: str, text: str) -> dict[str, object]:
        try:
            return await ask(self.bus, "suggest", {"device": device, "text": text})
        except CommandTimeoutError:
            raise Refused("unavailable", "the set is changing hands; try again in a few seconds") from None
        except Refused as e:
            if e.code == "bad_request":
                raise ValueError(e.message) from None
            if e.code == "store_unavailable":
                raise StoreUnavailableError(e.message) from None
            raise

    async def upvote(self, device: str, suggestion_id: str) -> dict[str, object]:
        try:
            s = await self.store.upvote(suggestion_id, device)
        except UnknownSuggestionError:
            raise Refused("unknown_suggestion", f"suggestion {suggestion_id!r} is gone or never was") from None
        self._nudge()
        return {"id": s.id, "text": s.text, "upvotes": s.upvotes}


@dataclass
class WorkerRuntime:
    """What `concert.server.app` and `concert.server.ws` use, for a worker: the same names as `Runtime`'s."""

    config: ServeConfig
    worker: str  # this worker's id (host:pid)
    store: Store
    bus: Bus
    conductor: Floor
    stream: Mp3Stream  # a relay: MP3 from the conductor
    opus: OpusStream  # a relay: Ogg Opus from the conductor
    signer: DeviceSigner
    gate: SharedLimits
    store_outage: Outage = field(default_factory=lambda: Outage("the vote store"))
    fanout: Fanout = field(default_factory=Fanout)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    heap: HeapStats = field(default_factory=HeapStats)

    @property
    def clients(self) -> int:
        return len(self.fanout)

    def clients_changed(self) -> None:
        """Counts are reported each second (`_report`); the conductor puts the total in the state."""

    async def act(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """One of the booth's actions, run by the conductor; TimeoutError when it cannot be done now."""
        try:
            return await ask(self.bus, action, body)
        except StoreUnavailableError as e:
            raise TimeoutError(str(e)) from None
        except Refused as e:
            if e.code in ("unavailable", "store_unavailable", "server_error"):
                raise TimeoutError(e.message) from None
            raise ValueError(e.message) from None

    async def health(self) -> tuple[dict[str, object], int]:
        store_ok = await self.store.ping()
        try:
            conductor = await self.bus.health()
        except StoreUnavailableError:
            conductor = None
        if conductor is None:
            body: dict[str, object] = {
                "ok": False,
                "status": "down",
                "message": "no conductor process holds the set (none is running, or it is changing hands)",
                "store": store_ok,
            }
        else:
            body = {**conductor, "store": store_ok}
            if not store_ok:
                body.update(ok=False, status="down")
        body.update(
            worker=self.worker,
            worker_clients=self.clients,
            worker_listeners={"mp3": self.stream.listeners, "opus": self.opus.listeners},
        )
        return body, 200 if body.get("status") in ("ok", "degraded") else 503

    async def _listen(self, stop: asyncio.Event) -> None:
        async for name, payload in self.bus.listen("state", "audio", "audio_opus", stop=stop):
            if name == "audio":
                self.stream.relay(payload)
                continue
            if name == "audio_opus":
                self.opus.relay(payload)
                if self.opus.needs_header:  # joined while the stream was under way: its headers are in a key
                    with contextlib.suppress(StoreUnavailableError, ValueError):
                        header = await self.bus.opus_header()
                        if header:
                            self.opus.set_header(header)
                continue
            frame = payload.decode()
            try:
                self.conductor.take_frame(frame)
            except (ValueError, KeyError, TypeError):
                log.exception("a state frame from the conductor could not be read; keeping the last one")
                continue
            self.fanout.publish(frame)

    async def _report(self) -> None:
        while True:
            with contextlib.suppress(StoreUnavailableError):
                await self.bus.report_clients(self.worker, self.clients)
            await asyncio.sleep(REPORT_EVERY_S)


@contextlib.asynccontextmanager
async def worker_running(config: ServeConfig, worker: str) -> AsyncIterator[WorkerRuntime]:
    """A worker's runtime: connected to Redis, subscribed, with the conductor's last state (waits for one)."""
    prefix = StoreConfig().key_prefix
    store = open_store(config.store)
    bus = Bus(config.store, BusConfig(prefix=prefix))
    stop = asyncio.Event()
    rt = WorkerRuntime(
        config,
        worker,
        store,
        bus,
        Floor(store, bus),
        Mp3Stream(StreamConfig(), encode=False),
        OpusStream(StreamConfig(), encode=False),
        DeviceSigner(config.secret),
        SharedLimits(config.limits, bus.redis, prefix),
    )
    try:
        rt.tasks = [
            asyncio.create_task(rt._listen(stop), name="listen"),
            asyncio.create_task(rt._report(), name="report"),
            asyncio.create_task(rt.gate.refresh_loop(), name="limits"),
            asyncio.create_task(hygiene(HeapConfig(), rt.heap), name="heap"),
        ]
        deadline = asyncio.get_running_loop().time() + FIRST_STATE_S
        while rt.conductor.frame is None and asyncio.get_running_loop().time() < deadline:
            with contextlib.suppress(StoreUnavailableError):
                frame = await bus.latest_state()
                if frame is not None:
                    rt.conductor.take_frame(frame)
                    break
            await asyncio.sleep(0.2)
        yield rt
    finally:
        stop.set()
        for t in rt.tasks:
            t.cancel()
        await asyncio.gather(*rt.tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await bus.forget_worker(worker)
        rt.stream.close()
        rt.opus.close()
        await store.aclose()
        await bus.aclose()
