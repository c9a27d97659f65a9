"""`concert serve --backend musicgen --model DIR` over a tiny random checkpoint: healthy, and audio on /stream."""

from __future__ import annotations

import io
import json
import time
import urllib.request
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from concert.config import ServeConfig
from tests.support.server import serve
from tests.support.tiny_musicgen import save_tiny_musicgen

pytestmark = pytest.mark.slow

OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def test_serve_musicgen_from_a_local_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in OFFLINE.items():
        monkeypatch.setenv(name, value)
    model = save_tiny_musicgen(tmp_path / "tiny-musicgen")
    with serve("--backend", "musicgen", "--model", str(model), "--style", "techno", log_dir=tmp_path, env=OFFLINE) as s:
        with urllib.request.urlopen(f"{s.http}/healthz", timeout=10) as r:
            health = json.loads(r.read())
        assert r.status == 200 and health["backend"] == "musicgen" and health["primary_error"] is None
        audio = bytearray()
        with httpx.stream("GET", f"{s.http}/stream", timeout=30) as r:
            assert r.headers["content-type"].startswith("audio/mpeg")
            deadline = time.monotonic() + 20
            for piece in r.iter_bytes():
                audio += piece
                if len(audio) > 24_000 or time.monotonic() > deadline:
                    break
        with urllib.request.urlopen(f"{s.http}/metrics", timeout=10) as r:
            text = r.read().decode()
    assert "Traceback" not in s.output()
    played = next(float(x.split()[1]) for x in text.splitlines() if x.startswith("concert_primary_seconds_total"))
    assert played > 0.5  # MusicGen's own audio reached the stream, not only the synth covering for it
    pcm, sr = sf.read(io.BytesIO(bytes(audio)), dtype="float32")
    assert sr > 0 and len(pcm) > sr // 2 and np.isfinite(pcm).all()


def test_serve_musicgen_without_a_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="model_path"):
        with serve("--backend", "musicgen", log_dir=tmp_path, env=OFFLINE, timeout=30):
            pass


def test_serve_config_requires_a_model_for_musicgen(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="model_path"):
        ServeConfig(backend="musicgen")
    assert ServeConfig(backend="musicgen", model_path=tmp_path).model_path == tmp_path
