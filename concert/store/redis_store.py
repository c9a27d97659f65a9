"""`RedisStore`: the `Store` interface on Redis, shared by many server processes.

Every write is one Lua script, so it is atomic however many workers vote at once, and safe
to retry (a repeated vote or suggestion changes nothing). Keys, under `config.key_prefix`:

    round:<id>:votes    hash  device -> option           (expires round_ttl_s after the last write)
    round:<id>:tally    hash  option -> votes, never 0   (expires likewise)
    round:<id>:closed   flag  set by close_round         (expires likewise)
    rounds:closed_max   the newest closed round id; rounds keep_rounds behind it refuse votes
    sugg:seq            counter for suggestion ids
    sugg:<id>           hash  text, created, upvotes, member, key
    sugg:<id>:up        set   devices that upvoted
    sugg:rank           sorted set  member "<created µs, 20 digits>:<id, 12 digits>", score -upvotes:
                        ZRANGE gives most upvoted first, ties oldest first
    sugg:keys           hash  dedupe key -> id of the open suggestion

The scripts build some keys from the prefix, so this targets a single Redis (not Cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from concert.store.base import (
    RoundClosedError,
    StoreConfig,
    StoreUnavailableError,
    Suggestion,
    UnknownSuggestionError,
    VoteResult,
    check_count,
    check_device,
    check_now,
    check_option,
    check_round_id,
    clean_suggestion,
    created_us,
    honour_cancellation,
)

REDIS_SCHEMES = ("redis", "rediss")
_MAX_ID_CHARS = 12  # suggestion ids are decimal counters, zero-padded to this width in rank members

# KEYS: closed flag, votes, tally, closed_max.  ARGV: round id, device, option, keep_rounds, ttl.
# Returns {0} if the round is closed, {1, previous} for a repeated vote, {2, previous|nil} otherwise.
_VOTE = """
local closed_max = tonumber(redis.call('GET', KEYS[4]))
if redis.call('EXISTS', KEYS[1]) == 1
   or (closed_max and tonumber(ARGV[1]) <= closed_max - tonumber(ARGV[4])) then
  return {0}
end
local previous = redis.call('HGET', KEYS[2], ARGV[2])
if previous == ARGV[3] then
  return {1, previous}
end
if previous then
  if redis.call('HINCRBY', KEYS[3], previous, -1) <= 0 then
    redis.call('HDEL', KEYS[3], previous)
  end
end
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[5])
redis.call('EXPIRE', KEYS[3], ARGV[5])
return {2, previous}
"""

# KEYS: closed flag, votes, tally, closed_max.  ARGV: round id, keep_rounds, ttl.  Returns HGETALL of the tally.
_CLOSE = """
local round = tonumber(ARGV[1])
local closed_max = tonumber(redis.call('GET', KEYS[4]))
if closed_max and round <= closed_max - tonumber(ARGV[2]) then
  return {}
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[3])
if not closed_max or round > closed_max then
  redis.call('SET', KEYS[4], ARGV[1], 'EX', ARGV[3])
else
  redis.call('EXPIRE', KEYS[4], ARGV[3])
