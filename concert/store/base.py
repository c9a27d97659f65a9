"""The vote and suggestion store interface, its result types, config and input checks.

Two backends implement `Store`: `MemoryStore` (one process) and `RedisStore` (many server
processes sharing one Redis). Both give the same answers to the same calls; the shared
behaviour suite in `tests/concert/store/test_store.py` runs against each.

Round ids are trusted: they come from the conductor's current ballot, never straight from a
phone. Device ids come from `concert.server.identity` (verified cookies).
"""

from __future__ import annotations

import asyncio
import math
import unicodedata
from dataclasses import dataclass
from typing import Protocol

MAX_ROUND_ID = 2**53 - 1  # round ids must survive a round trip through a Lua number (a double)
MAX_DEVICE_CHARS = 128  # device ids are 22 characters; anything longer is not ours
MAX_OPTION_CHARS = 200  # option ids are short ("techno", "s:12"); a safety net, the protocol caps first
MAX_SUGGESTION_CHARS = 400  # suggestion text after whitespace is collapsed


class RoundClosedError(Exception):
    """A vote arrived for a round that `close_round` already closed (or that has expired)."""

    def __init__(self, round_id: int) -> None:
        super().__init__(f"round {round_id} is closed; it accepts no more votes")
        self.round_id = round_id


class UnknownSuggestionError(KeyError):
    """No open suggestion has this id (it never existed, or it was promoted or vetoed)."""

    def __init__(self, suggestion_id: str) -> None:
        super().__init__(f"no open suggestion with id {suggestion_id!r}")
        self.suggestion_id = suggestion_id

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0])


class StoreUnavailableError(ConnectionError):
    """The store's server could not be reached; the message names the URL (never its password)."""


def honour_cancellation() -> None:
    """Raise CancelledError if the current task was asked to stop and a call it awaited returned anyway.

    redis-py (8.1) can swallow a cancellation: a command cancelled while it takes a connection from the pool
    completes and returns its reply (an XREAD cancelled at once returned after its full block). A retrying loop
    around such a call then runs on forever as "cancelling"; that is how a conductor ignored SIGTERM and played
    on as an orphan. Every Redis call wrapper ends with this check.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


@dataclass(frozen=True)
class VoteResult:
    round_id: int
    option: str  # the device's vote now
    previous: str | None  # the device's vote before this call, None if it had not voted
    changed: bool  # False when the same vote was cast again (an idempotent retry)


@dataclass(frozen=True)
class Suggestion:
    id: str  # opaque, never reused
    text: str  # as first submitted, whitespace collapsed
    upvotes: int  # distinct devices, the submitter included
    created: float  # unix seconds, the `now` given to add_suggestion


@dataclass(frozen=True)
class StoreConfig:
    keep_rounds: int = 100  # rounds kept behind the newest closed one; older rounds are dropped and refuse votes
    key_prefix: str = "concert:"  # Redis: prepended to every key, so several events can share one database
    round_ttl_s: int = 3600  # Redis: seconds a round's keys live after its last vote or close
    max_connections: int = 32  # Redis: pooled connections per store (per server process)
    pool_timeout_s: float = 5.0  # Redis: seconds a call waits for a free pooled connection
    socket_timeout_s: float = 1.0  # Redis: seconds to connect, and to wait for a reply (then retried)
    call_deadline_s: float = 2.0  # Redis: seconds one call may take in all, retries included
    retries: int = 3  # Redis: reconnect attempts per call (10 ms, 20 ms, 40 ms ... jittered) before giving up

    def __post_init__(self) -> None:
        if self.keep_rounds < 1:
            raise ValueError(f"keep_rounds must be at least 1, got {self.keep_rounds}")
        if self.round_ttl_s < 1:
            raise ValueError(f"round_ttl_s must be at least 1 second, got {self.round_ttl_s}")
        if self.max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {self.max_connections}")
        if self.retries < 0:
            raise ValueError(f"retries must be 0 or more, got {self.retries}")
        if not self.pool_timeout_s > 0 or not self.socket_timeout_s > 0 or not self.call_deadline_s > 0:
            raise ValueError("pool_timeout_s, socket_timeout_s and call_deadline_s must be positive")
        if any(c.isspace() or c in "{}" for c in self.key_prefix):
            raise ValueError(f"key_prefix must not contain spaces or braces, got {self.key_prefix!r}")


class Store(Protocol):
    """Votes per round and the suggestion board. Every method is safe under concurrent callers."""

    async def vote(self, round_id: int, device: str, option: str) -> VoteResult:
        """Record the device's vote: one per device per round, the last one wins.

        Raises RoundClosedError once `close_round(round_id)` has run, ValueError on malformed input.
        """
        ...

    async def tallies(self, round_id: int) -> dict[str, int]:
        """Votes per option; options with no votes are omitted."""
        ...

    async def close_round(self, round_id: int) -> dict[str, int]:
        """Close the round atomically and return its final tallies. Idempotent."""
        ...

    async def device_vote(self, round_id: int, device: str) -> str | None:
        """The device's current vote in the round, or None."""
        ...

    async def add_suggestion(self, text: str, device: str, now: float) -> Suggestion:
        """Add a suggestion with the device's upvote; the same text (ignoring case and spacing) as an
        open suggestion upvotes that one instead. ValueError for empty or over-long text."""
        ...

    async def upvote(self, suggestion_id: str, device: str) -> Suggestion:
        """One upvote per device per suggestion (idempotent). UnknownSuggestionError if not open."""
        ...

    async def top_suggestions(self, n: int) -> list[Suggestion]:
        """The n most upvoted open suggestions; ties go to the older one."""
        ...

    async def remove_suggestion(self, suggestion_id: str) -> None:
        """Remove a promoted or vetoed suggestion. Idempotent; unknown ids are ignored."""
        ...

    async def ping(self) -> bool:
        """True when the store answers; False (never an exception) when it cannot be reached."""
        ...

    async def intact(self) -> bool:
        """False once when the store has lost its data since this process first used it (a Redis restarted
        without persistence, or flushed): acknowledged votes are gone. It then counts as intact again.
        StoreUnavailableError when it cannot be reached."""
        ...

    async def aclose(self) -> None:
        """Release connections. The store must not be used afterwards."""
        ...


