"""A live encoded stream fanned out to many listeners: the base of `/stream` (MP3) and `/stream.opus` (Ogg Opus).

    Chunk (any rate) ─ soxr.ResampleStream ─ libsndfile encoder ─ _ByteSink ─ splitter (whole frames or pages)
        ─┬─ burst ring (the last `burst_seconds`, whole units)
         └─ put_nowait on every listener's bounded queue

Everything runs on the event loop: `write` never awaits, and a listener whose queue is full is dropped (its HTTP
response ends), never waited for. A new listener first gets the format's header (Ogg's identification and comment
pages; MP3 has none), then the burst, which starts on a unit boundary, so playback starts at once.

A subclass says how its format is encoded and cut (`_open_encoder`, `_split`) and how long a unit plays
(`_unit_seconds`). A relay (`encode=False`, a web worker) takes bytes encoded by the conductor process (`relay`).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType

import numpy as np
import soundfile as sf
import soxr
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from engine.source import Chunk

NO_STORE = {"Cache-Control": "no-store"}


@dataclass(frozen=True)
class StreamConfig:
    burst_seconds: float = 2.0  # audio sent at once to a new listener so playback starts immediately
    listener_queue_chunks: int = 64  # per-listener backlog (written chunks) before a slow listener is dropped
    max_listeners: int = 200  # listeners beyond this are refused (HTTP 503)
    max_listeners_per_address: int = 4  # listeners one network address may hold (HTTP 429 beyond)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.burst_seconds) and self.burst_seconds >= 0):
            raise ValueError(f"burst_seconds must be a finite number >= 0, got {self.burst_seconds!r}")
        if self.listener_queue_chunks < 1:
            raise ValueError(f"listener_queue_chunks must be >= 1, got {self.listener_queue_chunks!r}")
        if self.max_listeners < 1:
            raise ValueError(f"max_listeners must be >= 1, got {self.max_listeners!r}")


class StreamClosedError(RuntimeError):
    """The stream has been closed: no more writes or listeners."""


class TooManyListenersError(RuntimeError):
    """The stream already serves `max_listeners` listeners."""


class TooManyFromAddressError(TooManyListenersError):
    """One network address already holds `max_listeners_per_address` listeners."""


class _ByteSink:
    """A write-only file for libsndfile that hands out each new byte exactly once.

    libsndfile seeks to 0 at open and, at close, rewinds to rewrite the first frame
    (the LAME info tag); bytes already handed out cannot be recalled, so any write
    below the end of the stream is ignored. Never raises (it runs inside C callbacks).
    """

    def __init__(self) -> None:
        self._pos = 0  # current file position, bytes
        self._end = 0  # bytes produced so far
        self._new = bytearray()

    def write(self, data: bytes) -> int:
        n = len(data)
        if self._pos > self._end:  # a seek past the end: libsndfile would expect zeros there
            self._new += bytes(self._pos - self._end)
            self._end = self._pos
        skip = self._end - self._pos
        if skip < n:
            self._new += data[skip:]
            self._end = self._pos + n
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._end}.get(whence, self._pos)
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, size: int = -1) -> bytes:
        return b""

    def take(self) -> bytes:
        out, self._new = bytes(self._new), bytearray()
        return out


class Listener:
    """One subscriber: async-iterate it for bytes (the burst first, then live).

    Iteration ends when the stream closes or this listener is dropped for falling
    behind. Use it as a context manager (or call `close`) to unsubscribe.
    """

    def __init__(self, stream: LiveStream, maxsize: int, address: str = "") -> None:
        self._stream = stream
        self.address = address  # the listener's network address
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize)
        self.dropped = False  # True once the stream dropped this listener for falling behind

    def _offer(self, data: bytes) -> bool:
        try:
            self._queue.put_nowait(data)
        except asyncio.QueueFull:
            return False
        return True

    def _end(self, discard_backlog: bool) -> None:
        """Make iteration stop after the backlog (or at once, dropping it); the end marker always fits."""
        while discard_backlog or self._queue.full():
            try:
                self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
        self._queue.put_nowait(None)

    def __aiter__(self) -> Listener:
        return self

    async def __anext__(self) -> bytes:
        data = await self._queue.get()
        if data is None:
            self._queue.put_nowait(None)  # stay ended for any later call
            raise StopAsyncIteration
        return data

    def close(self) -> None:
        self._stream._unsubscribe(self)

    def __enter__(self) -> Listener:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class LiveStream:
    """Encodes chunks once and fans the bytes out to every listener (see the module's picture).

    Not thread-safe: call `write`, `relay`, `subscribe`, `listen` and `close` on the event loop.
    """

    media_type = "application/octet-stream"
    name = "stream"  # the format's name in messages

    def __init__(self, config: StreamConfig | None, sample_rate: int, encode: bool) -> None:
        self.config = config or StreamConfig()
        self.sample_rate = sample_rate  # Hz the encoder runs at
        self._closed = False
        self.bytes_encoded = 0  # bytes produced (and offered to listeners) so far
        self.dropped_listeners = 0  # listeners dropped because their queue was full
        self._listeners: set[Listener] = set()
        self._resampler: soxr.ResampleStream | None = None
        self._in_rate: int | None = None
        self._sink = _ByteSink()
        self._header = b""  # bytes every new listener needs before any audio (Ogg's header pages)
        self._burst: deque[tuple[bytes, float]] = deque()  # (unit, seconds it plays)
        self._burst_s = 0.0
        self._encoder: sf.SoundFile | None = self._open_encoder(self._sink) if encode else None

    # ----- the format (subclasses) -------------------------------------------
    def _open_encoder(self, sink: _ByteSink) -> sf.SoundFile:
        raise NotImplementedError

    def _split(self, data: bytes) -> list[bytes]:
        """New bytes in, whole audio units out (a subclass may take header units for `_header` on the way)."""
        raise NotImplementedError

    def _unit_seconds(self, unit: bytes) -> float:
        raise NotImplementedError

    @property
    def header(self) -> bytes:
        """Bytes a decoder needs before any audio (b"" for MP3; Ogg's header pages once complete, what
        `OpusStream.set_header` takes): every new listener gets them first."""
        return self._header

    # ----- writing -----------------------------------------------------------
    @property
    def listeners(self) -> int:
        return len(self._listeners)

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, chunk: Chunk) -> None:
        """Resample, encode and offer the new units to every listener; never awaits."""
        if self._closed:
            raise StreamClosedError(f"the {self.name} stream is closed")
        if self._encoder is None:
            raise StreamClosedError(f"a relay {self.name} stream takes encoded bytes (relay), not audio chunks")
        pcm = np.asarray(chunk.pcm, dtype=np.float32)
        if pcm.ndim != 1:
            raise ValueError(f"chunk.pcm must be mono (samples,), got shape {pcm.shape}")
        if self._in_rate is None:
            self._in_rate = chunk.sample_rate
            if chunk.sample_rate != self.sample_rate:
                self._resampler = soxr.ResampleStream(chunk.sample_rate, self.sample_rate, 1, dtype="float32")
        elif chunk.sample_rate != self._in_rate:
            raise ValueError(f"chunk sample rate changed from {self._in_rate} Hz to {chunk.sample_rate} Hz")
        if self._resampler is not None:
            pcm = self._resampler.resample_chunk(pcm)
        if len(pcm):
            self._encoder.write(pcm)
        self._publish()

    def relay(self, data: bytes) -> None:
        """Offer bytes encoded elsewhere (whole units or not) to every listener; never awaits."""
        if self._closed:
            raise StreamClosedError(f"the {self.name} stream is closed")
        self._offer(self._split(data))

    def _publish(self) -> None:
        self._offer(self._split(self._sink.take()))

    def _offer(self, units: list[bytes]) -> None:
        if not units:
            return
        if self.config.burst_seconds > 0:
            for unit in units:
                seconds = self._unit_seconds(unit)
                self._burst.append((unit, seconds))
                self._burst_s += seconds
            while len(self._burst) > 1 and self._burst_s - self._burst[0][1] >= self.config.burst_seconds:
                self._burst_s -= self._burst.popleft()[1]
        data = b"".join(units)
        self.bytes_encoded += len(data)
        for listener in list(self._listeners):
            if not listener._offer(data):
                self._drop(listener)

    def _restart(self) -> None:
        """A new chain begins (a relay's conductor changed hands): the burst is old; listeners reconnect."""
        self._burst.clear()
        self._burst_s = 0.0
        for listener in list(self._listeners):
            self._unsubscribe(listener)

    def _drop(self, listener: Listener) -> None:
        self._listeners.discard(listener)
        self.dropped_listeners += 1
        listener.dropped = True
        listener._end(discard_backlog=True)

    # ----- listeners ---------------------------------------------------------
    def subscribe(self, address: str = "", burst: bool = True) -> Listener:
        """A new listener, primed with the header and the burst (unless `burst` is False: a relay or a push wants
        only new audio; it still gets the header).

        Raises TooManyListenersError, TooManyFromAddressError or StreamClosedError."""
        if self._closed:
            raise StreamClosedError(f"the {self.name} stream is closed")
        if len(self._listeners) >= self.config.max_listeners:
            raise TooManyListenersError(
                f"the stream is full ({self.config.max_listeners} listeners); try again in a minute"
            )
        if address and sum(x.address == address for x in self._listeners) >= self.config.max_listeners_per_address:
            raise TooManyFromAddressError(
                f"your network already holds {self.config.max_listeners_per_address} streams; close one first"
            )
        listener = Listener(self, self.config.listener_queue_chunks + 1, address)  # +1: room for the burst
        primer = self._header + (b"".join(unit for unit, _ in self._burst) if burst else b"")
        if primer:
            listener._offer(primer)
        self._listeners.add(listener)
        return listener

    def _unsubscribe(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.discard(listener)
            listener._end(discard_backlog=False)

    async def listen(self) -> AsyncIterator[bytes]:
        """Bytes for one listener: the header and burst, then live bytes until the stream closes or drops it."""
        with self.subscribe() as listener:
            async for data in listener:
                yield data

    def response(self, address: str = "") -> Response:
        """A Starlette response for one listener: endless audio, 429 when `address` holds its share, 503 when
        full or closed."""
        try:
            listener = self.subscribe(address)
        except TooManyFromAddressError as e:
            return PlainTextResponse(str(e), status_code=429, headers={**NO_STORE, "Retry-After": "60"})
        except (TooManyListenersError, StreamClosedError) as e:
            return PlainTextResponse(str(e), status_code=503, headers={**NO_STORE, "Retry-After": "60"})

        async def body() -> AsyncIterator[bytes]:
            with listener:
                async for data in listener:
                    yield data

        return StreamingResponse(body(), media_type=self.media_type, headers=NO_STORE)

    async def endpoint(self, request: Request) -> Response:
        """Mount as a GET route (HEAD gets the headers without subscribing)."""
        if request.method == "HEAD":
            return Response(media_type=self.media_type, headers=NO_STORE)
        return self.response(request.client.host if request.client is not None else "")

    def close(self) -> None:
        """Flush the resampler and encoder to the listeners, then end every listener."""
        if self._closed:
            return
        self._closed = True
        if self._encoder is not None:
            if self._resampler is not None:
                tail = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
                if len(tail):
                    self._encoder.write(tail)
            self._encoder.close()  # flushes the encoder; a rewind to rewrite its first bytes is ignored by the sink
            self._encoder = None
            self._publish()
        for listener in list(self._listeners):
            self._unsubscribe(listener)
