"""Tokenising the corpus and training the token model on it: files, the delay pattern, conditioning, learning."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.codec.model import Codec, CodecConfig
from engine.embedded.weights import LM_FORMAT, lm_metadata, load_lm
from engine.generate.conditioning import NUM_CONTROLS, control_matrix, frame_controls
from engine.lm.model import LMConfig, TokenLM
from engine.lm.patterns import build_delay_pattern
from engine.music.styles import GENRES
from engine.train.corpus import SPLITS, Corpus, CorpusError
from engine.train.lm_train import LMJob, LMTrainConfig, SequenceSampler, sequence_loss
from engine.train.loop import RunConfig, run
from engine.train.tokens import MANIFEST, TokenPiece, TokenSet, codec_fingerprint, tokenize_corpus

TINY_CODEC = CodecConfig(num_filters=4, hidden_size=16, codebook_size=64, num_codebooks=2)
K, CARD, T = 2, 64, 40
TINY_LM = LMConfig(
    num_codebooks=K,
    card=CARD,
    dim=32,
    num_layers=1,
    num_heads=2,
    ffn_dim=64,
    max_len=200,
    num_styles=len(GENRES),
    num_controls=NUM_CONTROLS,
)
TRAIN = LMTrainConfig(batch=2, seq_len=T, holdout_batches=1, warmup_steps=1)


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec.random(TINY_CODEC, seed=0)


@pytest.fixture(scope="module")
def token_dir(corpus: Corpus, codec: Codec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("tokens") / "t"
    tokenize_corpus(corpus, codec, folder, progress=False)
    return folder


@pytest.fixture(scope="module")
def tokens(token_dir: Path) -> TokenSet:
    return TokenSet(token_dir)


def _stamps(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.glob("*.npz")}


# --- tokens -------------------------------------------------------------------------------------------------------


def test_token_set_matches_the_corpus(tokens: TokenSet, corpus: Corpus, codec: Codec) -> None:
    assert tokens.codec == codec_fingerprint(codec)
    assert {split: len(tokens.pieces[split]) for split in SPLITS} == {"train": 2, "holdout": 1}
    for split in SPLITS:
        for name, piece in zip(corpus.names[split], tokens.pieces[split], strict=True):
            labels = corpus.labels(name)
            assert piece.codes.shape == (K, labels.frames) and piece.codes.dtype == np.int64
            assert 0 <= piece.codes.min() and piece.codes.max() < CARD
            whole = codec.encode(torch.from_numpy(corpus.float_audio(name))[None])[0].numpy()  # (K, F)
            np.testing.assert_array_equal(piece.codes, whole[:, : labels.frames])
            np.testing.assert_allclose(piece.weights, labels.weights, atol=1e-3)  # stored as float16
            controls = control_matrix(labels.bpm, labels.energy, labels.brightness, labels.minor, labels.section)
            assert piece.controls.shape == controls.shape and piece.controls.dtype == np.float32
            np.testing.assert_allclose(piece.controls, controls, rtol=2e-3, atol=1e-3)
            np.testing.assert_array_equal(piece.bar, labels.bar)
    assert len(np.unique(tokens.pieces["train"][0].codes[0])) > 8  # the random codec uses many codes


def test_manifest_names_the_codec_the_corpus_and_the_pieces(token_dir: Path, corpus: Corpus, codec: Codec) -> None:
    raw = json.loads((token_dir / MANIFEST).read_text())
    assert raw == {
        "codec": codec_fingerprint(codec),
        "corpus": asdict(corpus.config),
        "complete": True,
        "pieces": corpus.names,
    }
    assert {p.name for p in token_dir.iterdir()} == {MANIFEST} | {f"{n}.npz" for n in corpus}  # no temp files


def test_fingerprint_follows_the_weights(codec: Codec) -> None:
    assert codec_fingerprint(codec) == codec_fingerprint(Codec.random(TINY_CODEC, seed=0))
    assert codec_fingerprint(codec) != codec_fingerprint(Codec.random(TINY_CODEC, seed=1))
    assert len(codec_fingerprint(codec)) == 16


def test_fingerprint_ignores_the_decoder_and_follows_the_encoder() -> None:
    """Decoder-only training keeps the tokens valid; anything that changes the codes changes the fingerprint."""
    a, b = Codec.random(TINY_CODEC, seed=0), Codec.random(TINY_CODEC, seed=0)
    with torch.no_grad():
        for p in b.model.decoder.parameters():
            p.add_(0.1)
    assert codec_fingerprint(a) == codec_fingerprint(b)
    with torch.no_grad():
        next(iter(b.model.encoder.parameters())).add_(0.1)
    assert codec_fingerprint(a) != codec_fingerprint(b)


def test_tokenizing_again_keeps_the_files(tmp_path: Path, token_dir: Path, corpus: Corpus, codec: Codec) -> None:
    folder = tmp_path / "t"
    shutil.copytree(token_dir, folder)
    before = _stamps(folder)
    tokenize_corpus(corpus, codec, folder, progress=False)
    assert _stamps(folder) == before


def test_a_stopped_tokenization_resumes(tmp_path: Path, token_dir: Path, corpus: Corpus, codec: Codec) -> None:
    folder = tmp_path / "t"
    shutil.copytree(token_dir, folder)
    victim = folder / "train-00001.npz"
    victim.unlink()
    raw = json.loads((folder / MANIFEST).read_text())
    (folder / MANIFEST).write_text(json.dumps({**raw, "complete": False}))
    with pytest.raises(CorpusError, match="unfinished"):
        TokenSet(folder)
    kept = _stamps(folder)
    again = tokenize_corpus(corpus, codec, folder, progress=False)
    assert {k: v for k, v in _stamps(folder).items() if k != victim.name} == kept
    with np.load(victim) as new, np.load(token_dir / victim.name) as old:
        for key in ("codes", "weights", "controls", "bar"):
            np.testing.assert_array_equal(new[key], old[key])
    assert again.codec == codec_fingerprint(codec)


def test_another_codec_into_the_same_folder_is_refused(tmp_path: Path, token_dir: Path, corpus: Corpus) -> None:
    folder = tmp_path / "t"
    shutil.copytree(token_dir, folder)
    with pytest.raises(CorpusError, match=str(folder)) as info:
        tokenize_corpus(corpus, Codec.random(TINY_CODEC, seed=1), folder, progress=False)
    assert "another codec" in str(info.value)


def test_tokens_of_another_corpus_are_refused_and_kept_apart(tmp_path: Path, token_dir: Path, corpus: Corpus) -> None:
    """A corpus rebuilt with another config must not resume from the old corpus' tokens (they are a cache of it)."""
    from engine.train.commands import Paths

    folder = tmp_path / "t"
    shutil.copytree(token_dir, folder)
    raw = json.loads((folder / MANIFEST).read_text())
    assert raw["corpus"] == asdict(corpus.config)
    (folder / MANIFEST).write_text(json.dumps({**raw, "corpus": {**raw["corpus"], "mode_flip": 0.0}}))
    with pytest.raises(CorpusError, match=f"{folder} holds tokens of another corpus"):
        tokenize_corpus(corpus, Codec.random(TINY_CODEC, seed=0), folder, progress=False)
    paths, fp = Paths(tmp_path), raw["codec"]
    assert paths.tokens(fp, corpus.config) != paths.tokens(fp, replace(corpus.config, mode_flip=0.0))


