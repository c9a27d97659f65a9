"""Vote and suggestion stores behind one interface, chosen by URL.

`open_store("memory://")` keeps everything in one process; `open_store("redis://127.0.0.1:6379/0")`
(or `rediss://` for TLS) lets many server processes share one Redis.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from concert.store.base import (
    RoundClosedError,
    Store,
    StoreConfig,
    StoreUnavailableError,
    Suggestion,
    UnknownSuggestionError,
    VoteResult,
)
from concert.store.memory import MemoryStore
from concert.store.redis_store import REDIS_SCHEMES, RedisStore, redact_url

__all__ = [
    "MemoryStore",
    "RedisStore",
    "RoundClosedError",
    "Store",
    "StoreConfig",
    "StoreUnavailableError",
    "Suggestion",
    "UnknownSuggestionError",
    "VoteResult",
    "open_store",
]

SCHEMES = ("memory", *REDIS_SCHEMES)


def open_store(url: str, config: StoreConfig | None = None) -> Store:
    """The store for `url`: "memory://" or "redis://host:port/db" ("rediss://" for TLS).

    ValueError, naming the URL (password hidden) and the accepted schemes, for anything else.
    Nothing connects here: call `await store.ping()` to check a Redis is reachable.
    """
    if not isinstance(url, str):
        raise ValueError(f"store URL must be a string, got {type(url).__name__}")
    parts = urlsplit(url.strip())
    if parts.scheme == "memory":
        if parts.netloc or parts.path or parts.query or not url.strip().lower().startswith("memory://"):
            raise ValueError(f"the memory store URL is just 'memory://', got {redact_url(url)!r}")
        return MemoryStore(config)
    if parts.scheme in REDIS_SCHEMES:
        return RedisStore(url.strip(), config)
    accepted = ", ".join(f"{s}://" for s in SCHEMES)
    raise ValueError(f"unsupported store URL {redact_url(url)!r}; accepted schemes: {accepted}")
