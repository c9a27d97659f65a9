"""`concert serve --icecast`: the set pushed to a real Icecast 2 (MP3 and Ogg Opus mounts), listened to through it;
Icecast killed and started again: the push comes back by itself and the set's own stream never stalls."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from concert.outputs.icecast import IcecastConfig, IcecastUrlError, parse_url
from tests.support.icecast import Icecast, icecast_binary
from tests.support.metrics import metric
from tests.support.server import ONE_NAT, serve

pytestmark = pytest.mark.slow


def test_urls_are_parsed_or_refused_with_what_to_write() -> None:
    t = parse_url("http://source:p%40ss@radio.example:8010/live.opus")
    assert (t.host, t.port, t.mount, t.user, t.password, t.format) == (
        "radio.example",
        8010,
        "/live.opus",
        "source",
        "p@ss",
        "opus",
    )
    assert "p@ss" not in t.shown and "p@ss" not in repr(t)
    assert parse_url("icecast://:pw@h/a.mp3").format == "mp3" and parse_url("icecast://:pw@h/a.mp3").port == 8000
    for bad, says in (
        ("ftp://s:p@h/m", "scheme"),
        ("http://s@h/m.mp3", "password"),
        ("http://s:p@h", "mount"),
        ("http://s:p@h/a b", "mount"),
        ("http://s:p@h:99999/m", "port"),
    ):
        with pytest.raises(IcecastUrlError, match=says):
            IcecastConfig(bad)


@pytest.fixture
def icecast(tmp_path: Path) -> Iterator[Icecast]:
    if icecast_binary() is None:
        pytest.fail("icecast2 is not installed: run bash .ci/setup")
    ice = Icecast(tmp_path / "icecast")
    ice.start()
    try:
        yield ice
    finally:
        ice.remove()


def _listen(url: str, nbytes: int, timeout: float = 30.0) -> bytes:
    data = bytearray()
    with httpx.stream("GET", url, timeout=timeout) as r:
        assert r.status_code == 200, r.status_code
        for piece in r.iter_bytes():
            data += piece
            if len(data) >= nbytes:
                break
    return bytes(data)


def _wait_for_mounts(ice: Icecast, mounts: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # a readiness poll, not a timing assertion
        try:
            if mounts <= ice.mounts():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"mounts {sorted(mounts)} did not come up on Icecast (it has {sorted(ice.mounts())})")


def _audible(data: bytes) -> tuple[float, int, float]:
    pcm, rate = sf.read(io.BytesIO(data), dtype="float32")
    return len(pcm) / rate, rate, float(np.sqrt(np.mean(pcm[-rate:] ** 2)))


class Gaps(threading.Thread):
    """Reads the set's own /stream and keeps the longest wait between arrivals."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.longest, self.total, self.stop = url, 0.0, 0, threading.Event()

    def run(self) -> None:
        try:
            with httpx.stream("GET", self.url, timeout=30) as r:
                last = time.monotonic()
                for piece in r.iter_bytes():
                    now = time.monotonic()
                    self.longest, last = max(self.longest, now - last), now
                    self.total += len(piece)
                    if self.stop.is_set():
                        return
        except httpx.HTTPError:
            self.longest = float("inf")  # the stream broke off: the set stalled


def test_the_set_is_pushed_to_icecast_and_comes_back_after_icecast_restarts(icecast: Icecast, tmp_path: Path) -> None:
    mp3, opus = "/concert.mp3", "/concert.opus"
    args = ("--icecast", icecast.source_url(mp3), "--icecast", icecast.source_url(opus), *ONE_NAT)
    with serve(*args, log_dir=tmp_path) as s:
        _wait_for_mounts(icecast, {mp3, opus}, 30)
        for mount, rate, nbytes in ((mp3, 44100, 64_000), (opus, 48000, 48_000)):
            data = _listen(icecast.http + mount, nbytes)
            if mount == opus:
                assert data.startswith(b"OggS") and b"OpusHead" in data[:64]  # Icecast passes the headers on
            seconds, got_rate, rms = _audible(data)
            assert got_rate == rate and seconds > 2.0 and rms > 0.01, (mount, seconds, rms)

        gaps = Gaps(f"{s.http}/stream")
        gaps.start()
        icecast.kill()
        time.sleep(3)  # the set plays on with Icecast gone
        icecast.start()
        restarted = time.monotonic()
        _wait_for_mounts(icecast, {mp3, opus}, 60)  # the back-off is at most 30 s
        back = time.monotonic() - restarted
        data = _listen(icecast.http + mp3, 48_000)
        seconds, _, rms = _audible(data)
        assert seconds > 2.0 and rms > 0.01
        gaps.stop.set()
        gaps.join(20)
        assert gaps.total > 0 and gaps.longest < 1.5, gaps.longest  # the set's own stream never stalled
        print(f"both mounts back {back:.1f} s after Icecast restarted; longest gap in /stream {gaps.longest:.2f} s")
        labels = f'{{target="http://source@127.0.0.1:{icecast.port}{mp3}"}}'
        assert metric(s.http, f"concert_icecast_connects_total{labels}") >= 2
        assert metric(s.http, f"concert_icecast_failures_total{labels}") >= 1
        assert metric(s.http, f"concert_icecast_connected{labels}") == 1
        assert "icecast" in s.output() and "pushing again" in s.output()
