"""The per-address caps of `concert.server.limits`, shared by every web worker through Redis.

The kernel spreads one address's connections over the workers (SO_REUSEPORT hashes the source port too), so a
cap kept per process would let an address hold N times its share. Here every count lives in Redis:

    lim:conn:<address>     sorted set  connection id -> expiry (unix s); each worker refreshes its own
                           connections, so a dead worker's lapse within CONNECTION_TTL_S
    lim:mint:<address>     hash        token bucket of new devices (tokens, last)
    lim:msg:<address>      hash        token bucket of the address's messages
    lim:dev:<device>       hash        token bucket of the device's messages

A process-local `Gate` with the same caps stays in front as a backstop: it sees a subset of the traffic, so it
never refuses what the shared caps allow, and it still holds if Redis is unreachable (the shared caps then let
traffic through: votes fail with `store_unavailable` anyway, and nobody is locked out by an outage).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

from redis import exceptions as redis_errors

from concert.server.limits import (
    NETWORK_TOO_FAST,
    PHONE_TOO_FAST,
    TOO_MANY_DEVICES,
    LimitsConfig,
    LocalLimits,
    too_many_connections,
)
from concert.server.outage import Outage
from concert.store.base import honour_cancellation

CONNECTION_TTL_S = 60  # a connection not refreshed for this long is forgotten (its worker died), seconds
REFRESH_EVERY_S = 20.0  # how often a worker refreshes its connections' expiry, seconds
BUCKET_TTL_S = 120  # an idle bucket's key expires after this (it would be full again by then), seconds

# KEYS: connections zset.  ARGV: cap, connection id, now, ttl.  -1 when admitted, else the count held.
_CONNECT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[1]) then
  return n
end
redis.call('ZADD', KEYS[1], tonumber(ARGV[3]) + tonumber(ARGV[4]), ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return -1
"""

# KEYS: buckets.  ARGV: now, ttl, then one per-minute rate per bucket.  0 when every bucket had a token (one is
# taken from each), else the 1-based index of the first empty bucket (nothing is taken).
_TAKE = """
local now = tonumber(ARGV[1])
local tokens = {}
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[i + 2])
  local b = redis.call('HMGET', key, 'tokens', 'last')
  local t = tonumber(b[1]) or rate
  local last = tonumber(b[2]) or now
  t = math.min(rate, t + math.max(0, now - last) * rate / 60)
  if t < 1 then
    return i
  end
  tokens[i] = t
end
for i, key in ipairs(KEYS) do
  redis.call('HSET', key, 'tokens', tokens[i] - 1, 'last', now)
  redis.call('EXPIRE', key, ARGV[2])
end
return 0
"""


class SharedLimits:
    """`LocalLimits`' interface over Redis; one per worker process."""

    def __init__(self, config: LimitsConfig, redis: Any, prefix: str = "concert:") -> None:
        self.config = config
        self.redis = redis
        self.prefix = prefix + "lim:"
        self.local = LocalLimits(config)  # the backstop
        self.outage = Outage("the shared limits (Redis)")
        self._mine: dict[str, str] = {}  # connection id -> address, refreshed by `refresh_loop`

    @property
    def refused(self) -> dict[str, int]:
        return self.local.refused

    async def _eval(self, script: str, keys: list[str], *args: object) -> int | None:
        """The script's reply, or None when Redis cannot be reached (the shared caps then let it through)."""
        try:
            reply = await self.redis.eval(script, len(keys), *keys, *args)
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as e:
            self.outage.failed(e)
            return None
        honour_cancellation()
        self.outage.ok()
        return int(reply)

    async def connect(self, address: str) -> str:
        await self.local.connect(address)
        cid = uuid.uuid4().hex
        cap = self.config.connections_per_address
        held = await self._eval(_CONNECT, [f"{self.prefix}conn:{address}"], cap, cid, time.time(), CONNECTION_TTL_S)
        if held is not None and held >= 0:
            await self.local.disconnect(address, address)
            raise self.local.gate.refuse(*too_many_connections(held))
        self._mine[cid] = address
        return cid

    async def disconnect(self, address: str, handle: str) -> None:
        await self.local.disconnect(address, address)
        self._mine.pop(handle, None)
        with contextlib.suppress(redis_errors.RedisError, OSError):
            await self.redis.zrem(f"{self.prefix}conn:{address}", handle)

    async def mint(self, address: str) -> None:
        await self.local.mint(address)
        keys = [f"{self.prefix}mint:{address}"]
        empty = await self._eval(_TAKE, keys, time.time(), BUCKET_TTL_S, self.config.new_devices_per_minute)
        if empty:
            raise self.local.gate.refuse(*TOO_MANY_DEVICES)

    async def message(self, address: str, device: str) -> None:
        await self.local.message(address, device)
        cfg = self.config
        keys = [f"{self.prefix}dev:{device}", f"{self.prefix}msg:{address}"]
        rates = (cfg.device_messages_per_minute, cfg.address_messages_per_minute)
        empty = await self._eval(_TAKE, keys, time.time(), BUCKET_TTL_S, *rates)
        if empty == 1:
            raise self.local.gate.refuse(*PHONE_TOO_FAST)
        if empty == 2:
            raise self.local.gate.refuse(*NETWORK_TOO_FAST)

    async def refresh_loop(self) -> None:
        """Keep this worker's connections alive in Redis (run as a task for the worker's life)."""
        while True:
            await asyncio.sleep(REFRESH_EVERY_S)
            expiry = time.time() + CONNECTION_TTL_S
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for cid, address in list(self._mine.items()):
                        pipe.zadd(f"{self.prefix}conn:{address}", {cid: expiry}, xx=True)
                        pipe.expire(f"{self.prefix}conn:{address}", CONNECTION_TTL_S)
                    await pipe.execute()
            except (redis_errors.RedisError, OSError) as e:
                self.outage.failed(e)
