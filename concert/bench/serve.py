"""Run `concert serve` in a child process on a free loopback port (benchmarks and tests)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path  # the child's stdout and stderr

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


# A whole crowd from one address: the load harnesses (and tests that are not about the caps) run every client on
# 127.0.0.1, as a venue behind one NAT does; `concert serve`'s defaults protect a real set from one laptop.
ONE_NAT = (
    "--per-address-connections",
    "1000000",
    "--per-address-new-devices",
    "1e9",
    "--device-messages-per-minute",
    "1e9",
    "--address-messages-per-minute",
    "1e9",
)


@contextlib.contextmanager
def serve(
    *args: str, log_dir: Path | None = None, env: Mapping[str, str] | None = None, timeout: float = 90.0
) -> Iterator[Server]:
    """Start `concert serve ARGS` on a free port, wait for /healthz, stop it on exit.

    The text model (half a gigabyte and seconds of CPU in the background) is off unless ARGS ask for it, so it
    never competes with the audio path of a test or a benchmark that does not use it.

    Raises RuntimeError with the tail of the child's output if it exits or is not
    healthy within `timeout` seconds.
    """
    port = free_port()
    with contextlib.ExitStack() as stack:
        folder = Path(log_dir) if log_dir is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        log = folder / f"serve-{port}.log"
        words = () if "--text-model" in args else ("--text-model", "off")
        cmd = [sys.executable, "-m", "concert", "serve", "--host", "127.0.0.1", "--port", str(port), *words, *args]
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        server = Server(port, proc, log)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"concert serve exited with {proc.returncode}:\n{server.output()[-3000:]}")
                with contextlib.suppress(OSError):
                    with urllib.request.urlopen(f"{server.http}/healthz", timeout=1) as r:
                        if r.status == 200:
                            break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"concert serve not healthy after {timeout} s:\n{server.output()[-3000:]}")
                time.sleep(0.1)
            yield server
        finally:
            stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, and SIGKILL if it has not exited within `timeout` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
