"""`concert serve` with the venue speakers (ALSA null device) and a recording that survives a crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf

from tests.support.metrics import metric
from tests.support.server import serve

pytestmark = pytest.mark.slow


def test_serve_plays_to_speakers_and_records_a_set_that_survives_a_kill(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text("pcm.!default { type null }\n")
    rec = tmp_path / "rec"
    args = ("--output", "speakers", "--record", str(rec), "--round-bars", "1", "--song-phrases", "1")
    with serve(*args, log_dir=tmp_path, env={"HOME": str(home)}) as s:
        deadline = time.monotonic() + 30
        while metric(s.http, "concert_rounds_total") < 3 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert metric(s.http, "concert_rounds_total") >= 3
        assert metric(s.http, "concert_speakers_played_frames_total") > 24000  # the card really played audio
        assert metric(s.http, "concert_recorder_dropped_chunks_total") == 0
        assert metric(s.http, "concert_recorder_archive_errors_total") == 0  # exported (no hour closed yet)
        os.kill(s.proc.pid, signal.SIGKILL)  # a crash: nothing gets to finalise
        s.proc.wait(10)
    (set_dir,) = rec.iterdir()
    lines = (set_dir / "setlist.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    rounds = [e for e in events if e["event"] == "round"]
    assert len(rounds) >= 3
    for e in rounds:
        assert {"t", "wall", "kind", "winner", "votes", "prompt", "lands_at_bar"} <= set(e)
    info = sf.info(str(set_dir / "audio-0000.w64"))
    assert info.samplerate == 24000
    assert info.duration >= rounds[-1]["t"] - 1.0  # the audio kept up with the setlist
    pcm, _ = sf.read(str(set_dir / "audio-0000.w64"), dtype="float32")
    assert abs(pcm).max() > 0.05  # music, not silence


def test_speakers_without_a_device_fail_fast_with_a_hint(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()  # no .asoundrc: this machine has no sound card
    proc = subprocess.run(
        # no sound card here, and on a machine with one the device name does not exist
        [sys.executable, "-m", "concert", "serve", "--output", "speakers", "--device", "no-such-device-42"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOME": str(home)},
    )
    assert proc.returncode == 2
    assert "--output none" in proc.stderr
    assert "Traceback" not in proc.stderr
