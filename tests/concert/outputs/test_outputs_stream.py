from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route

from concert.outputs import Mp3Config, Mp3Stream, Output, StreamClosedError, StreamConfig, TooManyListenersError
from engine.source import Chunk
from tests.support.audio import NOW, RATE, chunks, decode


def _signal(seconds: float, seed: int = 0) -> np.ndarray:
    """A 440 Hz tone with noise bursts in its first second."""
    t = np.arange(int(seconds * RATE)) / RATE
    noise = np.random.default_rng(seed).standard_normal(t.size) * ((t < 1.0) & (np.sin(2 * np.pi * 4 * t) > 0.5))
    return (0.4 * np.sin(2 * np.pi * 440 * t) + 0.3 * noise).astype(np.float32)


def _out_of_band_db(pcm: np.ndarray, rate: int, lo: float = 400.0, hi: float = 480.0) -> float:
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm)))) ** 2
    freqs = np.fft.rfftfreq(len(pcm), 1 / rate)
    outside = spectrum[(freqs < lo) | (freqs > hi)].sum()
    return float(10 * np.log10(outside / spectrum.sum()))


async def _collect(listener: AsyncIterator[bytes]) -> bytes:
    return b"".join([data async for data in listener])


def test_is_an_output() -> None:
    assert isinstance(Mp3Stream(), Output)


def test_tone_comes_out_at_440_hz_at_44_1_khz_without_seams(tmp_path: Path) -> None:
    async def main() -> tuple[Mp3Stream, bytes]:
        stream = Mp3Stream()
        with stream.subscribe() as listener:
            for chunk in chunks(_signal(4.0)):
                stream.write(chunk)
            stream.close()
            return stream, await _collect(listener)

    stream, data = asyncio.run(main())
    assert len(data) == stream.bytes_encoded > 0
    pcm, rate = _decode_as(data, tmp_path)
    assert rate == 44100
    assert abs(len(pcm) / rate - 4.0) < 0.1  # encoder delay and frame padding only
    clean = pcm[2 * rate : 3 * rate]  # one second of pure tone, after the noise bursts
    spectrum = np.abs(np.fft.rfft(clean * np.hanning(len(clean))))
    assert abs(np.fft.rfftfreq(len(clean), 1 / rate)[spectrum.argmax()] - 440.0) <= 1.0
    # Resampling each chunk on its own leaves seams at about -68 dB; one soxr stream stays far below.
    assert _out_of_band_db(clean, rate) < -75.0


def test_other_rates_and_bitrates_encode(tmp_path: Path) -> None:
    async def main() -> bytes:
        stream = Mp3Stream(mp3=Mp3Config(sample_rate=22050, bitrate_kbps=64))
        with stream.subscribe() as listener:
            for chunk in chunks(_signal(2.0)):
                stream.write(chunk)
            stream.close()
            return await _collect(listener)

    data = asyncio.run(main())
    assert abs(len(data) - 2.0 * 64000 / 8) < 1500  # constant bitrate
    pcm, rate = _decode_as(data, tmp_path)
    assert rate == 22050
    assert abs(len(pcm) / rate - 2.0) < 0.1


def test_listener_joining_mid_stream_gets_a_decodable_burst(tmp_path: Path) -> None:
    config = StreamConfig(burst_seconds=1.5)

    async def main() -> tuple[bytes, bytes]:
        stream = Mp3Stream(config)
        signal = _signal(5.0)
        for chunk in chunks(signal[: 3 * RATE]):
            stream.write(chunk)
        with stream.subscribe() as late:
            burst = await late.__anext__()
            for chunk in chunks(signal[3 * RATE :], start=3 * RATE):
                stream.write(chunk)
            stream.close()
            return burst, burst + await _collect(late)

    burst, everything = asyncio.run(main())
    assert burst[0] == 0xFF and burst[1] & 0xE0 == 0xE0  # starts on an MP3 frame header
    pcm, rate = _decode_as(burst, tmp_path, "burst.mp3")
    assert rate == 44100
    assert config.burst_seconds - 0.1 < len(pcm) / rate < config.burst_seconds + 0.1
    pcm, rate = _decode_as(everything, tmp_path, "all.mp3")
    # the burst, the 2 s written after joining, and what the encoder still held when the listener joined
    assert config.burst_seconds + 2.0 - 0.05 < len(pcm) / rate < config.burst_seconds + 2.0 + 0.25
    tail = pcm[-rate:]
    spectrum = np.abs(np.fft.rfft(tail * np.hanning(len(tail))))
    assert abs(np.fft.rfftfreq(len(tail), 1 / rate)[spectrum.argmax()] - 440.0) <= 1.0


