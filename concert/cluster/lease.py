"""Exactly one conductor: a Redis lease, taken with set-if-absent and an expiry, renewed while it lives.

    lease = Lease(redis, "concert:lease", owner="host:pid:uuid", ttl_s=3.0)
    await lease.acquire()          # True if this process now holds it
    await lease.renew()            # False once another process holds it: stop conducting at once
    await lease.release()          # on a clean exit, so a standby takes over without waiting for the expiry

Renewal and release compare the owner inside one Lua script, so a process that lost the lease (it was
frozen past the expiry and another took over) can neither extend nor delete the new holder's lease.
A holder renews every `ttl_s / 3`; a dead holder's lease lapses within `ttl_s`, and a standby polling every
`ttl_s / 6` takes over within about `1.2 * ttl_s`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from concert.store.base import honour_cancellation

# KEYS: lease.  ARGV: owner, ttl ms.  1 if the owner holds it (and it was extended), else 0.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS: lease.  ARGV: owner.  1 if the owner held it (now deleted), else 0.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass
class Lease:
    redis: Any  # a redis.asyncio.Redis client
    key: str  # the lease's key
    owner: str  # this process's unique id
    ttl_s: float = 3.0  # seconds the lease lives without a renewal

    def __post_init__(self) -> None:
        if not self.ttl_s >= 0.3:
            raise ValueError(f"ttl_s must be >= 0.3 s, got {self.ttl_s!r}")
        if not self.owner:
            raise ValueError("the lease needs a non-empty owner id")

    @property
    def renew_every_s(self) -> float:
        return self.ttl_s / 3

    @property
    def poll_every_s(self) -> float:
        return self.ttl_s / 6

    @property
    def _ttl_ms(self) -> int:
        return max(1, round(self.ttl_s * 1000))

    async def acquire(self) -> bool:
        """Take the lease if nobody holds it (or this owner already does); True when held."""
        taken = await self.redis.set(self.key, self.owner, nx=True, px=self._ttl_ms)
        honour_cancellation()
        return True if taken else await self.renew()

    async def renew(self) -> bool:
        """Extend the lease; False when this owner no longer holds it."""
        held = bool(await self.redis.eval(_RENEW, 1, self.key, self.owner, self._ttl_ms))
        honour_cancellation()
        return held

    async def release(self) -> bool:
        """Give the lease up if held; True when it was."""
        return bool(await self.redis.eval(_RELEASE, 1, self.key, self.owner))

    async def holder(self) -> str | None:
        value = await self.redis.get(self.key)
        honour_cancellation()
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)
