"""The conductor process: the one process that holds the Redis lease plays the set for every web worker.

It runs the whole audible path of a one-process set (`concert.server.runtime.running`: the engine, the deck,
the player thread, the conductor, speakers and recorder), without the HTTP side. Instead of fanning state out
to websockets it publishes it through Redis (`Bus`), with the MP3 stream and its health; it answers the
workers' commands (the booth, suggestions) and hears their news (votes, anarchy pulls).

Standbys wait for the lease. Whoever takes it restores the last snapshot: the same rounds stay open (their
votes are in Redis), the mix, the DJ's pins and the board carry on. A holder that learns another process holds
the lease stops at once (it was frozen past the expiry); a holder that cannot reach Redis keeps playing (no
other process can take the lease from a Redis it cannot reach either).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis import exceptions as redis_errors

from concert.cluster.bus import ANARCHY, Bus, BusConfig
from concert.cluster.lease import Lease
from concert.config import ServeConfig
from concert.crowd.ballots import Refused
from concert.outputs.stream import LiveStream
from concert.server.runtime import Runtime, running
from concert.store.base import StoreConfig, StoreUnavailableError
from engine.music.prompt import PromptError
from engine.music.styles import UnknownStyleError, genre

log = logging.getLogger(__name__)


async def conduct(config: ServeConfig, owner: str, stop: asyncio.Event) -> None:
    """Wait for the lease, then play the set until `stop` is set or the lease is lost."""
    bus = Bus(config.store, BusConfig(prefix=StoreConfig().key_prefix))
    lease = Lease(bus.redis, bus.key("lease"), owner, config.lease_s)
    try:
        if not await _take(lease, stop):
            return
        log.info("conductor %s holds the lease; the set plays here", owner)
        lost = asyncio.Event()
        keeper = asyncio.create_task(_keep(lease, lost), name="lease")  # renewed while the engine warms up too
        try:
            async with running(config) as rt:
                await _restore(rt, bus)
                rt.relay = _relay(rt, bus)
                rt.news.set()
                tasks = [
                    asyncio.create_task(coro, name=name)
                    for name, coro in (
                        ("commands", _commands(rt, bus)),
                        ("news", _news(rt, bus, stop)),
                        ("audio", _audio(rt.stream, bus, "audio")),
                        ("audio_opus", _audio(rt.opus, bus, "audio_opus")),
                        ("health", _health(rt, bus, owner)),
                    )
                ]
                waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(lost.wait())]
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                for t in [*tasks, *waiters]:
                    t.cancel()
                await asyncio.gather(*tasks, *waiters, return_exceptions=True)
                if not lost.is_set():  # a successor carries on from here (one that took over has its own)
                    with contextlib.suppress(Exception):
                        await bus.save_snapshot(rt.conductor.snapshot())
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
    finally:
        with contextlib.suppress(Exception):
            await lease.release()
        await bus.aclose()


async def _take(lease: Lease, stop: asyncio.Event) -> bool:
    while not stop.is_set():
        with contextlib.suppress(redis_errors.RedisError, OSError):  # Redis away: keep waiting for it
            if await lease.acquire():
                return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), lease.poll_every_s)
    return False


async def _keep(lease: Lease, lost: asyncio.Event) -> None:
    """Renew the lease; set `lost` when another process holds it."""
    while True:
        await asyncio.sleep(lease.renew_every_s)
        try:
            if await lease.renew() or await lease.acquire():  # acquire: Redis restarted and forgot the lease
                continue
        except Exception as e:  # Redis unreachable: nobody else can take the lease either; keep playing
            log.warning("cannot renew the conductor lease (%s); playing on", e)
            continue
        log.error("another process holds the conductor lease (%s); this one stops", await lease.holder())
        lost.set()
        return


async def _restore(rt: Runtime, bus: Bus) -> None:
    try:
        snap = await bus.load_snapshot()
    except StoreUnavailableError as e:
        log.warning("no snapshot to carry on from (%s); a fresh set starts", e)
        return
    if snap is None:
        return
    try:
        rt.conductor.restore(snap)
    except ValueError as e:
        log.warning("the last conductor's snapshot cannot be restored (%s); a fresh set starts", e)
        return
    log.info("carried the set on: rounds %d and %d stay open", rt.conductor.direction.id, rt.conductor.moves.id)


def _relay(rt: Runtime, bus: Bus) -> Callable[[str], Awaitable[None]]:
    async def relay(frame: str) -> None:
        await bus.publish_state(frame)
        await bus.save_snapshot(rt.conductor.snapshot())

    return relay


async def _commands(rt: Runtime, bus: Bus) -> None:
    """Answer the workers' commands, in order; those older than a worker waits for are dropped unanswered."""
    last = "$"
    while True:
        try:
            if last == "$":
                last = await bus.last_command_id()
            batch = await bus.next_commands(last, block_ms=1000)
        except StoreUnavailableError:
            await asyncio.sleep(0.5)
            continue
        for entry_id, command in batch:
            last = entry_id
            if time.time() - float(command.get("at", 0)) > bus.config.command_timeout_s:
                continue  # the asking worker has given up: too late to act on it
            result = await _execute(rt, str(command.get("action")), dict(command.get("body") or {}))
            with contextlib.suppress(StoreUnavailableError):
                await bus.reply(str(command["id"]), result)


async def _execute(rt: Runtime, action: str, body: dict[str, Any]) -> dict[str, Any]:
    try:
        if action == "suggest":
            return {"ok": True, **await rt.conductor.suggest(str(body.get("device")), str(body.get("text")))}
        return {"ok": True, **await rt.act(action, body)}
    except Refused as e:
        return {"error": e.code, "message": e.message}
    except (ValueError, PromptError, UnknownStyleError) as e:
        return {"error": "bad_request", "message": str(e)}
    except StoreUnavailableError:
        return {"error": "store_unavailable", "message": "the vote store is unreachable; try again in a moment"}
    except Exception:
        log.exception("the command %r failed", action)
        return {"error": "server_error", "message": "the conductor could not do that; nothing was changed"}


async def _news(rt: Runtime, bus: Bus, stop: asyncio.Event) -> None:
    """Workers' news: a vote changed a tally (publish state), or an anarchy pull (move the mix now)."""
    async for _name, payload in bus.listen("news", stop=stop):
        text = payload.decode(errors="replace")
        if text.startswith(ANARCHY):
            style = text.removeprefix(ANARCHY)
            with contextlib.suppress(UnknownStyleError):
                genre(style)
                rt.conductor.pull(style)
        rt.news.set()


async def _audio(stream: LiveStream, bus: Bus, channel: str) -> None:
    """A stream, passed on to the workers' listeners as it is encoded (an Ogg stream's headers kept in a key)."""
    header_saved = b""
    while True:
        with stream.subscribe(burst=False) as listener:
            async for data in listener:
                with contextlib.suppress(StoreUnavailableError):
                    header = stream.header
                    if header and header != header_saved:
                        await bus.set_opus_header(header)
                        header_saved = header
                    await bus.publish_audio(data, channel)
        if stream.closed:
            return
        await asyncio.sleep(0.1)  # dropped for falling behind (Redis was slow): take up the stream again


async def _health(rt: Runtime, bus: Bus, owner: str) -> None:
    """/healthz for the workers (expires if this process dies), and the workers' client count for the state."""
    while True:
        try:
            body, _code = await rt.health()
            await bus.set_health({**body, "conductor": owner})
            clients = await bus.total_clients()
            if clients != rt.remote_clients:
                rt.remote_clients = clients
                rt.news.set()
        except StoreUnavailableError:
            pass
        await asyncio.sleep(1.0)
