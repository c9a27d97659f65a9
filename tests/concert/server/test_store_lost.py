"""Redis restarted without its data under the real server: phones and the setlist are told, not left guessing."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import redis
from websockets.sync.client import connect

from tests.support.server import ONE_NAT, serve

pytestmark = pytest.mark.slow


def test_lost_votes_are_announced_to_phones_and_in_the_setlist(
    own_redis: tuple[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    url, _ = own_redis
    rec = tmp_path / "rec"
    args = ("--store", url, "--round-bars", "2", "--song-phrases", "1", "--record", str(rec), *ONE_NAT)
    with serve(*args, log_dir=tmp_path) as s, connect(s.ws) as ws:
        json.loads(ws.recv(timeout=10))
        time.sleep(6)  # a few rounds close normally (each process adopts the dataset at its first close)
        redis.Redis.from_url(url).flushall()  # what a restart without persistence leaves behind
        deadline = time.monotonic() + 30
        notice = None
        while notice is None and time.monotonic() < deadline:
            msg = json.loads(ws.recv(timeout=30))
            if msg["type"] == "state":
                notice = msg.get("notice")
        assert notice is not None and "lost the votes" in notice
    (set_dir,) = rec.iterdir()
    events = [json.loads(line) for line in (set_dir / "setlist.jsonl").read_text().splitlines()]
    lost = [e for e in events if e["event"] == "store_lost"]
    assert len(lost) == 1 and len(lost[0]["rounds"]) == 2
