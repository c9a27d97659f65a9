"""`concert soak`, short: the live audio path under a simulated crowd, faster than real time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from concert.playback.soak import Ledger, SoakConfig, rss_growth_pct


def test_a_short_soak_plays_records_and_loses_nothing(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "concert", "soak", "--hours", "0.05", "--rotate-seconds", "60"]
    proc = subprocess.run([*cmd, "--record", str(tmp_path), "--json"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["audio_hours"] == 0.05
    assert r["underruns"] == 0 and r["dropped_audio_s"] == 0 and r["silence_s"] == 0
    assert r["votes"] > 100 and r["refused"] > 0 and r["rounds"] > 5  # the crowd voted, and misbehaved
    assert r["votes_lost"] == 0
    files = sorted(Path(r["record"]).glob("audio-*.flac"))  # every hour closed and archived
    assert r["files"] == r["files_ok"] == len(files) == 3  # 180 s in 60 s files
    assert sum(sf.info(str(f)).duration for f in files) == pytest.approx(180.0, abs=0.2)
    setlist = (Path(r["record"]) / "setlist.jsonl").read_text().splitlines()
    assert sum(json.loads(line)["event"] == "round" for line in setlist) > 5


def test_the_ledger_counts_an_acknowledged_vote_the_tally_lacks() -> None:
    ledger = Ledger()
    ledger.acked[7] = {"a": "techno", "b": "techno", "c": "stay"}
    ledger.closed(7, {"techno": 1, "stay": 1})
    assert ledger.lost == 1 and 7 not in ledger.acked
    ledger.acked[8] = {"a": "stay"}
    ledger.closed(8, {"stay": 1, "house": 3})  # more than was acked is not a loss (other phones)
    assert ledger.lost == 1 and ledger.rounds == 2


def test_rss_growth_sees_a_leak_and_not_a_swing() -> None:
    leak = [100.0 + 5 * i for i in range(21)]  # +5 MiB every sample
    swing = [200.0 if i % 3 else 220.0 for i in range(21)]  # the allocator's ups and downs, no trend
    assert rss_growth_pct(leak) > 40
    assert abs(rss_growth_pct(swing)) < 2
    assert rss_growth_pct([150.0]) == 0.0


def test_a_token_backend_must_be_paced() -> None:
    with pytest.raises(ValueError, match="--speed"):
        SoakConfig(backend="embedded", speed=0.0)
    assert SoakConfig(backend="embedded", speed=2.0).speed == 2.0
