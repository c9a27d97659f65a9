"""The codec trainer on a tiny corpus: it learns, its export is faithful, decoder-only keeps the tokens, resume."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from engine.codec.model import Codec, CodecConfig
from engine.train.codec_train import CodecJob, CodecTrainConfig, TrainableCodec, training_init
from engine.train.corpus import Corpus
from engine.train.loop import RunConfig, run

TINY = CodecConfig(num_filters=4, hidden_size=16, codebook_size=64, num_codebooks=2)
TRAIN = CodecTrainConfig(codec=TINY, batch=2, seconds=0.5, holdout_clips=1, holdout_seconds=0.5)
STEPS = 30


@pytest.fixture(scope="module")
def trained(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> tuple[CodecJob, list[float]]:
    """A tiny CodecJob after STEPS steps, and its losses (read-only for the tests that share it)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    job = CodecJob(corpus, TRAIN, tmp_path_factory.mktemp("codec") / "export")
    losses = [job.step(i)["loss"] for i in range(STEPS)]
    return job, losses


def _clips(corpus: Corpus, n: int = 3) -> torch.Tensor:
    return torch.from_numpy(corpus.crops("holdout", np.random.default_rng(11), n, 12000))  # (n, 12000) 25 frames


@torch.no_grad()
def _own_codes(model: TrainableCodec, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The trainable model's own RVQ codes (B, K, F) and the decoder's audio of its quantized latents (B, T)."""
    was = model.training
    model.eval()
    try:
        z = model.model.encoder(wav[:, None])  # (B, D, F)
        q, codes, _ = model.rvq(z.transpose(1, 2))  # (B, F, D), (B, F, K)
        audio = model.model.decoder(q.transpose(1, 2))[:, 0]  # (B, F * hop)
    finally:
        model.train(was)
    return codes.transpose(1, 2), audio


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# --- learning -----------------------------------------------------------------------------------------------------


def test_the_loss_falls(trained: tuple[CodecJob, list[float]]) -> None:
    _, losses = trained
    assert all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-5:]) < 0.85 * np.mean(losses[:5])


def test_step_reports_its_loss_parts(corpus: Corpus, tmp_path: Path) -> None:
    job = CodecJob(corpus, TRAIN, tmp_path / "export")
    out = job.step(0)
    assert set(out) == {"loss", "stft", "wave_l1", "log_mel", "commit"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in out.values())
    assert out["log_mel"] > 0
    expected = (
        TRAIN.stft_weight * out["stft"]
        + TRAIN.wave_weight * out["wave_l1"]
        + TRAIN.mel_weight * out["log_mel"]
        + out["commit"]
    )
    assert out["loss"] == pytest.approx(expected, rel=1e-5)


def test_evaluate_gives_finite_held_out_figures(trained: tuple[CodecJob, list[float]]) -> None:
    job, _ = trained
    before = _state(job.model)
    figures = job.evaluate()
    assert set(figures) == {"holdout_si_snr_db", "holdout_mel_distance", "codebook_usage"}
    assert all(math.isfinite(v) for v in figures.values())
    assert figures["holdout_mel_distance"] >= 0
    assert 0 < figures["codebook_usage"] <= 1
    assert job.evaluate() == figures  # fixed held-out clips, no training
    for name, tensor in _state(job.model).items():
        assert torch.equal(tensor, before[name]), name  # evaluation leaves the model alone


def test_forward_shapes(corpus: Corpus) -> None:
    model = TrainableCodec(TINY)
    wav = _clips(corpus, 2)
    y, codes, commit = model(wav)
    assert y.shape == wav.shape and codes.shape == (2, 2, 25) and commit.shape == ()
    assert codes.dtype == torch.long and 0 <= int(codes.min()) and int(codes.max()) < TINY.codebook_size


# --- export -------------------------------------------------------------------------------------------------------


def test_export_encodes_to_the_models_own_codes(trained: tuple[CodecJob, list[float]], corpus: Corpus) -> None:
    job, _ = trained
    codec = job.model.export()
    assert isinstance(codec, Codec)
    assert (codec.num_codebooks, codec.codebook_size, codec.hop_length) == (2, 64, 480)
    wav = _clips(corpus)
    own, audio = _own_codes(job.model, wav)
    exported = codec.encode(wav)
    assert exported.shape == own.shape == (3, 2, 25)
    assert torch.equal(exported, own)
    assert len(torch.unique(own[:, 0])) > 1  # many codes, not one collapsed vector
    torch.testing.assert_close(codec.decode(exported), audio, rtol=1e-4, atol=1e-5)


def test_export_is_a_copy(trained: tuple[CodecJob, list[float]]) -> None:
    job, _ = trained
    codec = job.model.export()
    books = job.model.codebooks()
    assert books.shape == (2, 64, 16)
    for k, layer in enumerate(codec.model.quantizer.layers):
        torch.testing.assert_close(layer.codebook.embed, books[k].float(), rtol=0, atol=0)
    with torch.no_grad():
        codec.model.quantizer.layers[0].codebook.embed.add_(1.0)
    assert torch.equal(job.model.codebooks(), books)  # the trainable model is untouched


def test_from_codec_round_trip(trained: tuple[CodecJob, list[float]], corpus: Corpus) -> None:
    job, _ = trained
    codec = job.model.export()
    again = TrainableCodec.from_codec(codec)
    wav = _clips(corpus)
    codes, audio = _own_codes(again, wav)
    assert torch.equal(codes, codec.encode(wav))
    torch.testing.assert_close(audio, codec.decode(codes), rtol=1e-4, atol=1e-5)
    assert torch.equal(again.codebooks(), job.model.codebooks())
    assert torch.equal(again.export().encode(wav), codec.encode(wav))


def test_snapshot_writes_a_loadable_codec(trained: tuple[CodecJob, list[float]], corpus: Corpus) -> None:
    job, _ = trained
    job.snapshot(STEPS, 0.01)
    loaded = Codec.from_pretrained(job.out_dir)
    wav = _clips(corpus)
    assert torch.equal(loaded.encode(wav), job.model.export().encode(wav))


# --- decoder-only -------------------------------------------------------------------------------------------------


def test_decoder_only_keeps_encoder_and_codebooks(
    trained: tuple[CodecJob, list[float]], corpus: Corpus, tmp_path: Path
) -> None:
    start = trained[0].model.export()
    config = CodecTrainConfig(codec=TINY, batch=2, seconds=0.5, holdout_clips=1, holdout_seconds=0.5, decoder_only=True)
    job = CodecJob(corpus, config, tmp_path / "export", init=start)
    encoder, rvq, decoder = _state(job.model.model.encoder), _state(job.model.rvq), _state(job.model.model.decoder)
    for i in range(5):
        job.step(i)
    for name, tensor in _state(job.model.model.encoder).items():
        assert torch.equal(tensor, encoder[name]), name
    for name, tensor in _state(job.model.rvq).items():
        assert torch.equal(tensor, rvq[name]), name  # codebooks, EMA counts and all
    changed = [n for n, t in _state(job.model.model.decoder).items() if not torch.equal(t, decoder[n])]
    assert changed, "decoder-only training did not train the decoder"
    wav = _clips(corpus)
    assert torch.equal(job.model.export().encode(wav), start.encode(wav))  # the tokens stay valid


def test_decoder_only_from_scratch_keeps_encoder_and_codebooks(corpus: Corpus, tmp_path: Path) -> None:
    config = CodecTrainConfig(codec=TINY, batch=2, seconds=0.5, holdout_clips=1, holdout_seconds=0.5, decoder_only=True)
    job = CodecJob(corpus, config, tmp_path / "export")
    encoder, rvq, decoder = _state(job.model.model.encoder), _state(job.model.rvq), _state(job.model.model.decoder)
    for i in range(3):
        job.step(i)
    assert all(torch.equal(t, encoder[n]) for n, t in _state(job.model.model.encoder).items())
    assert all(torch.equal(t, rvq[n]) for n, t in _state(job.model.rvq).items())
    assert any(not torch.equal(t, decoder[n]) for n, t in _state(job.model.model.decoder).items())


def test_full_training_moves_encoder_and_codebooks(corpus: Corpus, tmp_path: Path) -> None:
    """The control for the decoder-only tests: without the flag both do change."""
    job = CodecJob(corpus, TRAIN, tmp_path / "export")
    encoder, books = _state(job.model.model.encoder), job.model.codebooks().clone()
    for i in range(3):
        job.step(i)
    assert any(not torch.equal(t, encoder[n]) for n, t in _state(job.model.model.encoder).items())
    assert not torch.equal(job.model.codebooks(), books)


def test_a_full_checkpoint_loads_into_a_decoder_only_job(corpus: Corpus, tmp_path: Path) -> None:
    full = CodecJob(corpus, TRAIN, tmp_path / "a")
    full.step(0)
    config = CodecTrainConfig(codec=TINY, batch=2, seconds=0.5, holdout_clips=1, holdout_seconds=0.5, decoder_only=True)
    dec = CodecJob(corpus, config, tmp_path / "b")
    dec.load_state_dict(full.state_dict())  # the optimizer starts afresh for the decoder's parameters
    for name, tensor in full.model.state_dict().items():
        assert torch.equal(tensor, dec.model.state_dict()[name]), name
    assert math.isfinite(dec.step(1)["loss"])


# --- resume and init ----------------------------------------------------------------------------------------------


def test_resume_through_the_loop_gives_the_same_weights(corpus: Corpus, tmp_path: Path) -> None:
    def config(run_dir: Path, steps: int) -> RunConfig:
        return RunConfig(run_dir=run_dir, max_steps=steps, log_every=1, eval_every=100, progress=False)

    torch.manual_seed(0)  # the init depends on the seed alone (see the next test): any ambient RNG state will do
    whole = CodecJob(corpus, TRAIN, tmp_path / "w-export")
    run(whole, "codec", config(tmp_path / "whole", 4), seed=3)
    torch.manual_seed(1)
    run(CodecJob(corpus, TRAIN, tmp_path / "s-export"), "codec", config(tmp_path / "split", 2), seed=3)
    torch.manual_seed(2)
    resumed = CodecJob(corpus, TRAIN, tmp_path / "s-export")
    result = run(resumed, "codec", config(tmp_path / "split", 4), seed=3)
    assert result.resumed_from == 2 and result.step == 4
    for name, tensor in whole.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    assert Codec.from_pretrained(tmp_path / "s-export").num_codebooks == 2  # the snapshot of each checkpoint


def test_the_codebook_init_depends_only_on_the_seed(corpus: Corpus, tmp_path: Path) -> None:
    torch.manual_seed(1)
    a = CodecJob(corpus, TRAIN, tmp_path / "a")
    torch.manual_seed(2)
    b = CodecJob(corpus, TRAIN, tmp_path / "b")
    assert torch.equal(a.model.codebooks(), b.model.codebooks())


def test_training_init_is_variance_preserving_and_seeded() -> None:
    a, b, c = TrainableCodec(TINY).model, TrainableCodec(TINY).model, TrainableCodec(TINY).model
    training_init(c, seed=1)
    convs = [m for m in a.modules() if isinstance(m, nn.Conv1d | nn.ConvTranspose1d)]
    assert convs
    for m in convs:
        w = m.weight.detach()
        fan_in = w.shape[1] * w.shape[2] if isinstance(m, nn.Conv1d) else max(1, w.shape[0] * w.shape[2] // m.stride[0])
        if w.numel() >= 64:  # enough weights for the spread to mean something
            assert float(w.std()) == pytest.approx(1 / math.sqrt(fan_in), rel=0.35)
        if m.bias is not None:
            assert not m.bias.detach().any()
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name  # same seed, same weights
    assert any(not torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values(), strict=True))
