"""The live MP3 stream every phone browser plays, fanned out to many listeners.

    Chunk (any rate) ─ soxr.ResampleStream ─ libsndfile/LAME (CBR MP3) ─ _ByteSink
        ─ _FrameSplitter ─┬─ burst ring (last `burst_seconds`, whole frames)
                          └─ put_nowait on every listener's bounded queue

Everything runs on the event loop: `write` never awaits, and a listener whose
queue is full is dropped (its HTTP response ends), never waited for. A new
listener first gets the burst, which starts on an MP3 frame header, so playback
starts at once. MP3 frames borrow bits from earlier frames (the bit reservoir),
so a decoder joining mid-stream may skip its first frame; every decoder does.
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

_MPEG1_RATES = (44100, 48000, 32000)  # by the header's sample-rate index
_MPEG2_RATES = (22050, 24000, 16000)
_MPEG25_RATES = (11025, 12000, 8000)
_MPEG1_KBPS = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_MPEG2_KBPS = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
_MPEG25_MAX_KBPS = 64  # libsndfile's bitrate range for MPEG-2.5 is [8, 64]


@dataclass(frozen=True)
class StreamConfig:
    sample_rate: int = 44100  # Hz output rate: an MP3 rate, 8000 … 48000
    bitrate_kbps: int = 128  # constant MP3 bitrate, kbit/s (32 … 320 at 32 kHz and up)
    burst_seconds: float = 2.0  # audio sent at once to a new listener so playback starts immediately
    listener_queue_chunks: int = 64  # per-listener backlog (written chunks) before a slow listener is dropped
    max_listeners: int = 200  # listeners beyond this are refused (HTTP 503)
    max_listeners_per_address: int = 4  # listeners one network address may hold (HTTP 429 beyond)

    def __post_init__(self) -> None:
        rates = _MPEG1_RATES + _MPEG2_RATES + _MPEG25_RATES
        if self.sample_rate not in rates:
            raise ValueError(f"sample_rate must be an MP3 rate {sorted(rates)}, got {self.sample_rate!r}")
        allowed = _allowed_kbps(self.sample_rate)
        if self.bitrate_kbps not in allowed:
            raise ValueError(
                f"bitrate_kbps at {self.sample_rate} Hz must be one of {list(allowed)}, got {self.bitrate_kbps!r}"
            )
        if not (math.isfinite(self.burst_seconds) and self.burst_seconds >= 0):
            raise ValueError(f"burst_seconds must be a finite number >= 0, got {self.burst_seconds!r}")
        if self.listener_queue_chunks < 1:
            raise ValueError(f"listener_queue_chunks must be >= 1, got {self.listener_queue_chunks!r}")
        if self.max_listeners < 1:
            raise ValueError(f"max_listeners must be >= 1, got {self.max_listeners!r}")


def _allowed_kbps(sample_rate: int) -> tuple[int, ...]:
    if sample_rate in _MPEG1_RATES:
        return _MPEG1_KBPS[1:]
    if sample_rate in _MPEG2_RATES:
        return _MPEG2_KBPS[1:]
    return tuple(k for k in _MPEG2_KBPS[1:] if k <= _MPEG25_MAX_KBPS)


def _compression_level(sample_rate: int, kbps: int) -> float:
    """Invert libsndfile's CBR mapping `kbps = int(top - level * (top - bottom))`."""
    top, bottom = (320, 32) if sample_rate in _MPEG1_RATES else (160, 8) if sample_rate in _MPEG2_RATES else (64, 8)
    return min(1.0, max(0.0, (top - kbps - 0.5) / (top - bottom)))  # the half step survives int() truncation


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


