"""`/stream`: the live MP3 stream every phone browser plays (CBR, libsndfile's LAME), cut into whole frames.

MP3 frames borrow bits from earlier frames (the bit reservoir), so a decoder joining mid-stream may skip its first
frame; every decoder does.
"""

from __future__ import annotations

from dataclasses import dataclass

import soundfile as sf

from concert.outputs.stream import LiveStream, StreamConfig, _ByteSink

_MPEG1_RATES = (44100, 48000, 32000)  # by the header's sample-rate index
_MPEG2_RATES = (22050, 24000, 16000)
_MPEG25_RATES = (11025, 12000, 8000)
_MPEG1_KBPS = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_MPEG2_KBPS = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
_MPEG25_MAX_KBPS = 64  # libsndfile's bitrate range for MPEG-2.5 is [8, 64]


@dataclass(frozen=True)
class Mp3Config:
    sample_rate: int = 44100  # Hz output rate: an MP3 rate, 8000 … 48000
    bitrate_kbps: int = 128  # constant MP3 bitrate, kbit/s (32 … 320 at 32 kHz and up)

    def __post_init__(self) -> None:
        rates = _MPEG1_RATES + _MPEG2_RATES + _MPEG25_RATES
        if self.sample_rate not in rates:
            raise ValueError(f"sample_rate must be an MP3 rate {sorted(rates)}, got {self.sample_rate!r}")
        allowed = _allowed_kbps(self.sample_rate)
        if self.bitrate_kbps not in allowed:
            raise ValueError(
                f"bitrate_kbps at {self.sample_rate} Hz must be one of {list(allowed)}, got {self.bitrate_kbps!r}"
            )


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


class Mp3Stream(LiveStream):
    """CBR MP3, encoded once for every listener (`concert.outputs.stream.LiveStream`)."""

    media_type = "audio/mpeg"
    name = "MP3"

    def __init__(self, config: StreamConfig | None = None, mp3: Mp3Config | None = None, encode: bool = True) -> None:
        """`encode=False`: a relay, fed MP3 bytes by `relay` (a web worker passing on the conductor's stream)."""
        self.mp3 = mp3 or Mp3Config()
        if "MP3" not in sf.available_formats():
            raise RuntimeError(f"libsndfile {sf.__libsndfile_version__} cannot write MP3: it needs libsndfile >= 1.1")
        rate = self.mp3.sample_rate
        self._frame_s = (1152 if rate in _MPEG1_RATES else 576) / rate  # seconds in one Layer III frame
        self._splitter = _FrameSplitter()
        self._frames_seen = 0
        super().__init__(config, rate, encode)

    def _open_encoder(self, sink: _ByteSink) -> sf.SoundFile:
        return sf.SoundFile(
            sink,
            mode="w",
            samplerate=self.mp3.sample_rate,
            channels=1,
            format="MP3",
            subtype="MPEG_LAYER_III",
            bitrate_mode="CONSTANT",
            compression_level=_compression_level(self.mp3.sample_rate, self.mp3.bitrate_kbps),
        )

    def _split(self, data: bytes) -> list[bytes]:
        frames = self._splitter.feed(data)
        if self._frames_seen == 0 and frames and _is_tag_placeholder(frames[0]):
            frames = frames[1:]
            self._frames_seen = 1
        self._frames_seen += len(frames)
        return frames

    def _unit_seconds(self, unit: bytes) -> float:
        return self._frame_s