def test_a_codec_with_another_frame_rate_is_refused(tmp_path: Path, corpus: Corpus) -> None:
    other = Codec.random(replace(TINY_CODEC, upsampling_ratios=(8, 5, 4, 2)), seed=0)  # hop 320: 75 Hz
    assert other.hop_length != corpus.config.hop_length
    with pytest.raises((CorpusError, ValueError)):
        tokenize_corpus(corpus, other, tmp_path / "t", progress=False)


def test_token_set_errors_name_the_file(tmp_path: Path, token_dir: Path) -> None:
    with pytest.raises(CorpusError, match=str(tmp_path / MANIFEST)):
        TokenSet(tmp_path)
    folder = tmp_path / "t"
    shutil.copytree(token_dir, folder)
    (folder / "holdout-00000.npz").write_bytes(b"not a zip")
    with pytest.raises(CorpusError, match=str(folder / "holdout-00000.npz")):
        TokenSet(folder)
    (folder / MANIFEST).write_text("{broken")
    with pytest.raises(CorpusError, match=str(folder / MANIFEST)):
        TokenSet(folder)


# --- the sampler --------------------------------------------------------------------------------------------------


def _config(**kwargs: float) -> LMTrainConfig:
    return LMTrainConfig(batch=2, seq_len=T, holdout_batches=1, warmup_steps=1, **kwargs)  # type: ignore[arg-type]


def _delayed(piece: TokenPiece) -> np.ndarray:
    """(K, F + K - 1) the piece in MusicGen's delay pattern, special = CARD, from engine.lm.patterns."""
    return build_delay_pattern(torch.from_numpy(piece.codes)[None], CARD)[0].numpy()


