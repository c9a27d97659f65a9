"""`concert serve --workers 2` on a real Redis: phones on different worker processes share one set; killing
the conductor hands the set to a standby (same rounds, same votes, the stream goes on); killing a worker costs
its phones a reconnect with their identity, and the worker comes back; two such supervisors are two hosts of
one set, and the one left plays on when the other dies."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import signal
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import soundfile as sf
from websockets.sync.client import ClientConnection, connect

from tests.support.server import ONE_NAT, Server, serve

pytestmark = pytest.mark.slow

LEASE_S = 1.0  # the conductor lease in these tests, seconds


def _health(s: Server) -> dict[str, object]:
    try:
        with urllib.request.urlopen(f"{s.http}/healthz", timeout=10) as r:
            return dict(json.loads(r.read()))
    except urllib.error.HTTPError as e:
        return dict(json.loads(e.read()))


def _pid(owner: object) -> int:
    return int(str(owner).rsplit(":", 1)[1])


def _hello(ws: ClientConnection) -> dict[str, object]:
    msg = json.loads(ws.recv(timeout=30))
    assert msg["type"] == "hello"
    return dict(msg)


def _next(ws: ClientConnection, *kinds: str) -> dict[str, object]:
    """The next frame of one of `kinds` (state frames may come in between)."""
    while True:
        msg = json.loads(ws.recv(timeout=30))
        if msg["type"] in kinds:
            return dict(msg)


def _state_where(ws: ClientConnection, ok, timeout: float = 40.0) -> dict[str, object]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = json.loads(ws.recv(timeout=timeout))
        if msg["type"] == "state" and ok(msg):
            return dict(msg)
    raise AssertionError("no state frame matched in time")


class StreamReader(threading.Thread):
    """Reads /stream and records when bytes arrive, so a gap in the audio can be measured."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.arrivals: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            with urllib.request.urlopen(self.url, timeout=20) as r:
                while not self.stop.is_set():
                    data = r.read1(4096)
                    if not data:
                        return
                    self.arrivals.append((time.monotonic(), len(data)))
        except (OSError, http.client.HTTPException):  # the stream ended: the arrivals tell how far it got
            return

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=20)

    def longest_gap(self, after: float) -> float:
        times = [t for t, _ in self.arrivals if t >= after - 1]
        return max((b - a for a, b in zip(times, times[1:], strict=False)), default=float("inf"))


def test_two_workers_one_set_and_the_conductor_fails_over(redis_url: str, tmp_path: Path) -> None:
    args = ("--workers", "2", "--standbys", "1", "--lease", str(LEASE_S), "--store", redis_url, *ONE_NAT)
    args += ("--round-bars", "8", "--song-phrases", "4")
    with serve(*args, log_dir=tmp_path, timeout=120) as s:
        workers: set[object] = set()
        deadline = time.monotonic() + 30
        while len(workers) < 2 and time.monotonic() < deadline:
            workers.add(_health(s)["worker"])
        assert len(workers) == 2, f"connections reached {workers}"  # both workers take connections
        with contextlib.ExitStack() as stack:
            phones = [stack.enter_context(connect(s.ws, ping_interval=None)) for _ in range(8)]
            hellos = [_hello(ws) for ws in phones]
            state = dict(hellos[0]["state"])  # type: ignore[arg-type]
            round_id = state["round"]
            target = next(o["id"] for o in state["options"] if o["kind"] == "style")  # type: ignore[index,union-attr]
            for ws in phones:
                ws.send(json.dumps({"type": "vote", "round": round_id, "option": target}))
            for ws in phones:
                assert _next(ws, "ack", "error")["type"] == "ack"
            seen = _state_where(phones[0], lambda m: m["tallies"].get(target) == 8)
            assert seen["round"] == round_id  # every worker's votes in one tally

            reader = StreamReader(f"{s.http}/stream")
            reader.start()
            time.sleep(2.0)
            before = _health(s)
            killed = time.monotonic()
            os.kill(_pid(before["conductor"]), signal.SIGKILL)
            deadline = time.monotonic() + 30
            after = before
            while after.get("conductor") in (before["conductor"], None) and time.monotonic() < deadline:
                time.sleep(0.1)
                after = _health(s)
            took_over = time.monotonic() - killed
            assert after.get("conductor") not in (before["conductor"], None), after
            print(f"hand-over took {took_over:.2f} s")  # the lease lapses, the standby starts its engine
            carried = _state_where(phones[1], lambda m: m["tallies"].get(target) == 8 and m["round"] == round_id)
            assert carried["round"] == round_id  # the same round stays open, its votes intact
            time.sleep(3.0)
            reader.finish()
            resumed = [t for t, _ in reader.arrivals if t > killed + took_over]
            assert resumed, "the stream did not resume after the hand-over"
            print(f"longest stream gap {reader.longest_gap(after=killed):.2f} s")