end
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[3])
return redis.call('HGETALL', KEYS[3])
"""

# KEYS: dedupe hash, id counter, rank.  ARGV: suggestion key prefix, dedupe key, text, device, created,
# created stamp.  Returns {id, text, upvotes, created}.
_ADD = """
local id = redis.call('HGET', KEYS[1], ARGV[2])
if not id then
  id = tostring(redis.call('INCR', KEYS[2]))
  local member = ARGV[6] .. ':' .. string.rep('0', 12 - #id) .. id
  redis.call('HSET', ARGV[1] .. id, 'text', ARGV[3], 'created', ARGV[5], 'upvotes', 0, 'member', member,
             'key', ARGV[2])
  redis.call('HSET', KEYS[1], ARGV[2], id)
  redis.call('ZADD', KEYS[3], 0, member)
end
local key = ARGV[1] .. id
if redis.call('SADD', key .. ':up', ARGV[4]) == 1 then
  redis.call('HINCRBY', key, 'upvotes', 1)
  redis.call('ZINCRBY', KEYS[3], -1, redis.call('HGET', key, 'member'))
end
return {id, unpack(redis.call('HMGET', key, 'text', 'upvotes', 'created'))}
"""

# KEYS: suggestion hash, upvoters, rank.  ARGV: device.  Returns {text, upvotes, created}, or nil if unknown.
_UPVOTE = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return nil
end
if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'upvotes', 1)
  redis.call('ZINCRBY', KEYS[3], -1, redis.call('HGET', KEYS[1], 'member'))
end
return redis.call('HMGET', KEYS[1], 'text', 'upvotes', 'created')
"""

# KEYS: suggestion hash, upvoters, rank, dedupe hash.  ARGV: id.
_REMOVE = """
local fields = redis.call('HMGET', KEYS[1], 'member', 'key')
if fields[1] then
  redis.call('ZREM', KEYS[3], fields[1])
  if redis.call('HGET', KEYS[4], fields[2]) == ARGV[1] then
    redis.call('HDEL', KEYS[4], fields[2])
  end
  redis.call('DEL', KEYS[1], KEYS[2])
end
return 1
"""

# KEYS: rank.  ARGV: suggestion key prefix, n (> 0).  Returns {id, text, upvotes, created, id, ...}.
_TOP = """
local out = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)) do
  local id = string.match(member, ':0*(%d+)$')
  local f = redis.call('HMGET', ARGV[1] .. id, 'text', 'upvotes', 'created')
  out[#out + 1] = id
  out[#out + 1] = f[1]
  out[#out + 1] = f[2]
  out[#out + 1] = f[3]
end
return out
"""


def redact_url(url: str) -> str:
    """The URL with any password (in the userinfo or a `password=` query) replaced by ***."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    query = parts.query
    if "password" in query.lower():
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if k.lower() == "password" else v) for k, v in pairs], safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def check_redis_url(url: str) -> None:
    """ValueError naming the (redacted) URL unless it is redis://host[:port][/db] or rediss://..."""
    shown = redact_url(url)
    parts = urlsplit(url)
    if parts.scheme not in REDIS_SCHEMES:
        raise ValueError(f"{shown!r} is not a Redis URL; expected redis://host:port/db or rediss://...")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"Redis URL {shown!r} has an invalid port") from None
    if not parts.hostname:
        raise ValueError(f"Redis URL {shown!r} names no host; expected redis://host:port/db")
    db = parts.path.lstrip("/")
    if db and not (db.isdigit() and db.isascii()):
        raise ValueError(f"Redis URL {shown!r}: the database must be a number (redis://host:{port or 6379}/0)")


