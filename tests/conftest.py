"""Shared fixtures. Servers here are real processes on 127.0.0.1, started once per session."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REDIS_START_TIMEOUT_S = 10.0  # seconds to wait for a fresh redis-server to answer PING


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis_command(port: int, command: bytes) -> bytes:
    """Send one inline command to a local Redis and return its raw reply (b"" if it is not up yet)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(command + b"\r\n")
            return s.recv(64)
    except OSError:
        return b""


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (nothing listens on it)."""
    return _free_port()


@contextlib.contextmanager
def private_redis(workdir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of its own in `workdir`: (URL redis://127.0.0.1:<port>/0, its process); stopped on exit."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed; the store tests need it: apt-get install redis-server")
    port = _free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--protected-mode", "yes", "--dir", str(workdir), "--logfile", str(workdir / "redis.log")]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + REDIS_START_TIMEOUT_S
        while _redis_command(port, b"PING") != b"+PONG\r\n":
            if proc.poll() is not None or time.monotonic() > deadline:
                log = workdir / "redis.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
                pytest.fail(f"redis-server on port {port} did not start (exit code {proc.poll()}):\n{tail}")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0", proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)  # a test may have frozen it
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server for the session; yields its URL, redis://127.0.0.1:<port>/0."""
    with private_redis(tmp_path_factory.mktemp("redis")) as (url, _):
        yield url


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server for this test alone (to kill or freeze): (URL, process)."""
    with private_redis(tmp_path) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session's Redis URL, its database flushed before the test."""
    reply = _redis_command(urlsplit(redis_server).port or 6379, b"FLUSHDB")
    if reply != b"+OK\r\n":
        pytest.fail(f"FLUSHDB on {redis_server} answered {reply!r}")
    return redis_server