def test_a_killed_worker_comes_back_and_its_phones_keep_their_identity(redis_url: str, tmp_path: Path) -> None:
    args = ("--workers", "2", "--standbys", "0", "--lease", str(LEASE_S), "--store", redis_url, *ONE_NAT)
    with serve(*args, log_dir=tmp_path, timeout=120) as s:
        victim = _health(s)["worker"]
        phones = [connect(s.ws, legacy=True, ping_interval=None) for _ in range(6)]  # closed one by one below
        tokens = [str(_hello(ws)["device"]) for ws in phones]
        os.kill(_pid(victim), signal.SIGKILL)
        dropped = []
        for ws, token in zip(phones, tokens, strict=True):
            try:
                ws.send(json.dumps({"type": "ping"}))
                _next(ws, "pong")
            except Exception:
                dropped.append(token)
            finally:
                ws.close()
        for token in dropped:  # the page reconnects with its cookie; here the device token stands in for it
            with connect(f"{s.ws}?device={token}", ping_interval=None) as ws:
                assert _hello(ws)["device"] == token
        deadline = time.monotonic() + 30
        workers: set[object] = set()
        while len(workers - {victim}) < 2 and time.monotonic() < deadline:
            workers.add(_health(s)["worker"])
        assert len(workers - {victim}) == 2, "the supervisor did not start the killed worker again"
        assert "exited" in s.output() and "restarting it" in s.output()
        # The new worker joined the Ogg stream under way: it takes the headers from Redis. Each listener, on
        # whichever worker the kernel gives it, gets a stream that decodes from its first byte.
        for _ in range(4):
            with urllib.request.urlopen(f"{s.http}/stream.opus", timeout=20) as r:
                data = b""
                while len(data) < 40_000:  # about 3 s at 96 kbit/s
                    piece = r.read1(8192)
                    assert piece, "the Ogg stream ended"
                    data += piece
            assert data.startswith(b"OggS") and b"OpusHead" in data[:64]
            pcm, rate = sf.read(io.BytesIO(data), dtype="float32")
            assert rate == 48000 and len(pcm) / rate > 1.5
        # the recent setlist, which the conductor carries in its snapshot, answered by either worker
        for _ in range(4):
            with urllib.request.urlopen(f"{s.http}/api/setlist", timeout=10) as r:
                played = json.loads(r.read())
            assert played["recent"] and played["recent"][-1]["by"] == "opening"
            assert played["landed"] >= len(played["recent"])


