"""A frozen Redis under the real server: phones get a clear error at once, the log gets one line, not a flood."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.support.server import ONE_NAT, serve

pytestmark = pytest.mark.slow


def test_votes_refuse_clearly_while_redis_is_frozen_and_flow_again_after(
    own_redis: tuple[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    url, redis = own_redis
    with serve("--store", url, "--round-bars", "16", *ONE_NAT, log_dir=tmp_path) as s:
        with connect(s.ws) as ws:
            hello = json.loads(ws.recv(timeout=10))
            round_id = hello["state"]["round"]

            def vote(device_option: str) -> dict:
                ws.send(json.dumps({"type": "vote", "round": round_id, "option": device_option}))
                while (msg := json.loads(ws.recv(timeout=30)))["type"] == "state":
                    pass
                return msg

            assert vote("stay")["type"] == "ack"
            os.kill(redis.pid, signal.SIGSTOP)
            try:
                replies = [vote("stay") for _ in range(5)]
            finally:
                os.kill(redis.pid, signal.SIGCONT)
            assert [r.get("code") for r in replies] == ["store_unavailable"] * 5
            deadline = time.monotonic() + 20
            while (reply := vote("stay"))["type"] != "ack" and time.monotonic() < deadline:
                time.sleep(0.5)
            assert reply["type"] == "ack"
        log = s.output()
    assert log.count("is unavailable") == 1 and "is back after" in log
    assert "Traceback" not in log