class _FrameSplitter:
    """Sans-I/O: cuts an MPEG Layer III byte stream into whole frames."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        frames: list[bytes] = []
        start = 0
        while len(self._buf) - start >= 4:
            size = _frame_size(self._buf, start)
            if size is None:  # lost sync: skip to the next possible header
                nxt = self._buf.find(b"\xff", start + 1)
                start = len(self._buf) if nxt < 0 else nxt
                continue
            if len(self._buf) - start < size:
                break
            frames.append(bytes(self._buf[start : start + size]))
            start += size
        del self._buf[:start]
        return frames


def _frame_size(buf: bytearray, i: int) -> int | None:
    """Bytes in the Layer III frame whose header starts at buf[i], or None if none does."""
    b1, b2 = buf[i + 1], buf[i + 2]
    if buf[i] != 0xFF or b1 & 0xE0 != 0xE0 or (b1 >> 1) & 3 != 1:  # sync word, layer III
        return None
    version, kbps_index, rate_index = (b1 >> 3) & 3, b2 >> 4, (b2 >> 2) & 3
    if version == 1 or kbps_index in (0, 15) or rate_index == 3:
        return None
    if version == 3:  # MPEG-1
        rate, kbps, slots = _MPEG1_RATES[rate_index], _MPEG1_KBPS[kbps_index], 144
    else:  # MPEG-2 (2) and MPEG-2.5 (0)
        rate = (_MPEG2_RATES if version == 2 else _MPEG25_RATES)[rate_index]
        kbps, slots = _MPEG2_KBPS[kbps_index], 72
    return slots * kbps * 1000 // rate + ((b2 >> 1) & 1)


def _is_tag_placeholder(frame: bytes) -> bool:
    """LAME opens with an all-zero frame it fills with the info tag at close: not audio."""
    return not any(frame[4:])


class Listener:
    """One subscriber: async-iterate it for MP3 bytes (the burst first, then live).

    Iteration ends when the stream closes or this listener is dropped for falling
    behind. Use it as a context manager (or call `close`) to unsubscribe.
    """

    def __init__(self, stream: Mp3Stream, maxsize: int, address: str = "") -> None:
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


class Mp3Stream:
    """Encodes chunks to CBR MP3 once and fans the bytes out to every listener.

    Not thread-safe: call `write`, `subscribe`, `listen` and `close` on the event loop.
    """

    def __init__(self, config: StreamConfig | None = None, encode: bool = True) -> None:
        """`encode=False`: a relay, fed MP3 bytes by `relay` (a web worker passing on the conductor's stream)."""
        self.config = config or StreamConfig()
        self._closed = False
        self.bytes_encoded = 0  # MP3 bytes produced (and offered to listeners) so far
        self.dropped_listeners = 0  # listeners dropped because their queue was full
        self._listeners: set[Listener] = set()
        self._resampler: soxr.ResampleStream | None = None
        self._in_rate: int | None = None
        self._sink = _ByteSink()
        self._splitter = _FrameSplitter()
        self._frames_seen = 0
        self._burst: deque[bytes] = deque()
        rate = self.config.sample_rate
        self._frame_samples = 1152 if rate in _MPEG1_RATES else 576  # samples per Layer III frame
        self._burst_frames = math.ceil(self.config.burst_seconds * rate / self._frame_samples)  # 0: no burst
        if "MP3" not in sf.available_formats():
            raise RuntimeError(f"libsndfile {sf.__libsndfile_version__} cannot write MP3: it needs libsndfile >= 1.1")
        self._encoder: sf.SoundFile | None = None
        if not encode:
            return
        self._encoder = sf.SoundFile(
            self._sink,
            mode="w",
            samplerate=rate,
            channels=1,
            format="MP3",
            subtype="MPEG_LAYER_III",
            bitrate_mode="CONSTANT",
            compression_level=_compression_level(rate, self.config.bitrate_kbps),
        )

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, chunk: Chunk) -> None:
        """Resample, encode and offer the new MP3 frames to every listener; never awaits."""
        if self._closed:
            raise StreamClosedError("the MP3 stream is closed")
        if self._encoder is None:
            raise StreamClosedError("a relay stream takes MP3 bytes (relay), not audio chunks")
        pcm = np.asarray(chunk.pcm, dtype=np.float32)
        if pcm.ndim != 1:
            raise ValueError(f"chunk.pcm must be mono (samples,), got shape {pcm.shape}")
        if self._in_rate is None:
            self._in_rate = chunk.sample_rate
            if chunk.sample_rate != self.config.sample_rate:
                self._resampler = soxr.ResampleStream(chunk.sample_rate, self.config.sample_rate, 1, dtype="float32")
        elif chunk.sample_rate != self._in_rate:
            raise ValueError(f"chunk sample rate changed from {self._in_rate} Hz to {chunk.sample_rate} Hz")
        if self._resampler is not None:
            pcm = self._resampler.resample_chunk(pcm)
        if len(pcm):
            self._encoder.write(pcm)
        self._publish()

    def relay(self, data: bytes) -> None:
        """Offer MP3 bytes encoded elsewhere (whole frames or not) to every listener; never awaits."""
        if self._closed:
            raise StreamClosedError("the MP3 stream is closed")
        self._offer_frames(self._splitter.feed(data))

    def _publish(self) -> None:
        self._offer_frames(self._splitter.feed(self._sink.take()))

    def _offer_frames(self, frames: list[bytes]) -> None:
        if self._frames_seen == 0 and frames and _is_tag_placeholder(frames[0]):
            frames = frames[1:]
            self._frames_seen = 1
        self._frames_seen += len(frames)
        if not frames:
            return
        if self._burst_frames:
            self._burst.extend(frames)
            while len(self._burst) > self._burst_frames:
                self._burst.popleft()
        data = b"".join(frames)
        self.bytes_encoded += len(data)
        for listener in list(self._listeners):
            if not listener._offer(data):
                self._drop(listener)

    def _drop(self, listener: Listener) -> None:
        self._listeners.discard(listener)
        self.dropped_listeners += 1
        listener.dropped = True
        listener._end(discard_backlog=True)

    def subscribe(self, address: str = "", burst: bool = True) -> Listener:
        """A new listener, primed with the burst (unless `burst` is False: a relay wants only new audio).

        Raises TooManyListenersError, TooManyFromAddressError or StreamClosedError."""
        if self._closed:
            raise StreamClosedError("the MP3 stream is closed")
        if len(self._listeners) >= self.config.max_listeners:
            raise TooManyListenersError(
                f"the stream is full ({self.config.max_listeners} listeners); try again in a minute"
            )
        if address and sum(x.address == address for x in self._listeners) >= self.config.max_listeners_per_address:
            raise TooManyFromAddressError(
                f"your network already holds {self.config.max_listeners_per_address} streams; close one first"
            )
        listener = Listener(self, self.config.listener_queue_chunks + 1, address)  # +1: room for the burst
        if self._burst and burst:
            listener._offer(b"".join(self._burst))
        self._listeners.add(listener)
        return listener

    def _unsubscribe(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.discard(listener)
            listener._end(discard_backlog=False)

    async def listen(self) -> AsyncIterator[bytes]:
        """MP3 bytes for one listener: the burst, then live bytes until the stream closes or drops it."""
        with self.subscribe() as listener:
            async for data in listener:
                yield data

    def response(self, address: str = "") -> Response:
        """A Starlette response for `GET /stream`: endless audio/mpeg, 429 when `address` holds its share,
        503 when full or closed."""
        try:
            listener = self.subscribe(address)
        except TooManyFromAddressError as e:
            return PlainTextResponse(
                str(e), status_code=429, headers={"Cache-Control": "no-store", "Retry-After": "60"}
            )
        except (TooManyListenersError, StreamClosedError) as e:
            return PlainTextResponse(
                str(e), status_code=503, headers={"Cache-Control": "no-store", "Retry-After": "60"}
            )

        async def body() -> AsyncIterator[bytes]:
            with listener:
                async for data in listener:
                    yield data

        return StreamingResponse(body(), media_type="audio/mpeg", headers={"Cache-Control": "no-store"})

    async def endpoint(self, request: Request) -> Response:
        """Mount as `Route("/stream", stream.endpoint)` (GET; HEAD gets the headers without subscribing)."""
        if request.method == "HEAD":
            return Response(media_type="audio/mpeg", headers={"Cache-Control": "no-store"})
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
            self._encoder.close()  # flushes LAME; its rewind to write the info tag is ignored by the sink
            self._encoder = None
            self._publish()
        for listener in list(self._listeners):
            self._unsubscribe(listener)