def _check_conditioning(batch: dict[str, torch.Tensor], b: int, piece: TokenPiece, steps: np.ndarray) -> None:
    frame = np.clip(steps, 0, piece.codes.shape[1] - 1)  # the frame each input step is conditioned on
    np.testing.assert_array_equal(batch["weights"][b].numpy(), piece.weights[frame])
    expected = frame_controls(piece.controls[frame], piece.bar[frame])  # (T, NUM_CONTROLS)
    np.testing.assert_array_equal(batch["controls"][b].numpy(), expected)


def test_start_sequences_follow_bos_and_the_delay_pattern(tokens: TokenSet) -> None:
    pieces = tokens.pieces["train"]
    sampler = SequenceSampler(pieces, _config(start_prob=1.0), CARD, K)
    batch = sampler.sample(np.random.default_rng(0), 6)
    assert batch["tokens"].shape == batch["targets"].shape == (6, K, T)
    assert batch["tokens"].dtype == batch["targets"].dtype == torch.int64
    assert batch["weights"].shape == (6, T, len(GENRES)) and batch["controls"].shape == (6, T, NUM_CONTROLS)
    delayed = [_delayed(p) for p in pieces]
    for b in range(6):
        tok, tgt = batch["tokens"][b].numpy(), batch["targets"][b].numpy()
        assert (tok[:, 0] == CARD).all()  # the BOS frame: special in every codebook
        matches = [i for i, d in enumerate(delayed) if np.array_equal(tok[:, 1:], d[:, : T - 1])]
        assert matches, "a start sequence is not the delayed start of any piece"
        d = delayed[matches[0]]
        np.testing.assert_array_equal(tgt, np.where(d[:, :T] == CARD, -100, d[:, :T]))
        assert ((tgt == -100) == (d[:, :T] == CARD)).all()
        assert (tgt[1:, 0] == -100).all() and tgt[0, 0] != -100  # step 0 holds only codebook 0 of frame 0
        for k in range(K):  # codebook k of step s is frame s - k
            for s in range(k, T - 1):
                assert tok[k, s + 1] == pieces[matches[0]].codes[k, s - k]
        _check_conditioning(batch, b, pieces[matches[0]], np.arange(-1, T - 1))


def test_middle_crops_follow_the_delay_pattern(tokens: TokenSet) -> None:
    pieces = tokens.pieces["train"]
    sampler = SequenceSampler(pieces, _config(start_prob=0.0, splice_prob=0.0), CARD, K)
    batch = sampler.sample(np.random.default_rng(1), 6)
    delayed = [_delayed(p) for p in pieces]
    for b in range(6):
        tok, tgt = batch["tokens"][b].numpy(), batch["targets"][b].numpy()
        found = [
            (i, s) for i, d in enumerate(delayed) for s in range(d.shape[1] - T) if np.array_equal(tok, d[:, s : s + T])
        ]
        assert found, "a crop is not a window of any delayed piece"
        i, s = found[0]
        assert s >= K - 1  # a middle crop starts past the leading padding
        np.testing.assert_array_equal(tgt, delayed[i][:, s + 1 : s + T + 1])  # the next step, every codebook
        assert not (tgt == -100).any() and not (tok == CARD).any()
        _check_conditioning(batch, b, pieces[i], np.arange(s, s + T))


def _windows(codes: np.ndarray, part: np.ndarray) -> list[int]:
    """Frames j where codes[:, j : j + width] equals part (K, width)."""
    width = part.shape[1]
    return [j for j in range(codes.shape[1] - width + 1) if np.array_equal(codes[:, j : j + width], part)]