def _check_text(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r:.80}")
    if len(value) > limit:
        raise ValueError(f"{what} is {len(value)} characters; the limit is {limit}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid Unicode text (lone surrogates)") from None
    return value


def check_round_id(round_id: object) -> int:
    if not isinstance(round_id, int) or isinstance(round_id, bool) or not 0 <= round_id <= MAX_ROUND_ID:
        raise ValueError(f"round id must be an integer in [0, 2**53), got {round_id!r:.80}")
    return round_id


def check_device(device: object) -> str:
    return _check_text(device, "device id", MAX_DEVICE_CHARS)


def check_option(option: object) -> str:
    return _check_text(option, "option", MAX_OPTION_CHARS)


def check_count(n: object) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r:.80}")
    return n


def check_now(now: object) -> float:
    if isinstance(now, bool) or not isinstance(now, int | float) or not (math.isfinite(now) and 0 <= now < 1e13):
        raise ValueError(f"now must be unix seconds (a finite, non-negative number), got {now!r:.80}")
    return float(now)


def clean_suggestion(text: object) -> tuple[str, str]:
    """(display text, dedupe key): whitespace collapsed; the key is also NFKC-normalised and case-folded."""
    if not isinstance(text, str):
        raise ValueError(f"suggestion text must be a string, got {type(text).__name__}")
    display = " ".join(text.split())
    _check_text(display, "suggestion text", MAX_SUGGESTION_CHARS)
    key = " ".join(unicodedata.normalize("NFKC", display).casefold().split())
    return display, key


def rank_key(upvotes: int, created: float, seq: int) -> tuple[int, int, int]:
    """Sort key for the suggestion board: most upvotes, then oldest, then first inserted."""
    return (-upvotes, created_us(created), seq)


def created_us(created: float) -> int:
    return round(created * 1_000_000)
