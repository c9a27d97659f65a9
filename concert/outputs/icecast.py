"""`--icecast URL`: push the live stream to an Icecast server as its source, and keep pushing.

    LiveStream ─ subscribe(burst=False) ─ bounded queue ─ this task ─ TCP ─ Icecast mount ─ its listeners

The push is one more listener of the encoded stream (the MP3 or, for a mount ending in .opus or .ogg, the Ogg Opus
stream), so it never slows the set: a slow or dead link fills its bounded queue and the stream drops it, never waits
on it. The task then reconnects, backing off from 1 s to 30 s, for as long as the set plays (an Icecast restart, a
network drop, a mount still held by the source that died). It speaks HTTP PUT with `Expect: 100-continue`, as
libshout does with Icecast 2.4 and later. What happened is counted (`IcecastStats`) for /metrics and the console.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
import urllib.parse
from dataclasses import dataclass, field

from concert.outputs.stream import LiveStream, StreamClosedError

log = logging.getLogger(__name__)


class IcecastUrlError(ValueError):
    """An --icecast URL that cannot be pushed to; the message says what to write."""


@dataclass(frozen=True)
class IcecastConfig:
    url: str  # http://source:PASSWORD@host:port/mount (a mount ending .opus or .ogg gets the Ogg Opus stream)
    stream_name: str = "concert: crowd-steered live set"  # Ice-Name the server shows its listeners
    connect_timeout_s: float = 5.0  # seconds to connect and to get Icecast's answer
    write_timeout_s: float = 10.0  # seconds one write may wait on the network before the link counts as dead
    backoff_s: tuple[float, float] = (1.0, 30.0)  # first and longest wait between reconnects, seconds

    def __post_init__(self) -> None:
        self.target  # noqa: B018 - parse now: a bad URL is refused at start-up, not at the first connect

    @functools.cached_property
    def target(self) -> IcecastTarget:
        return parse_url(self.url)


@dataclass(frozen=True)
class IcecastTarget:
    host: str
    port: int
    mount: str  # starts with "/"
    user: str
    password: str = field(repr=False)

    @property
    def format(self) -> str:
        """ "opus" for a mount ending .opus or .ogg, else "mp3"."""
        return "opus" if self.mount.lower().endswith((".opus", ".ogg")) else "mp3"

    @property
    def shown(self) -> str:
        """The URL without its password, for logs and the console."""
        return f"http://{self.user}@{self.host}:{self.port}{self.mount}"


def parse_url(url: str) -> IcecastTarget:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "icecast"):
        raise IcecastUrlError(f"--icecast wants http://source:PASSWORD@host:port/mount, got scheme {parts.scheme!r}")
    if not parts.hostname:
        raise IcecastUrlError("--icecast URL has no host: http://source:PASSWORD@host:port/mount")
    if not parts.password:
        raise IcecastUrlError("--icecast URL has no source password: http://source:PASSWORD@host:port/mount")
    mount = parts.path
    if len(mount) < 2 or not mount.startswith("/") or any(c in mount for c in " \r\n?#"):
        raise IcecastUrlError(f"--icecast URL needs a mount point such as /live.mp3, got {mount or 'none'!r}")
    try:
        port = parts.port or 8000
    except ValueError as e:
        raise IcecastUrlError(f"--icecast URL has a bad port: {e}") from None
    user = urllib.parse.unquote(parts.username or "source")
    return IcecastTarget(parts.hostname, port, mount, user, urllib.parse.unquote(parts.password))


@dataclass
class IcecastStats:
    target: str  # the URL without its password
    connected: bool = False
    connects: int = 0  # sessions Icecast accepted
    failures: int = 0  # connects refused or links lost
    bytes_sent: int = 0
    last_error: str = ""

    def as_json(self) -> dict[str, object]:
        return {
            "target": self.target,
            "connected": self.connected,
            "connects": self.connects,
            "failures": self.failures,
            "bytes_sent": self.bytes_sent,
            "last_error": self.last_error,
        }


class IcecastRefusedError(ConnectionError):
    """Icecast answered, but not with 100 Continue or 200 (wrong password, mount in use, ...)."""


async def push(stream: LiveStream, config: IcecastConfig, stats: IcecastStats) -> None:
    """Push `stream` to Icecast until the stream closes (or the task is cancelled); reconnects forever."""
    target = config.target
    backoff = config.backoff_s[0]
    while not stream.closed:
        try:
            await _session(stream, target, config, stats)
            backoff = config.backoff_s[0]
        except (OSError, TimeoutError, IcecastRefusedError, asyncio.IncompleteReadError) as e:
            stats.failures += 1
            message = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            if message != stats.last_error:  # one line per kind of trouble, not one per retry
                log.warning("icecast %s: %s; retrying every %.0f s or so", target.shown, message, backoff)
            stats.last_error = message
        except StreamClosedError:
            return
        finally:
            stats.connected = False
        if stream.closed:
            return
        await asyncio.sleep(backoff)
        backoff = min(config.backoff_s[1], backoff * 2)


async def _session(stream: LiveStream, target: IcecastTarget, config: IcecastConfig, stats: IcecastStats) -> None:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(target.host, target.port), config.connect_timeout_s)
    try:
        writer.write(_request(target, stream.media_type, config.stream_name))
        await asyncio.wait_for(writer.drain(), config.connect_timeout_s)
        status = await asyncio.wait_for(reader.readline(), config.connect_timeout_s)
        code = status.split(b" ", 2)[1:2]
        if code not in ([b"100"], [b"200"]):
            reason = status.decode("latin-1").strip() or "the connection closed"
            raise IcecastRefusedError(f"Icecast refused the source: {reason}")
        with stream.subscribe(burst=False) as listener:  # Ogg: its headers come first
            stats.connects += 1
            stats.connected = True
            if stats.last_error:
                log.info("icecast %s: pushing again", target.shown)
            stats.last_error = ""
            async for data in listener:
                writer.write(data)
                await asyncio.wait_for(writer.drain(), config.write_timeout_s)
                stats.bytes_sent += len(data)
                if reader.at_eof():
                    raise ConnectionResetError("Icecast closed the connection")
            if listener.dropped:
                raise ConnectionError("the link to Icecast fell behind the set")
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1.0)


def _request(target: IcecastTarget, media_type: str, name: str) -> bytes:
    auth = base64.b64encode(f"{target.user}:{target.password}".encode()).decode()
    safe_name = "".join(c for c in name if c.isprintable())[:200]
    lines = [
        f"PUT {target.mount} HTTP/1.1",
        f"Host: {target.host}:{target.port}",
        f"Authorization: Basic {auth}",
        "User-Agent: concert",
        f"Content-Type: {media_type}",
        f"Ice-Name: {safe_name}",
        "Ice-Public: 0",
        "Expect: 100-continue",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
