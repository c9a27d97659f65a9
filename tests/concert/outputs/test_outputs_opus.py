"""The Ogg Opus stream: decodable from the start and from the middle, relayed across processes, chains handled."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from concert.outputs import OpusConfig, OpusStream, Output, StreamConfig
from concert.outputs.opus import PageSplitter
from tests.support.audio import RATE, chunks, decode


def _tone(seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / rate)[spectrum.argmax()])


def _drain(listener: AsyncIterator[bytes]) -> bytes:
    """What a listener holds now (the stream is driven synchronously in these tests)."""
    out = bytearray()
    queue = listener._queue  # type: ignore[attr-defined]
    while not queue.empty():
        item = queue.get_nowait()
        if item is None:
            break
        out += item
    return bytes(out)


def test_is_an_output_and_refuses_bad_bitrates() -> None:
    assert isinstance(OpusStream(), Output)
    for bad in (5, 257, 96.0):
        with pytest.raises(ValueError, match="bitrate"):
            OpusConfig(bitrate_kbps=bad)  # type: ignore[arg-type]


def test_a_tone_comes_out_at_48_khz_at_its_bitrate(tmp_path: Path) -> None:
    async def main() -> tuple[OpusStream, bytes]:
        stream = OpusStream(opus=OpusConfig(bitrate_kbps=64))
        listener = stream.subscribe()
        for chunk in chunks(_tone(6.0)):
            stream.write(chunk)
        stream.close()
        return stream, b"".join([d async for d in listener])

    stream, data = asyncio.run(main())
    assert data.startswith(b"OggS") and b"OpusHead" in data[:100] and b"OpusTags" in data[:1000]
    assert len(data) == stream.bytes_encoded + len(stream.header)
    pcm, rate = _decode_as(data, tmp_path)
    assert rate == 48000
    assert abs(len(pcm) / rate - 6.0) < 0.1
    assert abs(_peak_hz(pcm[2 * rate : 3 * rate], rate) - 440.0) <= 1.0
    kbps = stream.bytes_encoded * 8 / 6.0 / 1000
    assert 40 < kbps < 90  # about the 64 asked for (VBR)


def test_a_listener_joining_mid_stream_gets_the_headers_then_the_burst(tmp_path: Path) -> None:
    stream = OpusStream(StreamConfig(burst_seconds=2.0))
    for chunk in chunks(_tone(5.0)):
        stream.write(chunk)
    late = stream.subscribe()
    primer = _drain(late)
    pages = PageSplitter().feed(primer)
    assert pages[0].header_type & 0x02 and b"OpusHead" in pages[0].data  # the stream's first page
    assert pages[1].granule == 0 and b"OpusTags" in pages[1].data
    assert all(p.granule > 0 for p in pages[2:]) and len(pages) >= 4  # audio from the middle of the stream
    assert pages[2].granule > 2 * 48000  # not the start
    for chunk in chunks(_tone(2.0, 660.0), start=5 * RATE):
        stream.write(chunk)
    stream.close()
    pcm, rate = _decode_as(primer + _drain(late), tmp_path)
    assert 2.0 + 1.0 < len(pcm) / rate < 2.0 + 3.5  # the burst (whole pages of about 1 s), then what followed
    assert abs(_peak_hz(pcm[-rate // 2 :], rate) - 660.0) <= 2.0


def test_a_relay_passes_the_stream_on_from_any_cut_and_a_late_relay_takes_the_headers() -> None:
    source = OpusStream()
    tap = source.subscribe(burst=False)
    for chunk in chunks(_tone(3.0)):
        source.write(chunk)
    encoded = _drain(tap)

    relay = OpusStream(encode=False)
    listener = relay.subscribe()
    for i in range(0, len(encoded), 333):  # bytes cut anywhere, as pub/sub messages may be
        relay.relay(encoded[i : i + 333])
    assert encoded.startswith(source.header)  # a listener from before the first write gets the headers too
    assert relay.header == source.header
    assert _drain(listener) == encoded  # byte for byte: the headers when complete, then every page

    late = OpusStream(encode=False)  # joins after the headers went by
    held = late.subscribe()
    audio = encoded[len(source.header) :]
    late.relay(audio)
    assert late.needs_header and _drain(held) == b""  # pages it cannot make playable are held back
    late.set_header(source.header)
    assert not late.needs_header
    late.relay(audio)
    newcomer = late.subscribe(burst=False)
    assert _drain(newcomer) == source.header
    with pytest.raises(ValueError, match="header"):
        late.set_header(audio)


def test_a_new_chain_ends_the_listeners_of_the_old_one() -> None:
    def encoded(seconds: float) -> bytes:
        s = OpusStream()
        tap = s.subscribe(burst=False)
        for chunk in chunks(_tone(seconds)):
            s.write(chunk)
        return _drain(tap)

    first, second = encoded(2.0), encoded(2.0)
    serials = {struct.unpack_from("<I", data, 14)[0] for data in (first, second)}
    assert len(serials) == 2  # libsndfile picks a new serial number for each stream

    async def main() -> tuple[bytes, bool, bytes]:
        relay = OpusStream(encode=False)
        relay.relay(first)
        old = relay.subscribe()
        relay.relay(second)  # the conductor changed hands: a new stream begins
        heard = b"".join([d async for d in old])  # ends, so the player reconnects
        new = relay.subscribe(burst=False)
        return heard, relay.listeners == 1, _drain(new)

    heard, one_left, fresh = asyncio.run(main())
    assert heard.startswith(first[:100]) and second[:100] not in heard
    assert one_left and fresh.startswith(second[:100])


def _decode_as(data: bytes, tmp_path: Path, name: str = "out.opus") -> tuple[np.ndarray, int]:
    return decode(data, tmp_path, name)
