"""`concert bench votes` end to end, small: a real server and the bare floor, the same crowd in two processes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_the_vote_bench_measures_the_server_and_the_floor_side_by_side() -> None:
    cmd = [sys.executable, "-m", "concert", "bench", "votes", "--clients", "60", "--rate", "60", "--seconds", "3"]
    proc = subprocess.run([*cmd, "--client-processes", "2", "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for prefix in ("", "floor_"):
        assert result[f"{prefix}clients"] == 60
        assert result[f"{prefix}errors"] == 0
        assert result[f"{prefix}acks"] == result[f"{prefix}votes_sent"] > 100  # every vote answered
        assert result[f"{prefix}states_received"] > 60  # every client got state frames while voting
        assert result[f"{prefix}ack_p50_ms"] <= result[f"{prefix}ack_p99_ms"]
        assert result[f"{prefix}rss_mb_per_1k_clients"] > 0  # connected clients cost the server memory
    assert result["ack_p99_vs_floor"] == pytest.approx(result["ack_p99_ms"] / result["floor_ack_p99_ms"], rel=0.02)