def test_slow_listener_is_dropped_without_holding_up_writes_or_others() -> None:
    async def main() -> None:
        stream = Mp3Stream(StreamConfig(listener_queue_chunks=4, burst_seconds=0.0))
        slow = stream.subscribe()  # never reads
        received: list[bytes] = []

        async def read(listener: AsyncIterator[bytes]) -> None:
            async for data in listener:
                received.append(data)

        with stream.subscribe() as fast:
            reader = asyncio.create_task(read(fast))
            for chunk in chunks(_signal(3.0)):
                stream.write(chunk)  # synchronous: nothing here can wait on a listener
                await asyncio.sleep(0)  # let the fast reader run, as the paced server loop would
            assert slow.dropped and not fast.dropped
            assert stream.dropped_listeners == 1
            assert stream.listeners == 1
            stream.close()
            await reader
        assert await _collect(slow) == b""  # a dropped listener just ends
        assert len(b"".join(received)) == stream.bytes_encoded

    asyncio.run(main())


def test_listen_ends_when_the_stream_closes_and_limits_hold() -> None:
    async def main() -> None:
        stream = Mp3Stream(StreamConfig(max_listeners=2))
        first, second = stream.subscribe(), stream.subscribe()
        with pytest.raises(TooManyListenersError, match="full"):
            stream.subscribe()
        second.close()
        assert stream.listeners == 1
        received: list[bytes] = []

        async def listen() -> None:
            async for data in stream.listen():
                received.append(data)

        task = asyncio.create_task(listen())
        await asyncio.sleep(0)
        assert stream.listeners == 2
        for chunk in chunks(_signal(1.0)):
            stream.write(chunk)
        stream.close()
        await task
        assert stream.listeners == 0
        assert len(b"".join(received)) == stream.bytes_encoded
        assert len(await _collect(first)) == stream.bytes_encoded
        with pytest.raises(StreamClosedError):
            stream.write(next(chunks(_signal(0.1))))
        with pytest.raises(StreamClosedError):
            stream.subscribe()
        stream.close()  # idempotent

    asyncio.run(main())


def test_bad_input_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="MP3 rate"):
        Mp3Config(sample_rate=96000)
    with pytest.raises(ValueError, match="bitrate_kbps"):
        Mp3Config(bitrate_kbps=100)
    with pytest.raises(ValueError, match="bitrate_kbps"):
        Mp3Config(sample_rate=8000, bitrate_kbps=128)
    stream = Mp3Stream()
    stream.write(Chunk(np.zeros(100, np.float32), RATE, 0, (), NOW))
    with pytest.raises(ValueError, match="sample rate changed from 24000 Hz to 48000 Hz"):
        stream.write(Chunk(np.zeros(100, np.float32), 48000, 100, (), NOW))
    with pytest.raises(ValueError, match="mono"):
        stream.write(Chunk(np.zeros((100, 2), np.float32), RATE, 100, (), NOW))
    stream.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _serve(app: Starlette) -> Iterator[str]:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="none"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20  # a guard against hanging, not a timing assertion
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()


def test_uvicorn_serves_a_decodable_mp3_stream_and_refuses_beyond_the_limit(tmp_path: Path) -> None:
    stream = Mp3Stream(StreamConfig(max_listeners=1, burst_seconds=0.5))
    block = RATE // 20  # 50 ms chunks, written in real time

    async def pump() -> None:
        signal = _signal(30.0)  # far more than the test reads
        for chunk in chunks(signal, block):
            stream.write(chunk)
            await asyncio.sleep(block / RATE)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(pump())
        yield
        task.cancel()
        stream.close()

    app = Starlette(routes=[Route("/stream", stream.endpoint)], lifespan=lifespan)
    wanted = int(1.5 * 128000 / 8)  # bytes: 1.5 s at 128 kbit/s
    data = bytearray()
    with _serve(app) as url, httpx.Client(timeout=20) as client:
        with client.stream("GET", f"{url}/stream") as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "audio/mpeg"
            assert response.headers["cache-control"] == "no-store"
            assert client.head(f"{url}/stream").headers["content-type"] == "audio/mpeg"  # no slot taken
            refused = client.get(f"{url}/stream")
            assert refused.status_code == 503
            assert "full" in refused.text
            for piece in response.iter_bytes():
                data += piece
                if len(data) >= wanted:
                    break
        deadline = time.monotonic() + 20  # a guard against hanging, not a timing assertion
        while stream.listeners:  # the server notices the hang-up and unsubscribes
            assert time.monotonic() < deadline, "the listener was not released after the client left"
            time.sleep(0.02)
    assert data[0] == 0xFF and data[1] & 0xE0 == 0xE0
    pcm, rate = _decode_as(bytes(data), tmp_path)
    assert rate == 44100
    assert len(pcm) / rate >= 1.4


def _decode_as(data: bytes, tmp_path: Path, name: str = "out.mp3") -> tuple[np.ndarray, int]:
    return decode(data, tmp_path, name)
