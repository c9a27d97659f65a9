"""What `concert serve` shows in the terminal at the booth: the addresses, a join QR code phones can scan off the
laptop's screen, and a status line that keeps updating (backend, what plays, buffered audio, phones, the bar).

`banner` and `status_line` are pure; `status_loop` prints the line in place on a terminal (carriage return) and
as a plain log line now and then otherwise, so a log file gets a heartbeat instead of a flood.
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import TextIO

import segno

from concert.config import ServeConfig

TTY_EVERY_S = 1.0  # seconds between status updates on a terminal
LOG_EVERY_S = 60.0  # seconds between status lines in a log file


def qr_text(url: str) -> str:
    """The URL as a QR code of Unicode half blocks (two modules a character cell; scans off a screen)."""
    buf = io.StringIO()
    segno.make(url, error="m").terminal(out=buf, compact=True, border=2)
    return buf.getvalue()


def banner(config: ServeConfig, qr: bool = True) -> str:
    url = config.join_url
    lines = [
        f"concert: audience page  {url}   (phones on the venue network open this, or scan the code)",
        f"concert: listener page  {url}listen",
        f"concert: DJ console     {url}dj?token={config.dj_token}",
    ]
    if config.host in ("127.0.0.1", "localhost", "::1"):
        lines.append("concert: listening on this machine only; --host 0.0.0.0 lets phones on the network in")
    text = "\n".join(lines) + "\n"
    return text + (qr_text(url) if qr else "")


def status_line(health: Mapping[str, object], state: Mapping[str, object] | None) -> str:
    """One line: backend, who plays, buffered audio, phones, stream listeners, Icecast pushes up, bar, genre and
    tempo, audio dropped so far."""
    playing = "" if health.get("audible") == "primary" else " (synth covering)"
    parts = [
        f"{health.get('status', '?')}",
        f"{health.get('backend', '?')}{playing}",
        f"{float(health.get('buffered_seconds') or 0):.1f} s buffered",  # type: ignore[arg-type]
        f"{health.get('clients', 0)} phones",
    ]
    listeners = health.get("listeners")
    if isinstance(listeners, Mapping) and any(listeners.values()):
        parts.append(f"{sum(int(n) for n in listeners.values())} listening")
    pushes = [p for p in health.get("icecast") or () if isinstance(p, Mapping)]  # type: ignore[attr-defined]
    if pushes:
        up = sum(1 for p in pushes if p.get("connected"))
        parts.append(f"icecast {up}/{len(pushes)} up")
    np_ = (state or {}).get("now_playing") or {}
    if isinstance(np_, Mapping) and np_:
        parts.append(
            f"bar {(state or {}).get('bar', '?')} {np_.get('genre', '?')} {float(np_.get('bpm') or 0):.0f} BPM"
        )
    dropped = float(health.get("dropped_audio_seconds") or 0)  # type: ignore[arg-type]
    if dropped:
        parts.append(f"{dropped:.1f} s dropped")
    return "concert: " + " · ".join(parts)


async def status_loop(
    health: Callable[[], Awaitable[tuple[dict[str, object], int]]],
    state: Callable[[], Mapping[str, object] | None],
    out: TextIO | None = None,
    tty: bool | None = None,
) -> None:
    """Print the status line until cancelled: in place every second on a terminal, a line a minute otherwise."""
    out = out or sys.stdout
    tty = out.isatty() if tty is None else tty
    width = 0
    while True:
        try:
            body, _ = await health()
            line = status_line(body, state())
        except Exception as e:  # the status line must never take the set down
            line = f"concert: status unavailable ({e!r})"
        if tty:
            out.write("\r" + line.ljust(width))
            width = len(line)
        else:
            out.write(line + "\n")
        out.flush()
        await asyncio.sleep(TTY_EVERY_S if tty else LOG_EVERY_S)
