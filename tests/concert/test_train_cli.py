"""`concert corpus`, `concert train codec|lm`, `concert export` and `concert eval` end to end, through the real CLI.

CI never trains for real: a tiny corpus, a few steps of the real embedded-size codec and token model, then the
exported weights play through `concert render --backend embedded --model …` and `concert eval`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.codec.model import CodecConfig
from engine.embedded.weights import LM_FILE, WeightsError, load_embedded
from engine.train.corpus import CorpusConfig, build_corpus

pytestmark = pytest.mark.slow
TINY = CorpusConfig(train_hours=36 / 3600, piece_seconds=12.0, holdout_pieces=2)  # 3 train + 2 held-out pieces


def concert(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    return subprocess.run(
        [sys.executable, "-m", "concert", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home folder with a tiny corpus, 4 codec steps, 3 token-model steps and an exported weights folder."""
    home = tmp_path_factory.mktemp("home")
    build_corpus(home / "corpus" / "seed0", TINY, progress=False)
    codec = concert("train", "codec", "--home", str(home), "--steps", "4", "--scratch", "--no-progress")
    assert codec.returncode == 0, codec.stderr[-3000:]
    lm = concert("train", "lm", "--home", str(home), "--steps", "3", "--scratch", "--no-progress")
    assert lm.returncode == 0, lm.stderr[-3000:]
    out = concert("export", "--home", str(home), "--out", str(home / "weights"))
    assert out.returncode == 0, out.stderr[-3000:]
    return home


