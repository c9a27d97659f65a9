"""`concert render`: an offline set from a steering script, through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from concert.config import ServeConfig
from engine.synth.analysis import estimate_bpm, spectral_centroid


def render(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "concert", "render", *args], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )


def test_script_steers_tempo_and_timbre_on_the_bar(tmp_path: Path) -> None:
    script = tmp_path / "steer.json"
    script.write_text(json.dumps([{"at": 8.0, "prompt": [{"style": "drum-and-bass", "weight": 1}], "energy": 0.9}]))
    out = tmp_path / "set.flac"
    proc = render(tmp_path, "--style", "house", "--seconds", "24", "--out", str(out), "--script", str(script))
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    (event,) = info["events"]
    assert event["at"] == 8.0 and event["bar"] == 5  # 124 bpm: bars of 1.935 s, bar 5 starts at 9.7 s
    pcm, sr = sf.read(str(out), dtype="float32")
    assert len(pcm) == 24 * sr
    before = estimate_bpm(pcm[: 8 * sr], sr, lo=90, hi=170)
    after = estimate_bpm(pcm[-6 * sr :], sr, lo=125, hi=240)
    assert abs(before - 124) < 4, before
    assert abs(after - 174) < 6, after
    assert np.abs(pcm).max() <= 1.0


def test_same_seed_same_set_and_free_text_styles(tmp_path: Path) -> None:
    outs = []
    for name, seed in (("a.wav", "3"), ("b.wav", "3"), ("c.wav", "4")):
        proc = render(tmp_path, "--style", "dark warehouse techno", "--seconds", "6", "--out", name, "--seed", seed)
        assert proc.returncode == 0, proc.stderr
        outs.append(sf.read(str(tmp_path / name), dtype="float32")[0])
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], outs[2])
    bright = render(tmp_path, "--style", "bright sunny techno", "--seconds", "6", "--out", "d.wav", "--seed", "3")
    assert bright.returncode == 0
    assert spectral_centroid(sf.read(str(tmp_path / "d.wav"))[0], 24000) > spectral_centroid(outs[0], 24000)


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("{}", "must be a JSON list"),
        ("[1]", "event 0 must be an object"),
        ('[{"at": -1, "prompt": [{"style": "house"}]}]', "'at' must be seconds"),
        ('[{"at": 1, "prompt": [{"style": "polka", "weight": 1}]}]', "polka"),
        ('[{"at": 1, "prompt": [{"style": "house", "weight": NaN}]}]', "finite"),
        ('[{"at": 1, "prompt": [{"style": "house", "weight": 0}]}]', "all zero"),
        ('[{"at": 1, "prompt": [{"style": "house"}], "bpm": 900}]', "bpm"),
        ('[{"at": 1, "prompt": [{"style": "techno like Aphex Twin"}]}]', "refused"),
        ('[{"at": 1, "prompt": [], "tempo": 3}]', "unknown fields"),
        ("not json", "not valid JSON"),
    ],
)
def test_bad_scripts_are_refused_with_the_value_named(tmp_path: Path, script: str, message: str) -> None:
    path = tmp_path / "s.json"
    path.write_text(script)
    proc = render(tmp_path, "--seconds", "2", "--out", "x.wav", "--script", str(path))
    assert proc.returncode == 2
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x.wav").exists()


def test_bad_arguments(tmp_path: Path) -> None:
    assert "must end in" in render(tmp_path, "--seconds", "2", "--out", "x.txt").stderr
    assert "seconds" in render(tmp_path, "--seconds", "-1", "--out", "x.wav").stderr
    assert "refused" in render(tmp_path, "--style", "Taylor Swift", "--seconds", "2", "--out", "x.wav").stderr


def test_embedded_renders_at_each_precision_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    for precision in ("int8", "float32"):
        out = tmp_path / f"{precision}.wav"
        proc = render(tmp_path, "--backend", "embedded", "--precision", precision, "--seconds", "1", "--out", str(out))
        assert proc.returncode == 0, proc.stderr
        audio, rate = sf.read(out)
        assert rate == 24000 and len(audio) >= rate and np.isfinite(audio).all() and np.abs(audio).max() > 0
    proc = render(tmp_path, "--backend", "embedded", "--precision", "fp8", "--seconds", "1", "--out", "x.wav")
    assert proc.returncode == 2 and "fp8" in proc.stderr


def test_serve_config_names_a_bad_precision() -> None:
    with pytest.raises(ValueError, match="'fp8'"):
        ServeConfig(precision="fp8")


def test_the_bars_figure_counts_bars_not_chunks(tmp_path: Path) -> None:
    proc = render(tmp_path, "--style", "house", "--seconds", "10", "--out", "h.wav")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["bars"] == 6  # 124 bpm: bars of 1.935 s start at 0, 1.9, 3.9, 5.8, 7.7 and 9.7 s
