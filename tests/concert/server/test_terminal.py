"""The booth's terminal: the join QR code drawn in half blocks holds the join URL's modules, the banner names the
addresses, and the status line says what plays, in place on a terminal and as a log line otherwise."""

from __future__ import annotations

import asyncio
import io

import pytest
import segno

from concert.config import ServeConfig
from concert.server.terminal import banner, qr_text, status_line, status_loop

CELLS = {"█": (1, 1), "▀": (1, 0), "▄": (0, 1), " ": (0, 0)}  # (top light, bottom light) of one character


def _modules(text: str) -> list[list[int]]:
    """The light/dark modules the half blocks draw, two module rows per text row."""
    rows: list[list[int]] = []
    for line in text.rstrip("\n").split("\n"):
        top, bottom = zip(*(CELLS[ch] for ch in line), strict=True)
        rows += [list(top), list(bottom)]
    return rows


@pytest.mark.parametrize("url", ["http://192.168.1.20:8000/", "https://concert.example.org/set?night=1"])
def test_the_terminal_qr_code_draws_the_join_urls_modules(url: str) -> None:
    qr = segno.make(url, error="m")
    border = 2
    size = qr.symbol_size(border=border)[0]
    light = [[0 if dark else 1 for dark in row] for row in qr.matrix_iter(border=border)]
    drawn = _modules(qr_text(url))
    assert len(drawn[0]) == size
    assert drawn[:size] == light
    assert len(drawn) == size + size % 2  # an odd module count leaves half a text row below, drawn blank


def test_the_banner_names_every_address_and_warns_about_loopback() -> None:
    local = ServeConfig(host="127.0.0.1", port=8123, dj_token="tok")
    text = banner(local, qr=False)
    assert "http://localhost:8123/" in text and "http://localhost:8123/listen" in text
    assert "dj?token=tok" in text and "--host 0.0.0.0" in text
    lan = ServeConfig(host="0.0.0.0", port=8123, public_url="http://10.1.2.3:8123/")
    text = banner(lan)
    assert "http://10.1.2.3:8123/" in text and "--host 0.0.0.0" not in text
    assert "█" in text  # the code is drawn


HEALTH = {"status": "ok", "backend": "embedded", "audible": "primary", "buffered_seconds": 1.25, "clients": 7}
STATE = {"bar": 42, "now_playing": {"genre": "techno", "bpm": 127.6}}


def test_the_status_line_says_what_plays() -> None:
    line = status_line(HEALTH, STATE)
    assert line == "concert: ok · embedded · 1.2 s buffered · 7 phones · bar 42 techno 128 BPM"
    covering = status_line({**HEALTH, "status": "degraded", "audible": "fallback", "dropped_audio_seconds": 0.4}, None)
    assert "embedded (synth covering)" in covering and "0.4 s dropped" in covering and "bar" not in covering
    pushing = status_line(
        {**HEALTH, "listeners": {"mp3": 2, "opus": 1}, "icecast": [{"connected": True}, {"connected": False}]}, None
    )
    assert "3 listening" in pushing and "icecast 1/2 up" in pushing


def test_the_status_loop_rewrites_a_terminal_line_and_logs_otherwise() -> None:
    calls = 0

    async def health() -> tuple[dict[str, object], int]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("store gone")  # never takes the set down
        return dict(HEALTH), 200

    async def run(tty: bool) -> str:
        out = io.StringIO()
        task = asyncio.create_task(status_loop(health, lambda: STATE, out=out, tty=tty))
        await asyncio.sleep(0)
        while calls < 3 if tty else calls < 1:
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return out.getvalue()

    on_tty = asyncio.run(run(tty=True))
    assert on_tty.startswith("\rconcert: ok · embedded") and "\n" not in on_tty
    assert "status unavailable (RuntimeError('store gone'))" in on_tty
    calls = 0
    logged = asyncio.run(run(tty=False))
    assert logged == status_line(HEALTH, STATE) + "\n"  # then it waits a minute