class RedisStore:
    def __init__(self, url: str, config: StoreConfig | None = None) -> None:
        """Prepare a pooled client; nothing connects until the first call (see `ping`)."""
        check_redis_url(url)
        self.config = config or StoreConfig()
        self.url = redact_url(url)
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=self.config.max_connections,
            timeout=self.config.pool_timeout_s,
            socket_timeout=self.config.socket_timeout_s,
            socket_connect_timeout=self.config.socket_timeout_s,
            retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.5), self.config.retries),
            decode_responses=True,
        )
        self._client: aioredis.Redis = aioredis.Redis.from_pool(pool)
        self._vote = self._client.register_script(_VOTE)
        self._close = self._client.register_script(_CLOSE)
        self._add = self._client.register_script(_ADD)
        self._upvote = self._client.register_script(_UPVOTE)
        self._remove = self._client.register_script(_REMOVE)
        self._top = self._client.register_script(_TOP)
        p = self.config.key_prefix
        self._closed_max_key = f"{p}rounds:closed_max"
        self._sugg_prefix = f"{p}sugg:"
        self._rank_key = f"{p}sugg:rank"
        self._keys_key = f"{p}sugg:keys"
        self._seq_key = f"{p}sugg:seq"
        self._epoch_key = f"{p}epoch"  # one random token per Redis dataset: gone or new = the data was lost
        self._epoch: str | None = None

    @contextlib.asynccontextmanager
    async def _reaching(self) -> AsyncIterator[None]:
        """Map Redis' connection errors to StoreUnavailableError, and give up after `call_deadline_s` in all
        (a frozen Redis accepts the connection and never answers: the caller gets an error, not a hang)."""
        try:
            async with asyncio.timeout(self.config.call_deadline_s):
                yield
        except TimeoutError as e:
            raise StoreUnavailableError(
                f"Redis at {self.url} did not answer within {self.config.call_deadline_s} s"
            ) from e
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as e:
            raise StoreUnavailableError(f"Redis at {self.url} is unavailable: {e}") from e
        honour_cancellation()

    def _round_keys(self, round_id: int) -> list[str]:
        p = f"{self.config.key_prefix}round:{round_id}:"
        return [p + "closed", p + "votes", p + "tally", self._closed_max_key]

    def _sugg_keys(self, suggestion_id: object) -> list[str] | None:
        """[hash, upvoters] for a well-formed id, else None (such an id cannot exist)."""
        sid = suggestion_id
        if not (isinstance(sid, str) and 0 < len(sid) <= _MAX_ID_CHARS and sid.isascii() and sid.isdigit()):
            return None
        return [self._sugg_prefix + sid, self._sugg_prefix + sid + ":up"]

    # ----- rounds ----------------------------------------------------------
    async def vote(self, round_id: int, device: str, option: str) -> VoteResult:
        check_round_id(round_id)
        check_device(device)
        check_option(option)
        args: list[str | int] = [round_id, device, option, self.config.keep_rounds, self.config.round_ttl_s]
        async with self._reaching():
            reply = await self._vote(keys=self._round_keys(round_id), args=args)
        if reply[0] == 0:
            raise RoundClosedError(round_id)
        previous = reply[1] if len(reply) > 1 else None
        return VoteResult(round_id, option, previous, changed=reply[0] == 2)

    async def tallies(self, round_id: int) -> dict[str, int]:
        check_round_id(round_id)
        async with self._reaching():
            tally = await self._client.hgetall(self._round_keys(round_id)[2])
        return {str(option): int(n) for option, n in tally.items()}

    async def close_round(self, round_id: int) -> dict[str, int]:
        check_round_id(round_id)
        args = [round_id, self.config.keep_rounds, self.config.round_ttl_s]
        async with self._reaching():
            flat = await self._close(keys=self._round_keys(round_id), args=args)
        return {flat[i]: int(flat[i + 1]) for i in range(0, len(flat), 2)}

    async def device_vote(self, round_id: int, device: str) -> str | None:
        check_round_id(round_id)
        check_device(device)
        async with self._reaching():
            option = await self._client.hget(self._round_keys(round_id)[1], device)
        return None if option is None else str(option)

    # ----- suggestions -----------------------------------------------------
    async def add_suggestion(self, text: str, device: str, now: float) -> Suggestion:
        display, key = clean_suggestion(text)
        check_device(device)
        created = check_now(now)
        stamp = f"{created_us(created):020d}"
        keys = [self._keys_key, self._seq_key, self._rank_key]
        async with self._reaching():
            reply = await self._add(keys=keys, args=[self._sugg_prefix, key, display, device, repr(created), stamp])
        return _suggestion(reply)

    async def upvote(self, suggestion_id: str, device: str) -> Suggestion:
        check_device(device)
        keys = self._sugg_keys(suggestion_id)
        if keys is None:
            raise UnknownSuggestionError(suggestion_id)
        async with self._reaching():
            reply = await self._upvote(keys=[*keys, self._rank_key], args=[device])
        if reply is None:
            raise UnknownSuggestionError(suggestion_id)
        return _suggestion([suggestion_id, *reply])

    async def top_suggestions(self, n: int) -> list[Suggestion]:
        if check_count(n) == 0:
            return []
        async with self._reaching():
            flat = await self._top(keys=[self._rank_key], args=[self._sugg_prefix, n])
        return [_suggestion(flat[i : i + 4]) for i in range(0, len(flat), 4)]

    async def remove_suggestion(self, suggestion_id: str) -> None:
        keys = self._sugg_keys(suggestion_id)
        if keys is None:
            return
        async with self._reaching():
            await self._remove(keys=[*keys, self._rank_key, self._keys_key], args=[suggestion_id])

    # ----- lifecycle -------------------------------------------------------
    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except redis_errors.RedisError:
            return False

    async def intact(self) -> bool:
        """The epoch key: set once (SET NX) by whichever process comes first, adopted by the others. Missing or
        changed later means Redis lost the data this process was counting on."""
        async with self._reaching():
            current = await self._client.get(self._epoch_key)
            if current is not None and current == self._epoch:
                return True
            if current is None:
                await self._client.set(self._epoch_key, uuid.uuid4().hex, nx=True)
                current = await self._client.get(self._epoch_key)
        first, self._epoch = self._epoch is None, None if current is None else str(current)
        return first  # the first look adopts the epoch; any later change is a loss

    async def aclose(self) -> None:
        await self._client.aclose()


def _suggestion(fields: list[Any]) -> Suggestion:
    sid, text, upvotes, created = fields
    return Suggestion(str(sid), str(text), int(upvotes), float(created))
