"""`/stream.opus`: the live stream in Ogg Opus (libsndfile's libopus), cut into whole Ogg pages.

An Ogg Opus stream opens with two header pages (the identification header, OpusHead, on the page that begins the
stream, then the comment header, OpusTags). A decoder cannot start without them, so every new listener gets them
first, then the burst, then live pages. libsndfile flushes a page about every second of audio.

A relay (a web worker) learns the headers from the conductor's bytes, or from `set_header` when it joins a stream
already under way. A new stream (another serial number: the conductor changed hands) ends its listeners, which
reconnect and get the new headers; pages of a stream whose headers it lacks are held back (`needs_header`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import soundfile as sf

from concert.outputs.stream import LiveStream, StreamConfig, _ByteSink

OPUS_RATE = 48000  # Hz: Opus runs at 48 kHz (its granule positions count 48 kHz samples)
_PAGE_HEADER = 27  # bytes before the segment table
_BOS = 0x02  # header_type flag: the first page of a logical stream
_MIN_KBPS, _MAX_KBPS = 6, 256  # libsndfile's Opus range: compression_level 1 … 0


@dataclass(frozen=True)
class OpusConfig:
    bitrate_kbps: int = 96  # Opus bitrate, kbit/s (6 … 256)

    def __post_init__(self) -> None:
        if not isinstance(self.bitrate_kbps, int) or not _MIN_KBPS <= self.bitrate_kbps <= _MAX_KBPS:
            raise ValueError(f"Opus bitrate_kbps must be a whole number from 6 to 256, got {self.bitrate_kbps!r}")


@dataclass(frozen=True)
class Page:
    data: bytes  # the whole page, header included
    header_type: int
    granule: int  # 48 kHz samples decoded by the end of this page (-1: no packet ends here)
    serial: int  # the logical stream it belongs to


class PageSplitter:
    """Sans-I/O: cuts an Ogg byte stream into whole pages (skipping to the next capture pattern on bad bytes)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Page]:
        self._buf += data
        pages: list[Page] = []
        start = 0
        while True:
            at = self._buf.find(b"OggS", start)
            if at < 0:
                start = max(start, len(self._buf) - 3)  # keep a capture pattern cut across feeds
                break
            start = at
            if len(self._buf) - start < _PAGE_HEADER:
                break
            if self._buf[start + 4] != 0:  # stream structure version 0 only: not a page
                start += 1
                continue
            nseg = self._buf[start + 26]
            if len(self._buf) - start < _PAGE_HEADER + nseg:
                break
            size = _PAGE_HEADER + nseg + sum(self._buf[start + _PAGE_HEADER : start + _PAGE_HEADER + nseg])
            if len(self._buf) - start < size:
                break
            header_type, granule, serial = struct.unpack_from("<BqI", self._buf, start + 5)
            pages.append(Page(bytes(self._buf[start : start + size]), header_type, granule, serial))
            start += size
        del self._buf[:start]
        return pages


class OpusStream(LiveStream):
    """Ogg Opus at 48 kHz, encoded once for every listener (`concert.outputs.stream.LiveStream`)."""

    media_type = "audio/ogg"
    name = "Ogg Opus"

    def __init__(self, config: StreamConfig | None = None, opus: OpusConfig | None = None, encode: bool = True) -> None:
        """`encode=False`: a relay, fed Ogg bytes by `relay` (a web worker passing on the conductor's stream)."""
        self.opus = opus or OpusConfig()
        if "OPUS" not in sf.available_subtypes("OGG"):
            version = sf.__libsndfile_version__
            raise RuntimeError(f"libsndfile {version} cannot write Opus: it needs libsndfile >= 1.0.29")
        self._splitter = PageSplitter()
        self._serial: int | None = None  # the logical stream whose headers we hold
        self._head: list[bytes] = []  # its header pages so far
        self._collecting = False  # between its first page and its first audio page
        self._last_granule = -1
        self.needs_header = False  # pages came of a stream whose headers this relay lacks
        super().__init__(config, OPUS_RATE, encode)

    def _open_encoder(self, sink: _ByteSink) -> sf.SoundFile:
        level = (_MAX_KBPS - self.opus.bitrate_kbps) / (_MAX_KBPS - _MIN_KBPS)  # libsndfile's linear mapping
        return sf.SoundFile(
            sink, mode="w", samplerate=OPUS_RATE, channels=1, format="OGG", subtype="OPUS", compression_level=level
        )

    def set_header(self, data: bytes) -> None:
        """The header pages of a stream under way (a relay joining late). ValueError if they are not one."""
        pages = PageSplitter().feed(data)
        if not pages or not pages[0].header_type & _BOS or any(p.serial != pages[0].serial for p in pages):
            raise ValueError("not the header pages of one Ogg stream")
        if pages[0].serial == self._serial and not self._collecting:
            return
        self._begin(pages[0])
        for p in pages[1:]:
            self._head.append(p.data)
        self._finish_header()

    def _begin(self, first: Page) -> None:
        if self._serial is not None:
            self._restart()  # another stream: what listeners have cannot continue into it
        self._serial, self._head, self._collecting, self._last_granule = first.serial, [first.data], True, -1
        self._header = b""
        self.needs_header = False

    def _finish_header(self) -> None:
        self._collecting = False
        self._header = b"".join(self._head)
        for listener in list(self._listeners):  # they joined before the stream had its headers
            if not listener._offer(self._header):
                self._drop(listener)

    def _split(self, data: bytes) -> list[bytes]:
        units: list[bytes] = []
        for page in self._splitter.feed(data):
            if page.header_type & _BOS:
                self._begin(page)
                continue
            if page.serial != self._serial:
                self.needs_header = True  # a relay that joined a stream without its headers: hold it back
                continue
            if self._collecting:
                if page.granule == 0:  # header pages carry granule 0; audio pages count samples
                    self._head.append(page.data)
                    continue
                self._finish_header()
            units.append(page.data)
        return units

    def _unit_seconds(self, unit: bytes) -> float:
        granule = struct.unpack_from("<q", unit, 6)[0]
        if granule < 0:
            return 0.0
        seconds = 0.0 if self._last_granule < 0 else max(0, granule - self._last_granule) / OPUS_RATE
        self._last_granule = granule
        return seconds
