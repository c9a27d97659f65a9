"""One hostile address against the real server: foreign origins, socket floods, minted devices, message floods.

Each attack is replayed against `concert serve` in a subprocess with small caps and must be refused, while an
honest phone from the same address keeps its identity and its vote.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.support.server import Server, serve

pytestmark = pytest.mark.slow

CAPS = ("--per-address-connections", "3", "--per-address-new-devices", "2", "--device-messages-per-minute", "20")


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(*CAPS, "--allow-origin", "https://concert.example", log_dir=tmp_path_factory.mktemp("abuse")) as s:
        yield s


def hello(ws: ClientConnection) -> dict:
    msg = json.loads(ws.recv(timeout=10))
    assert msg["type"] == "hello", msg
    return msg


def refused(url: str, code: str) -> None:
    """The socket opens, says `code` in an error frame and closes with 1008."""
    with connect(url) as ws:
        msg = json.loads(ws.recv(timeout=10))
        assert msg == {"type": "error", "code": code, "message": msg["message"]}
        with pytest.raises(ConnectionClosed) as e:
            ws.recv(timeout=10)
        assert e.value.rcvd is not None and e.value.rcvd.code == 1008


def refusals(s: Server) -> dict[str, float]:
    with urllib.request.urlopen(f"{s.http}/metrics", timeout=10) as r:
        lines = r.read().decode().splitlines()
    return {line.split('"')[1]: float(line.split()[-1]) for line in lines if line.startswith("concert_refused_total{")}


def test_a_foreign_page_cannot_open_the_socket(server: Server) -> None:
    with pytest.raises(InvalidStatus) as e:
        connect(server.ws, origin="http://evil.example")  # type: ignore[arg-type]
    assert e.value.response.status_code == 403
    token = ""
    for origin in (f"http://127.0.0.1:{server.port}", f"http://localhost:{server.port}", "https://concert.example"):
        with connect(f"{server.ws}?device={token}", origin=origin) as ws:  # type: ignore[arg-type]
            token = hello(ws)["device"]  # one phone, three pages it may be served from


def test_one_address_holds_its_share_of_sockets_and_of_new_phones(server: Server) -> None:
    with connect(server.ws) as a:
        token = hello(a)["device"]
        with connect(server.ws) as b:
            hello(b)  # a second new phone: the share of new devices (2 a minute) is spent
            refused(server.ws, "too_many_devices")  # a third cookie-less socket would mint one more
            with connect(f"{server.ws}?device={token}") as c:  # a known phone keeps its identity
                assert hello(c)["device"] == token
                refused(f"{server.ws}?device={token}", "too_many_connections")  # 3 open: the cap
    with connect(f"{server.ws}?device={token}") as again:  # closing gives the share back
        assert hello(again)["device"] == token
    assert refusals(server) == {"too_many_connections": 1, "too_many_devices": 1}


def test_a_device_flooding_over_several_sockets_is_slowed_and_its_vote_still_counts(server: Server) -> None:
    with connect(server.ws) as a:
        first = hello(a)
        token, round_id = first["device"], first["state"]["round"]
        replies = []
        for _ in range(15):
            a.send(json.dumps({"type": "ping"}))
        with connect(f"{server.ws}?device={token}") as b:  # a new socket does not reset the phone's budget
            hello(b)
            for _ in range(15):
                b.send(json.dumps({"type": "ping"}))
            for ws in (a, b):
                for _ in range(15):
                    while (msg := json.loads(ws.recv(timeout=10)))["type"] == "state":
                        pass
                    replies.append(msg)
    codes = [m.get("code", m["type"]) for m in replies]
    assert codes.count("pong") == 20 and codes.count("rate_limited") == 10  # 20 a minute for this phone
    with connect(f"{server.ws}?device={token}") as c:
        hello(c)
        c.send(json.dumps({"type": "vote", "round": round_id, "option": "stay"}))
        while (msg := json.loads(c.recv(timeout=10)))["type"] == "state":
            pass
        assert msg["type"] in ("ack", "error") and msg.get("code") == "rate_limited"  # the budget is still spent