def test_training_runs_resume_and_report(trained: Path) -> None:
    log = (trained / "runs" / "codec" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,hours,") and "holdout_si_snr_db" in log[0]
    assert (trained / "runs" / "codec" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = concert("train", "codec", "--home", str(trained), "--steps", "5", "--scratch", "--no-progress")
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert summary["resumed_from"] == 4 and summary["step"] == 5
    assert np.isfinite(summary["holdout_mel_distance"])


def test_a_run_from_exported_weights_counts_their_training_on(trained: Path, tmp_path: Path) -> None:
    """On a fresh machine training resumes from the committed snapshot: its steps and hours carry on."""
    from engine.embedded.weights import TRAINING_FILE, trained_for
    from engine.train.codec_train import CodecTrainConfig
    from engine.train.commands import Paths, train_codec, train_lm
    from engine.train.lm_train import LMTrainConfig
    from engine.train.loop import RunConfig

    weights = trained / "weights"
    codec_before, lm_before = trained_for(weights, "codec"), trained_for(weights, "lm")
    assert (codec_before.steps, lm_before.steps) == (4, 3) and codec_before.hours > 0 and lm_before.hours > 0
    home = tmp_path / "home"
    (home / "corpus").mkdir(parents=True)
    (home / "corpus" / "seed0").symlink_to(trained / "corpus" / "seed0")
    paths = Paths(home)
    run = RunConfig(run_dir=home, max_steps=codec_before.steps + 1, progress=False)
    codec = train_codec(paths, CodecTrainConfig(holdout_clips=1, holdout_seconds=1.0, decoder_only=True), run, weights)
    assert (codec.resumed_from, codec.step) == (4, 5) and codec.hours > codec_before.hours
    run = replace(run, max_steps=lm_before.steps + 1)
    lm = train_lm(paths, LMTrainConfig(batch=2, seq_len=100, holdout_batches=1), run, weights)
    assert (lm.resumed_from, lm.step) == (3, 4) and lm.hours > lm_before.hours
    (weights.parent / "broken").mkdir()
    (weights.parent / "broken" / TRAINING_FILE).write_text('{"codec": {"steps": "many"}}')
    with pytest.raises(WeightsError, match=str(weights.parent / "broken" / TRAINING_FILE)):
        trained_for(weights.parent / "broken", "codec")


def test_a_fresh_machine_that_trained_only_the_lm_exports_with_the_snapshots_codec(
    trained: Path, tmp_path: Path
) -> None:
    """No codec run here: `export` takes the codec, its steps, hours and held-out figures from the snapshot (and
    the token model from it where only the codec trained on)."""
    from engine.embedded.weights import CODEC_DIR, SHIPPED, load_codec, trained_for
    from engine.train.commands import Paths, export, train_lm
    from engine.train.lm_train import LMTrainConfig
    from engine.train.loop import RunConfig
    from engine.train.tokens import codec_fingerprint

    weights = trained / "weights"
    codec_before = trained_for(weights, "codec")
    assert codec_before.held_out and "holdout_si_snr_db" in codec_before.held_out
    home = tmp_path / "home"
    (home / "corpus").mkdir(parents=True)
    (home / "corpus" / "seed0").symlink_to(trained / "corpus" / "seed0")
    paths = Paths(home)
    run = RunConfig(run_dir=home, max_steps=trained_for(weights, "lm").steps + 1, progress=False)
    train_lm(paths, LMTrainConfig(batch=2, seq_len=100, holdout_batches=1), run, weights)
    with pytest.raises(FileNotFoundError, match="no codec run"):
        export(paths, tmp_path / "nowhere")
    with pytest.raises(ValueError, match=f"{paths.lm_export} was trained on tokens of another codec than {SHIPPED}"):
        export(paths, tmp_path / "mismatch", shipped=SHIPPED)  # the package's codec is not the tiny one
    assert not (tmp_path / "mismatch").exists()
    summary = export(paths, tmp_path / "out", shipped=weights)
    assert summary["codec_steps"] == codec_before.steps and summary["lm_steps"] == 4
    assert trained_for(tmp_path / "out", "codec") == codec_before
    shipped_codec, out_codec = load_codec(weights / CODEC_DIR), load_codec(tmp_path / "out" / CODEC_DIR)
    assert codec_fingerprint(out_codec) == codec_fingerprint(shipped_codec)
    card = (tmp_path / "out" / "MODEL_CARD.md").read_text()
    assert f"holdout_si_snr_db {codec_before.held_out['holdout_si_snr_db']:.3g}" in card

    # and the other way round: only the codec's decoder trained on here, the token model is the snapshot's
    from engine.train.codec_train import CodecTrainConfig
    from engine.train.commands import train_codec

    lm_before = trained_for(weights, "lm")
    home2 = tmp_path / "home2"
    (home2 / "corpus").mkdir(parents=True)
    (home2 / "corpus" / "seed0").symlink_to(trained / "corpus" / "seed0")
    paths2 = Paths(home2)
    run = RunConfig(run_dir=home2, max_steps=codec_before.steps + 1, progress=False)
    train_codec(paths2, CodecTrainConfig(holdout_clips=1, holdout_seconds=1.0, decoder_only=True), run, weights)
    with pytest.raises(FileNotFoundError, match="no lm run"):
        export(paths2, tmp_path / "nowhere")
    summary = export(paths2, tmp_path / "out2", shipped=weights)
    assert summary["codec_steps"] == codec_before.steps + 1 and trained_for(tmp_path / "out2", "lm") == lm_before


def test_exported_weights_play_through_render(trained: Path, tmp_path: Path) -> None:
    weights = trained / "weights"
    card = (weights / "MODEL_CARD.md").read_text()
    assert "| codec" in card and "| token LM" in card
    lm, codec = load_embedded(weights)
    assert lm.config.num_codebooks == codec.num_codebooks == CodecConfig().num_codebooks  # the embedded shape
    assert lm.config.card == codec.codebook_size == CodecConfig().codebook_size
    assert f"{codec.num_codebooks} x {codec.codebook_size} at 50 Hz" in card
    wav = tmp_path / "set.wav"
    proc = concert(
        "render",
        "--style",
        "techno",
        "--seconds",
        "3",
        "--out",
        str(wav),
        "--backend",
        "embedded",
        "--model",
        str(weights),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    pcm, sr = sf.read(str(wav), dtype="float32")
    assert sr == codec.sample_rate and len(pcm) == 3 * sr and np.all(np.isfinite(pcm))


def test_a_corrupt_weights_file_is_refused_by_name(trained: Path, tmp_path: Path) -> None:
    broken = tmp_path / "weights"
    subprocess.run(["cp", "-r", str(trained / "weights"), str(broken)], check=True)
    data = (broken / LM_FILE).read_bytes()
    (broken / LM_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=str(broken / LM_FILE)):
        load_embedded(broken)
    proc = concert(
        "render",
        "--style",
        "house",
        "--seconds",
        "2",
        "--out",
        str(tmp_path / "x.wav"),
        "--backend",
        "embedded",
        "--model",
        str(broken),
    )
    assert proc.returncode == 2 and str(broken / LM_FILE) in proc.stderr


def test_eval_reports_every_figure(trained: Path, tmp_path: Path) -> None:
    from engine.train.corpus import Corpus
    from engine.train.evaluate import EvalConfig, evaluate

    config = EvalConfig(
        window_s=4.0,
        latency_window_s=3.0,
        classifier_windows=24,
        codec_clips=2,
        clip_s=4.0,
        segment_bars=4,
        set_seconds=24.0,
        png_seconds=12.0,
        threads=1,
    )
    result = evaluate(trained / "weights", Corpus(trained / "corpus" / "seed0"), config, tmp_path)
    for key in (
        "classifier_holdout_accuracy",
        "style_accuracy",
        "codec_style_agreement",
        "mp3_8kbps_style_agreement",
        "clean_style_agreement",
        "collapse",
    ):
        assert 0.0 <= float(result[key]) <= 1.0, (key, result[key])
    for key in ("tempo_mae_bpm", "codec_mel_distance", "mp3_8kbps_mel_distance", "rtf", "synth_tempo_mae_bpm"):
        assert float(result[key]) >= 0.0, (key, result[key])
    assert np.isfinite(float(result["codec_si_snr_db"]))
    assert result["set_seconds"] == 24.0 and int(result["segments"]) >= 1
    assert 0.0 <= float(result["synth_style_accuracy"]) <= 1.0  # 3 tiny pieces cannot teach all 8 genres
    for png in ("set_3min_embedded.png", "set_3min_synth.png", "codec_before_after.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    pcm, sr = sf.read(str(tmp_path / "set_3min.wav"), dtype="float32")
    assert len(pcm) == 12 * sr
