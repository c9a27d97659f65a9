"""What the conductor process and the web workers say to each other, all of it through Redis.

    conductor ──SET+PUBLISH state──▶ workers      the state frame every phone gets (fanned out by each worker)
    conductor ──PUBLISH audio──────▶ workers      MP3 frames for the workers' /stream listeners
    conductor ──PUBLISH audio_opus─▶ workers      Ogg pages for /stream.opus (header pages in a key)
    conductor ──SET health (expires)─▶ workers    /healthz: who is audible; missing = no conductor
    conductor ──SET snapshot────────▶ its successor   the set carried on after a fail-over or a restart
    workers ──PUBLISH news──────────▶ conductor    "something changed" (a vote), or an anarchy pull
    workers ──XADD commands─────────▶ conductor ──LPUSH reply:<id>──▶ the asking worker   (DJ, suggestions)
    workers ──HSET clients──────────▶ conductor    each worker's websocket count, stamped

Keys and channels live under the store's prefix. Pub/sub is at-most-once: a frame missed in a reconnect is
replaced by the next one (state is sent whole, at least every second); commands are a stream, so a command
is never lost while a conductor reads it, and the asking worker times out with a clear error if none does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from concert.store.base import StoreUnavailableError, honour_cancellation
from concert.store.redis_store import redact_url

COMMANDS_MAXLEN = 10_000  # commands kept in the stream (older ones are trimmed)
REPLY_TTL_S = 30  # seconds an unread reply is kept
CLIENTS_FRESH_S = 10.0  # a worker's client count older than this is a dead worker's, not counted
ANARCHY = "anarchy:"  # news prefix: a first direction vote in anarchy mode, then the style it pulls toward


class CommandTimeoutError(TimeoutError):
    """No conductor answered a command in time (none holds the lease, or it is changing hands)."""


@dataclass(frozen=True)
class BusConfig:
    prefix: str = "concert:"  # the store's key prefix
    socket_timeout_s: float = 2.0  # seconds to wait for a Redis reply
    command_timeout_s: float = 3.0  # seconds a worker waits for the conductor to answer a command
    health_ttl_s: float = 5.0  # the conductor's health key expires after this without a refresh


class Bus:
    def __init__(self, url: str, config: BusConfig | None = None) -> None:
        self.config = config or BusConfig()
        self.url = url
        self.redis: Any = aioredis.from_url(  # bytes replies (audio); typed Any: redis-py's stubs are loose
            url, socket_timeout=self.config.socket_timeout_s, socket_connect_timeout=self.config.socket_timeout_s
        )

    def key(self, name: str) -> str:
        return self.config.prefix + name

    async def aclose(self) -> None:
        await self.redis.aclose()

    @contextlib.asynccontextmanager
    async def _call(self) -> AsyncIterator[None]:
        try:
            yield
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as e:
            raise StoreUnavailableError(f"Redis at {redact_url(self.url)} did not answer: {e}") from None
        honour_cancellation()

    # ----- conductor → workers ------------------------------------------------
    async def publish_state(self, frame: str) -> None:
        async with self._call():
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(self.key("state"), frame)
                pipe.publish(self.key("state"), frame)
                await pipe.execute()

    async def latest_state(self) -> str | None:
        async with self._call():
            value = await self.redis.get(self.key("state"))
        return None if value is None else value.decode()

    async def publish_audio(self, data: bytes, channel: str = "audio") -> None:
        """Encoded stream bytes for the workers' listeners: "audio" (MP3) or "audio_opus" (Ogg Opus)."""
        async with self._call():
            await self.redis.publish(self.key(channel), data)

    async def set_opus_header(self, header: bytes) -> None:
        """The Ogg Opus stream's header pages, for a worker that joins while the stream is under way."""
        async with self._call():
            await self.redis.set(self.key("opus_header"), header)

    async def opus_header(self) -> bytes | None:
        async with self._call():
            value = await self.redis.get(self.key("opus_header"))
        return None if value is None else bytes(value)

    async def set_health(self, health: dict[str, Any]) -> None:
        async with self._call():
            await self.redis.set(self.key("health"), json.dumps(health), px=round(self.config.health_ttl_s * 1000))

    async def health(self) -> dict[str, Any] | None:
        async with self._call():
            value = await self.redis.get(self.key("health"))
        return None if value is None else dict(json.loads(value))

    async def save_snapshot(self, snapshot: dict[str, Any]) -> None:
        async with self._call():
            await self.redis.set(self.key("snapshot"), json.dumps(snapshot))

    async def load_snapshot(self) -> dict[str, Any] | None:
        async with self._call():
            value = await self.redis.get(self.key("snapshot"))
        return None if value is None else dict(json.loads(value))

    # ----- workers → conductor ------------------------------------------------
    async def news(self, message: str = "") -> None:
        async with self._call():
            await self.redis.publish(self.key("news"), message)

    async def report_clients(self, worker: str, count: int) -> None:
        async with self._call():
            await self.redis.hset(self.key("clients"), worker, f"{count}:{time.time():.3f}")

    async def forget_worker(self, worker: str) -> None:
        async with self._call():
            await self.redis.hdel(self.key("clients"), worker)

    async def total_clients(self) -> int:
        """Websocket clients on every live worker (counts older than CLIENTS_FRESH_S are a dead worker's)."""
        async with self._call():
            rows = await self.redis.hgetall(self.key("clients"))
        now, total = time.time(), 0
        for value in rows.values():
            count, _, stamp = value.decode().partition(":")
            if now - float(stamp) <= CLIENTS_FRESH_S:
                total += int(count)
        return total

    async def command(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """Ask the conductor to run `action`; its reply ({"ok": ...} or {"error": code, "message": ...}).

        CommandTimeoutError when no conductor answers within `command_timeout_s`."""
        cid = uuid.uuid4().hex
        payload = json.dumps({"id": cid, "action": action, "body": body, "at": time.time()})
        timeout = self.config.command_timeout_s
        async with self._call():
            await self.redis.xadd(self.key("commands"), {"c": payload}, maxlen=COMMANDS_MAXLEN, approximate=True)
            got = await self.redis.blpop([self.key(f"reply:{cid}")], timeout=max(1, round(timeout)))
        if got is None:
            raise CommandTimeoutError(f"the conductor did not answer {action!r} within {timeout:g} s")
        return dict(json.loads(got[1]))

    async def next_commands(self, last_id: str, block_ms: int) -> list[tuple[str, dict[str, Any]]]:
        """Commands after `last_id` ("$" = from now on), waiting up to `block_ms` for the first."""
        async with self._call():
            rows = await self.redis.xread({self.key("commands"): last_id}, count=100, block=block_ms)
        out: list[tuple[str, dict[str, Any]]] = []
        for _stream, entries in rows or ():
            for entry_id, fields in entries:
                out.append((entry_id.decode(), dict(json.loads(fields[b"c"]))))
        return out

    async def last_command_id(self) -> str:
        """The newest command's id ("0-0" if none): a new conductor answers only commands sent after it."""
        async with self._call():
            info = await self.redis.xrevrange(self.key("commands"), count=1)
        return info[0][0].decode() if info else "0-0"

    async def reply(self, command_id: str, result: dict[str, Any]) -> None:
        key = self.key(f"reply:{command_id}")
        async with self._call():
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.lpush(key, json.dumps(result))
                pipe.expire(key, REPLY_TTL_S)
                await pipe.execute()

    # ----- subscriptions ------------------------------------------------------
    async def listen(self, *names: str, stop: asyncio.Event) -> AsyncIterator[tuple[str, bytes]]:
        """(name, payload) for every message published on the named channels, until `stop` is set.

        Reconnects (with back-off) when Redis goes away; what was published meanwhile is missed."""
        channels = {self.key(n): n for n in names}
        backoff = 0.1
        while not stop.is_set():
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(*channels)
                backoff = 0.1
                while not stop.is_set():
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                    honour_cancellation()
                    if msg is not None and msg["type"] == "message":
                        yield channels[msg["channel"].decode()], msg["data"]
            except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError):
                await asyncio.sleep(backoff)
                backoff = min(2.0, backoff * 2)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
