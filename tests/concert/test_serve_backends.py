"""`concert serve --backend embedded`: the token engine through the same live path, the synth standing by."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.support.server import serve

pytestmark = pytest.mark.slow


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        return bytes(r.read())


def metrics(url: str) -> dict[str, float]:
    out = {}
    for line in get(f"{url}/metrics").decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_embedded_backend_plays_the_live_set_without_dead_air(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    args = ("--backend", "embedded", "--record", str(rec), "--round-bars", "1", "--song-phrases", "1")
    with serve(*args, log_dir=tmp_path, timeout=180) as s:
        health = json.loads(get(f"{s.http}/healthz"))
        assert health["backend"] == "embedded" and health["primary_error"] is None
        assert health["status"] in ("ok", "degraded") and health["ok"] == (health["status"] == "ok")
        assert health["playing"] in ("primary", "to_fallback", "fallback", "to_primary")
        deadline = time.monotonic() + 60
        while metrics(s.http)["concert_rounds_total"] < 3 and time.monotonic() < deadline:
            time.sleep(0.5)
        m = metrics(s.http)
    assert m["concert_rounds_total"] >= 3  # the conductor's bar clock runs on the engine's (or failover's) bars
    for name in ("concert_fallback_handovers_total", "concert_fallback_seconds_total", "concert_fallback_active"):
        assert name in m
    assert m["concert_engine_rtf"] > 0
    assert m["concert_primary_failed"] == 0
    assert m["concert_primary_seconds_total"] > 2.0  # the token engine itself played, not only the synth
    assert "concert_underruns_total" in m
    (set_dir,) = rec.iterdir()
    pcm, sr = sf.read(str(set_dir / "audio-0000.flac"), dtype="float32")  # a clean stop archives the hour
    assert sr == 24000 and len(pcm) > 4 * sr
    win = sr // 2
    rms = np.sqrt((pcm[: len(pcm) // win * win].reshape(-1, win) ** 2).mean(axis=1))  # (windows,)
    assert rms.min() > 1e-4, f"dead air: half-second RMS {rms.min():.2g}"
