"""Redis killed and restarted under the real server, with AOF on: voting pauses visibly, then every vote that
was acknowledged before the kill is still counted (README: run Redis with appendonly yes)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.conftest import _free_port, _redis_command
from tests.support.server import ONE_NAT, serve

pytestmark = pytest.mark.slow


def _redis(port: int, folder: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", ""]
    args += ["--appendonly", "yes", "--appendfsync", "everysec", "--logfile", str(folder / "redis.log")]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while _redis_command(port, b"PING") != b"+PONG\r\n":
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("redis-server did not start")
        time.sleep(0.05)
    return proc


def _state(http: str) -> dict[str, object]:
    with urllib.request.urlopen(f"{http}/api/state", timeout=5) as r:
        return dict(json.loads(r.read()))


def test_acknowledged_votes_survive_a_redis_kill_and_restart(tmp_path: Path) -> None:
    port = _free_port()
    redis = _redis(port, tmp_path)
    try:
        args = ("--store", f"redis://127.0.0.1:{port}/0", "--round-bars", "64", *ONE_NAT)
        with serve(*args, log_dir=tmp_path) as s:
            phones = [connect(s.ws, legacy=True) for _ in range(12)]
            try:
                hellos = [json.loads(ws.recv(timeout=10)) for ws in phones]
                round_id = hellos[0]["state"]["round"]
                options = [o["id"] for o in hellos[0]["state"]["options"]]
                acked = 0
                for i, ws in enumerate(phones):
                    ws.send(json.dumps({"type": "vote", "round": round_id, "option": options[i % len(options)]}))
                    while (msg := json.loads(ws.recv(timeout=10)))["type"] == "state":
                        pass
                    acked += msg["type"] == "ack"
                assert acked == len(phones)
                before = _state(s.http)["tallies"]
                redis.send_signal(signal.SIGKILL)
                redis.wait()
                ws = phones[0]
                ws.send(json.dumps({"type": "vote", "round": round_id, "option": options[1]}))
                while (msg := json.loads(ws.recv(timeout=10)))["type"] == "state":
                    pass
                assert msg["type"] == "error" and msg["code"] == "store_unavailable"  # paused, and it says so
                redis = _redis(port, tmp_path)  # the same data folder: the AOF is replayed
                deadline = time.monotonic() + 20
                after = None
                while time.monotonic() < deadline:
                    try:
                        after = _state(s.http)["tallies"]
                        break
                    except OSError:
                        time.sleep(0.2)
                assert after == before and sum(after.values()) == acked  # not one acknowledged vote lost
                ws.send(json.dumps({"type": "vote", "round": round_id, "option": options[0]}))
                while (msg := json.loads(ws.recv(timeout=10)))["type"] == "state":
                    pass
                assert msg["type"] == "ack"  # and voting is back
            finally:
                for ws in phones:
                    ws.close()
        log = s.output()
        assert log.count("is unavailable") <= 2 and "Traceback" not in log  # one line per outage, no tracebacks
    finally:
        redis.kill()
        redis.wait()