def test_splices_cut_from_another_piece_to_this_one_on_bar_lines(tokens: TokenSet) -> None:
    pieces = tokens.pieces["train"]
    assert len(pieces) == 2 and all(len(np.unique(p.codes[0])) > 10 for p in pieces)  # windows are identifiable
    config = _config(start_prob=0.0, splice_prob=1.0)
    sampler = SequenceSampler(pieces, config, CARD, K)
    rng = np.random.default_rng(3)
    need, leads = T + K + 1, []
    for _ in range(12):
        piece, other = pieces
        spliced = sampler._splice(rng, piece)
        if spliced is None:  # drew the piece itself as the other one
            continue
        assert spliced.codes.shape == (K, need) and len(spliced.weights) == len(spliced.controls) == need
        cuts = [
            (c, j, i)
            for c in range(K, need - 1)
            for j in _windows(piece.codes, spliced.codes[:, c:])
            for i in _windows(other.codes, spliced.codes[:, :c])
        ]
        assert cuts, "a splice is not the end of a window of one piece and then the start of a window of the other"
        c, j, i = cuts[0]
        assert np.floor(piece.bar[j]) > np.floor(piece.bar[j - 1])  # this piece enters on a bar line
        assert np.floor(other.bar[i + c]) > np.floor(other.bar[i + c - 1])  # the other leaves on one
        np.testing.assert_array_equal(spliced.weights[:c], other.weights[i : i + c])
        np.testing.assert_array_equal(spliced.weights[c:], piece.weights[j : j + need - c])
        np.testing.assert_array_equal(spliced.controls[c:], piece.controls[j : j + need - c])
        assert np.all(np.diff(spliced.bar) > 0)  # the clock runs on
        assert np.floor(spliced.bar[c]) == np.floor(spliced.bar[c - 1]) + 1
        assert spliced.bar[c] % 1 == pytest.approx(piece.bar[j] % 1, abs=1e-4)  # same phase: the metronome holds
        leads.append(c - (K - 1))
    assert len(leads) >= 3
    assert all(round(0.15 * T) <= lead <= round(0.5 * T) for lead in leads) and len(set(leads)) > 1
    batch = sampler.sample(np.random.default_rng(4), 8)
    assert not (batch["tokens"] == CARD).any() and not (batch["targets"] == -100).any()  # every codebook is real


def test_the_null_condition_share(tokens: TokenSet) -> None:
    pieces = tokens.pieces["train"]
    rng = np.random.default_rng(2)
    assert SequenceSampler(pieces, _config(uncond_prob=0.0), CARD, K).sample(rng, 8)["keep"].tolist() == [1.0] * 8
    assert SequenceSampler(pieces, _config(uncond_prob=1.0), CARD, K).sample(rng, 8)["keep"].tolist() == [0.0] * 8
    keep = SequenceSampler(pieces, _config(uncond_prob=0.5), CARD, K).sample(rng, 400)["keep"]
    assert set(keep.tolist()) == {0.0, 1.0} and 0.35 < float(keep.mean()) < 0.65


def test_sampling_is_deterministic(tokens: TokenSet) -> None:
    sampler = SequenceSampler(tokens.pieces["train"], TRAIN, CARD, K)
    a, b = sampler.sample(np.random.default_rng(5), 4), sampler.sample(np.random.default_rng(5), 4)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_pieces_shorter_than_a_sequence_are_refused(tokens: TokenSet) -> None:
    with pytest.raises(ValueError, match="seq_len"):
        SequenceSampler(tokens.pieces["train"], LMTrainConfig(seq_len=400), CARD, K)


def test_sequence_loss_per_codebook_and_null_row(tokens: TokenSet) -> None:
    lm = TokenLM(TINY_LM, seed=0).eval()
    batch = SequenceSampler(tokens.pieces["train"], _config(start_prob=0.0, uncond_prob=0.0), CARD, K).sample(
        np.random.default_rng(3), 2
    )
    with torch.no_grad():
        whole = sequence_loss(lm, batch)
        per_k = sequence_loss(lm, batch, per_codebook=True)
        null = sequence_loss(lm, {**batch, "keep": torch.zeros(2)})
        cond = lm.null_condition(2 * T).view(2, T, -1)
        logits = lm(batch["tokens"], cond)
    assert per_k.shape == (K,)
    assert float(whole) == pytest.approx(float(per_k.mean()), rel=1e-5)  # every codebook has T real targets here
    assert float(whole) == pytest.approx(math.log(CARD), abs=0.2)  # an untrained model: near-uniform
    direct = torch.nn.functional.cross_entropy(logits.reshape(-1, CARD), batch["targets"].reshape(-1))
    assert float(null) == pytest.approx(float(direct), rel=1e-5)  # keep 0 is the null condition
    assert float(null) != float(whole)


# --- the token model's job ----------------------------------------------------------------------------------------


def test_the_lm_loss_falls(tokens: TokenSet, tmp_path: Path) -> None:
    job = LMJob(
        tokens,
        TINY_LM,
        LMTrainConfig(batch=2, seq_len=T, holdout_batches=1, warmup_steps=1, lr=2e-3),
        tmp_path / "lm.safetensors",
    )
    losses = [job.step(i)["loss"] for i in range(60)]
    assert all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.1