def test_a_full_restart_carries_the_round_and_the_mix_on(redis_url: str, tmp_path: Path) -> None:
    args = ("--workers", "2", "--standbys", "0", "--lease", str(LEASE_S), "--store", redis_url, *ONE_NAT)
    args += ("--round-bars", "8", "--song-phrases", "4", "--dj-token", "booth-token-1")
    with serve(*args, log_dir=tmp_path, timeout=120) as s:
        req = urllib.request.Request(
            f"{s.http}/api/dj/prompt",
            data=json.dumps({"prompt": [{"style": "techno", "weight": 1.0}]}).encode(),
            headers={"Authorization": "Bearer booth-token-1", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            assert json.loads(r.read())["ok"] is True  # the booth's action, run by the conductor for a worker
        with connect(s.ws, ping_interval=None) as ws:
            state = dict(_hello(ws)["state"])  # type: ignore[arg-type]
            stay = "stay"
            ws.send(json.dumps({"type": "vote", "round": state["round"], "option": stay}))
            assert _next(ws, "ack", "error")["type"] == "ack"
            first = _state_where(ws, lambda m: m["prompt"][0]["style"] == "techno" and m["tallies"].get(stay) == 1)
    with serve(*args, log_dir=tmp_path, timeout=120) as s, connect(s.ws, ping_interval=None) as ws:
        again = dict(_hello(ws)["state"])  # type: ignore[arg-type]
        assert again["round"] == first["round"]  # the same round is open after the restart
        assert again["tallies"] == {stay: 1}  # with its vote
        assert again["prompt"][0]["style"] == "techno"  # and the DJ's mix plays on


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state letter


def test_two_hosts_play_one_set_and_the_survivor_plays_on(redis_url: str, tmp_path: Path) -> None:
    """Two supervisors (two hosts of one set, here on two ports) with the same signing key and booth token: one
    conductor plays for both, a phone is the same phone on either, votes on one are tallied with the other's,
    and when the host holding the lease dies whole, the other's conductor takes the set on, votes intact."""
    secret = tmp_path / "secret"
    secret.write_bytes(os.urandom(32).hex().encode())
    args = ("--workers", "2", "--standbys", "0", "--lease", str(LEASE_S), "--store", redis_url, *ONE_NAT)
    args += ("--round-bars", "8", "--song-phrases", "4", "--secret-file", str(secret), "--dj-token", "booth-2")
    with serve(*args, log_dir=tmp_path, timeout=120) as a, serve(*args, log_dir=tmp_path, timeout=120) as b:
        deadline = time.monotonic() + 30
        while (_health(a).get("conductor") is None or _health(b).get("conductor") is None) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.1)
        owner = _health(a)["conductor"]
        assert owner is not None and _health(b)["conductor"] == owner  # one conductor for both hosts
        holder = a if _parent(_pid(owner)) == a.proc.pid else b
        survivor = b if holder is a else a
        assert _parent(_pid(owner)) == holder.proc.pid

        with connect(holder.ws, ping_interval=None) as ws:
            hello = _hello(ws)
            token = str(hello["device"])
            state = dict(hello["state"])  # type: ignore[arg-type]
        round_id = state["round"]
        target = next(o["id"] for o in state["options"] if o["kind"] == "style")  # type: ignore[index,union-attr]
        with connect(f"{survivor.ws}?device={token}", ping_interval=None) as ws:
            assert _hello(ws)["device"] == token  # the other host knows the phone by the shared key
            ws.send(json.dumps({"type": "vote", "round": round_id, "option": target}))
            assert _next(ws, "ack", "error")["type"] == "ack"
        with connect(holder.ws, ping_interval=None) as ws:
            _hello(ws)
            ws.send(json.dumps({"type": "vote", "round": round_id, "option": target}))
            assert _next(ws, "ack", "error")["type"] == "ack"
            _state_where(ws, lambda m: m["round"] == round_id and m["tallies"].get(target) == 2)

        with connect(survivor.ws, ping_interval=None) as phone:
            _hello(phone)
            reader = StreamReader(f"{survivor.http}/stream")
            reader.start()
            time.sleep(2.0)
            killed = time.monotonic()
            holder.proc.kill()  # the whole host: its supervisor by SIGKILL, its children with it
            holder.proc.wait()
            deadline = time.monotonic() + 30
            after = _health(survivor)
            while after.get("conductor") in (owner, None) and time.monotonic() < deadline:
                time.sleep(0.1)
                after = _health(survivor)
            took_over = time.monotonic() - killed
            assert after.get("conductor") not in (owner, None), after
            assert _parent(_pid(after["conductor"])) == survivor.proc.pid
            print(f"hand-over to the other host took {took_over:.2f} s")
            carried = _state_where(phone, lambda m: m["round"] == round_id and m["tallies"].get(target) == 2)
            assert carried["tallies"][target] == 2  # both hosts' votes, carried by the new conductor
            time.sleep(3.0)
            reader.finish()
            assert [t for t, _ in reader.arrivals if t > killed + took_over], "the stream did not resume"
            print(f"longest stream gap {reader.longest_gap(after=killed):.2f} s")
