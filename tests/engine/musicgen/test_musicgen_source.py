"""The musicgen backend: a tiny random MusicGen driven by our continuation loop. No weights, no network."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from engine.backends import BackendConfig, build_source
from engine.codec.model import CodecError
from engine.generate.continuation import ContinuationConfig, TokenSource
from engine.lm.linear import StepLinear
from engine.music.prompt import Prompt, PromptError, StyleWeight
from engine.music.styles import UnknownStyleError
from engine.musicgen.source import MusicgenConditioner, WordHashTokenizer, musicgen_source
from engine.musicgen.weights import MusicgenParts, load_musicgen
from tests.support.tiny_musicgen import CARD, SAMPLE_RATE, TEXT_VOCAB, K, encodec_config, tiny_musicgen
from tests.support.tiny_musicgen import offline as offline_hub

TOL = 1e-4  # max abs logit difference between the loop and an independent forward pass


@pytest.fixture(scope="module", autouse=True)
def offline() -> Iterator[None]:
    """No hub access; one torch thread (tiny models on a shared 2-core machine run far faster that way)."""
    with offline_hub(threads=1):
        yield


@pytest.fixture(scope="module")
def model(offline: None) -> Any:
    return tiny_musicgen(seed=0)


def source(
    model: Any,
    prompt: Prompt | None = None,
    *,
    max_len: int = 200,
    window: int = 200,
    stride: int = 100,
    chunk: int = 25,
    seed: int = 0,
) -> TokenSource:
    parts = load_musicgen(model, max_len=max_len)
    cfg = ContinuationConfig(window=window, stride=stride, chunk_frames=chunk, seed=seed)
    return musicgen_source(parts, prompt or Prompt.of("techno", bpm=200.0), cfg)


def texts(src: TokenSource) -> tuple[str, ...]:
    assert isinstance(src.conditioner, MusicgenConditioner)
    return src.conditioner.texts


def test_endless_run_past_the_decoders_max_len(model: Any) -> None:
    src = source(model, max_len=40, window=40, stride=20)
    assert src.sample_rate == SAMPLE_RATE
    chunks, lengths = [], []
    for _ in range(6):  # 150 frames through a 40-position decoder: the sliding window re-primes
        chunks.append(src.next_chunk())
        lengths.append(src._stream.length)
    assert max(lengths) <= 40 and min(lengths) >= 20
    assert [c.start_sample for c in chunks] == list(np.cumsum([0] + [len(c.pcm) for c in chunks[:-1]]))
    assert sum(len(c.pcm) for c in chunks) >= 140 * 640
    assert all(c.pcm.dtype == np.float32 and np.isfinite(c.pcm).all() and c.pcm.std() > 0 for c in chunks)
    bars = [bar for c in chunks for _, bar in c.bar_starts]
    assert bars == [0, 1, 2]  # a bar at 200 bpm is 1.2 s = 60 frames
    with pytest.raises(ValueError, match="window 48 exceeds the model's max_len of 40"):
        source(model, max_len=40, window=48, stride=8)


def test_prompt_change_lands_on_its_bar_and_keeps_the_cache(model: Any) -> None:
    src = source(model)
    decoded: list[torch.Tensor] = []
    push = src._decoder.push

    def spy(codes: torch.Tensor) -> torch.Tensor:
        decoded.append(codes.clone())
        return push(codes)

    src._decoder.push = spy  # type: ignore[method-assign]
    pcm = [src.next_chunk().pcm]
    techno = texts(src)
    assert len(techno) == 1 and techno[0].startswith("techno music, 200 bpm")
    land = src.set_prompt(Prompt.of("ambient", bpm=200.0, ramp_bars=1), at_bar=src.next_bar)
    assert land == 1
    landed_in = None
    for i in range(8):
        kv, length, cross = src._stream.cache.kv.clone(), src._stream.length, src._stream.cross
        assert cross is not None
        chunk = src.next_chunk()
        pcm.append(chunk.pcm)
        if landed_in is None and texts(src) != techno:
            landed_in = i
            assert land in [bar for _, bar in chunk.bar_starts]  # the change took effect in its bar's chunk
            assert texts(src)[0] == techno[0] and texts(src)[1].startswith("ambient music, 200 bpm")
            now = src._stream.cache.kv  # (L, 2, R, H, max_len, hd)
            assert now.shape[2] == 3 and src._stream.length > length  # a new row; nothing thrown away
            assert torch.equal(now[:, :, :2, :, :length], kv[:, :, :2, :, :length])  # earlier frames untouched
            assert torch.equal(now[:, :, 2, :, :length], kv[:, :, 1, :, :length])  # the new row: the old row's copy
            new_cross = src._stream.cross
            assert new_cross is not None and new_cross.kv.shape[2] == 3
            assert not torch.equal(new_cross.kv[:, :, 2], new_cross.kv[:, :, 1])  # a different text from here on
        elif landed_in is None:
            assert texts(src) == techno and src._stream.cross is cross  # nothing changes before the bar
    assert landed_in is not None
    assert len(texts(src)) == 1 and texts(src)[0].startswith("ambient")  # glide done: the techno row is dropped
    assert src._stream.batch_size == 2 and dict(chunk.now_playing.mix) == {"ambient": 1.0}
    got = np.concatenate(pcm)
    whole = src.codec.decode(torch.cat(decoded, dim=2))[0].numpy()  # the same codes decoded in one go
    assert len(got) == len(whole) and np.max(np.abs(got - np.clip(whole, -1, 1))) < 1e-3  # no seam at chunks


def test_weighted_guidance_equals_the_formula_over_independent_rows(model: Any) -> None:
    mix = (StyleWeight("house", 0.7), StyleWeight("dark rolling techno", 0.3))
    src = source(model, Prompt(mix, bpm=124.0), chunk=6)
    src.next_chunk()
    assert texts(src) == (
        "house music, 124 bpm, minor key, energetic, full drop",
        "dark rolling techno, 124 bpm, minor key, energetic, full drop",
    )
    got = src._logits  # (1, K, card) guided logits the loop samples next
    assert got is not None and src._steps == src._stream.length - 1  # no re-prime: the stream holds every step
    parts: MusicgenParts = load_musicgen(model, max_len=200)
    tokens = torch.cat([torch.full((1, K, 1), CARD), src._history], dim=2)  # (1, K, 1 + steps): BOS then steps

    def row_logits(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return parts.lm(tokens, cross_states=states, cross_mask=mask)[:, :, -1]  # (1, K, card)

    tok = WordHashTokenizer(TEXT_VOCAB)
    uncond = row_logits(*parts.null_text(1))
    conds = [row_logits(*parts.encode_text(**tok([t]))) for t in texts(src)]
    g = src.config.cfg_scale
    want = uncond + g * (0.7 * (conds[0] - uncond) + 0.3 * (conds[1] - uncond))
    assert (got - want).abs().max() < TOL
    swapped = uncond + g * (0.3 * (conds[0] - uncond) + 0.7 * (conds[1] - uncond))
    assert (got - swapped).abs().max() > 100 * TOL  # the weights matter


def test_same_seed_same_audio(model: Any) -> None:
    def audio(seed: int) -> np.ndarray:
        src = source(model, seed=seed)
        return np.concatenate([src.next_chunk().pcm for _ in range(2)])

    a, b, c = audio(3), audio(3), audio(4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_word_hash_tokenizer_is_deterministic_and_ends_with_eos() -> None:
    tok = WordHashTokenizer(TEXT_VOCAB)
    batch = tok(["Deep House music", "lofi"])
    assert batch["input_ids"].shape == (2, 4) and batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch["input_ids"][0, 3] == 1 and batch["input_ids"][1, 1] == 1  # EOS
    assert torch.equal(tok(["deep house music"])["input_ids"][0], batch["input_ids"][0])
    assert int(batch["input_ids"][batch["attention_mask"] == 1].min()) >= 1 and int(batch["input_ids"].max()) < 99
    with pytest.raises(ValueError, match="vocab_size"):
        WordHashTokenizer(3)


def test_bad_prompts_are_refused_and_the_old_prompt_plays_on(model: Any) -> None:
    src = source(model)
    src.next_chunk()
    before = texts(src)
    with pytest.raises(UnknownStyleError, match="polka"):
        src.set_prompt(Prompt.of("polka"))
    with pytest.raises(PromptError, match="nan"):
        src.set_prompt(Prompt((StyleWeight("house", float("nan")),)))
    for _ in range(4):  # past the next bar, where a change would have landed
        chunk = src.next_chunk()
        assert chunk.now_playing.genre == "techno" and np.isfinite(chunk.pcm).all()
    assert texts(src) == before


def test_a_codec_that_cannot_decode_the_decoder_is_named(model: Any, offline: None) -> None:
    from transformers import EncodecModel

    parts = load_musicgen(model, max_len=64)
    cfg = ContinuationConfig(window=64, stride=32)
    mismatched = (
        (encodec_config(codebook_size=32), "codebooks of 32 tokens, the decoder predicts 64"),
        (encodec_config(codebooks=2), r"offers \[2\] codebooks .*not 4"),
    )
    for codec, match in mismatched:
        with torch.random.fork_rng(devices=[]):
            odd = MusicgenParts(parts.lm, parts.text_encoder, parts.enc_to_dec_proj, EncodecModel(codec), CARD)
        with pytest.raises(CodecError, match=match):
            musicgen_source(odd, Prompt.of("house"), cfg)
    no_codec = MusicgenParts(parts.lm, parts.text_encoder, parts.enc_to_dec_proj, None, CARD)
    with pytest.raises(CodecError, match="EnCodec audio encoder, found none"):
        musicgen_source(no_codec, Prompt.of("house"), cfg)
    normalized = encodec_config()
    normalized.normalize = True
    with torch.random.fork_rng(devices=[]):
        odd = MusicgenParts(parts.lm, parts.text_encoder, parts.enc_to_dec_proj, EncodecModel(normalized), CARD)
    with pytest.raises(CodecError, match="normalize=True"):
        musicgen_source(odd, Prompt.of("house"), cfg)


def test_backend_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="model_path"):
        BackendConfig(name="musicgen")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        build_source(BackendConfig(name="musicgen", model_path=tmp_path / "nowhere"), Prompt.of("techno"))


def test_build_source_from_a_saved_checkpoint(model: Any, tmp_path: Path) -> None:
    model.save_pretrained(tmp_path)
    src = build_source(BackendConfig(name="musicgen", model_path=tmp_path, seed=1), Prompt.of("techno"))
    assert isinstance(src, TokenSource) and isinstance(src.conditioner, MusicgenConditioner)
    assert src.lm.config.card == CARD and next(src.lm.parameters()).dtype == torch.bfloat16
    assert all(m.int8 is not None for m in src.lm.modules() if isinstance(m, StepLinear))  # int8 by default
    chunk = src.next_chunk()
    assert chunk.sample_rate == SAMPLE_RATE and len(chunk.pcm) > 0 and np.isfinite(chunk.pcm).all()
    assert chunk.now_playing.genre == "techno" and chunk.bar_starts[0] == (0, 0)