def test_warmup_and_weight_decay_groups(tokens: TokenSet, tmp_path: Path) -> None:
    config = LMTrainConfig(batch=2, seq_len=T, holdout_batches=1, warmup_steps=4, lr=1e-3)
    job = LMJob(tokens, TINY_LM, config, tmp_path / "lm.safetensors")
    lrs = [job.step(i)["lr"] for i in range(6)]
    assert lrs == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
    decay, other = job.optim.param_groups
    assert decay["weight_decay"] == config.weight_decay and other["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in other["params"])
    assert len(decay["params"]) + len(other["params"]) == len(list(job.lm.parameters()))


def test_evaluate_reports_per_codebook_and_unconditional_ce(tokens: TokenSet, tmp_path: Path) -> None:
    job = LMJob(tokens, TINY_LM, TRAIN, tmp_path / "lm.safetensors")
    figures = job.evaluate()
    assert set(figures) == {"holdout_ce_k0", "holdout_ce_k1", "holdout_ce", "holdout_ce_uncond"}
    assert all(math.isfinite(v) for v in figures.values())
    assert figures["holdout_ce"] == pytest.approx((figures["holdout_ce_k0"] + figures["holdout_ce_k1"]) / 2)
    assert figures["holdout_ce"] == pytest.approx(math.log(CARD), abs=0.2)
    assert job.evaluate() == figures  # fixed held-out batches
    for i in range(3):
        job.step(i)
    assert job.evaluate() != figures
    assert not job.lm.training  # evaluated in eval mode
    job.step(3)
    assert job.lm.training  # and each step trains in train mode again


def test_snapshot_writes_weights_load_lm_reads(tokens: TokenSet, tmp_path: Path) -> None:
    out = tmp_path / "runs" / "lm.safetensors"
    job = LMJob(tokens, TINY_LM, TRAIN, out)
    for i in range(2):
        job.step(i)
    job.snapshot(2, 0.25)
    loaded = load_lm(out)
    assert loaded.config == TINY_LM and not loaded.training
    for name, tensor in job.lm.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name  # stored as float32: exact
    meta = lm_metadata(out)
    assert meta["format"] == LM_FORMAT and meta["step"] == "2" and meta["hours"] == "0.250"
    assert [p.name for p in out.parent.iterdir()] == ["lm.safetensors"]  # no temp file left


def test_lm_resume_through_the_loop_gives_the_same_weights(tokens: TokenSet, tmp_path: Path) -> None:
    def config(run_dir: Path, steps: int) -> RunConfig:
        return RunConfig(run_dir=run_dir, max_steps=steps, log_every=1, eval_every=100, progress=False)

    whole = LMJob(tokens, TINY_LM, TRAIN, tmp_path / "w.safetensors")
    run(whole, "lm", config(tmp_path / "whole", 6), seed=0)
    run(LMJob(tokens, TINY_LM, TRAIN, tmp_path / "s.safetensors"), "lm", config(tmp_path / "split", 3), seed=0)
    resumed = LMJob(tokens, TINY_LM, TRAIN, tmp_path / "s.safetensors")
    result = run(resumed, "lm", config(tmp_path / "split", 6), seed=0)
    assert (result.resumed_from, result.step) == (3, 6)
    for name, tensor in whole.lm.state_dict().items():
        assert torch.equal(tensor, resumed.lm.state_dict()[name]), name
    for name, tensor in load_lm(tmp_path / "s.safetensors").state_dict().items():
        assert torch.equal(tensor, resumed.lm.state_dict()[name]), name  # the snapshot is the last checkpoint


def test_init_continues_from_a_given_model(tokens: TokenSet, tmp_path: Path) -> None:
    start = TokenLM(TINY_LM, seed=7)
    job = LMJob(tokens, TINY_LM, TRAIN, tmp_path / "lm.safetensors", init=start)
    assert job.lm is start
    fresh = LMJob(tokens, TINY_LM, TRAIN, tmp_path / "lm.safetensors")
    assert not torch.equal(next(job.lm.parameters()), next(fresh.lm.parameters()))


def test_warmup_counts_from_the_first_step_this_job_trains(tokens: TokenSet, tmp_path: Path) -> None:
    """A run from shipped weights starts at their step count with a fresh optimizer: it warms up again, once."""
    config = LMTrainConfig(batch=2, seq_len=T, holdout_batches=1, warmup_steps=4, lr=1e-3)
    job = LMJob(tokens, TINY_LM, config, tmp_path / "lm.safetensors", init=TokenLM(TINY_LM, seed=7))
    lrs = [job.step(1028 + i)["lr"] for i in range(3)]
    assert lrs == pytest.approx([2.5e-4, 5e-4, 7.5e-4])
    resumed = LMJob(tokens, TINY_LM, config, tmp_path / "lm.safetensors")
    resumed.load_state_dict(job.state_dict())
    assert [resumed.step(1031 + i)["lr"] for i in range(2)] == pytest.approx([1e-3, 1e-3])
