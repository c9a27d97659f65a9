"""HTTP hardening against the real server: bounded request heads, slowloris cut off, long-lived sockets kept."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator

import pytest
from websockets.sync.client import connect

from concert.server.http import HEAD_SECONDS
from tests.support.metrics import metric
from tests.support.server import Server, serve

pytestmark = pytest.mark.slow

DROPPED = 'concert_stream_dropped_listeners_total{format="mp3"}'  # the MP3 stream's dropped listeners


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(log_dir=tmp_path_factory.mktemp("http")) as s:
        yield s


def test_a_request_head_of_a_mebibyte_is_refused(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n")
        assert s.recv(64).startswith(b"HTTP/1.1 400")


def test_a_client_dripping_its_headers_is_cut_off(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        start = time.monotonic()
        closed_after = None
        while closed_after is None and time.monotonic() - start < 3 * HEAD_SECONDS:
            time.sleep(0.5)
            try:
                s.sendall(b"X-Slow: 1\r\n")
                if s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":  # end of stream: the server closed it
                    closed_after = time.monotonic() - start
            except BlockingIOError:  # nothing to read: still open
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - start
        assert closed_after is not None and HEAD_SECONDS - 1 <= closed_after < 2 * HEAD_SECONDS


def test_websockets_and_the_stream_outlive_the_head_deadline(server: Server) -> None:
    import httpx

    with connect(server.ws) as ws, httpx.stream("GET", f"{server.http}/stream", timeout=30) as audio:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        chunks = audio.iter_bytes()
        start = time.monotonic()
        got = 0
        while time.monotonic() - start < HEAD_SECONDS + 3:
            got += len(next(chunks))
            while True:  # drain the state frames that arrived meanwhile
                try:
                    ws.recv(timeout=0.01)
                except TimeoutError:
                    break
        ws.send(json.dumps({"type": "ping"}))
        while (msg := json.loads(ws.recv(timeout=10)))["type"] == "state":
            pass
        assert msg == {"type": "pong"} and got > 10_000


def test_one_address_holds_four_streams_and_a_listener_that_stops_reading_is_dropped(server: Server) -> None:
    import httpx

    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)  # (before connecting: a small window)
    stalled.connect(("127.0.0.1", server.port))
    stalled.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")  # ... and never reads
    with contextlib.ExitStack() as stack:
        streams = [stack.enter_context(httpx.stream("GET", f"{server.http}/stream", timeout=30)) for _ in range(3)]
        assert [r.status_code for r in streams] == [200, 200, 200]
        with httpx.stream("GET", f"{server.http}/stream", timeout=30) as fifth:
            assert fifth.status_code == 429  # the stalled socket is the fourth
        readers = [r.iter_bytes() for r in streams]
        start = time.monotonic()
        while metric(server.http, DROPPED) < 1 and time.monotonic() - start < 40:
            for it in readers:  # the honest listeners keep reading
                next(it)
            time.sleep(0.2)
        assert metric(server.http, DROPPED) == 1  # only the one that stopped
        assert time.monotonic() - start < 30
        for it in readers:
            assert len(next(it)) > 0
    stalled.close()
