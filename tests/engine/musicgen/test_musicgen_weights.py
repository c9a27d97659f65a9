"""MusicGen weights in TokenLM give transformers' logits. Tiny random models only; nothing is downloaded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

import engine.lm.linear
from engine.generate.guidance import combine_guidance
from engine.musicgen.weights import MusicgenParts, NotMusicgenError, load_musicgen
from tests.support.tiny_musicgen import CARD, K, tiny_musicgen

TOL = 1e-4  # max abs logit difference to transformers


@pytest.fixture(scope="module")
def hf() -> Iterator[ModuleType]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def model(hf: ModuleType) -> Any:
    """The shared tiny random MusicgenForConditionalGeneration (T5 width 24 -> enc_to_dec_proj -> decoder 32)."""
    return tiny_musicgen(seed=0)


@pytest.fixture(scope="module")
def parts(model: Any) -> MusicgenParts:
    return load_musicgen(model, max_len=64)


def inputs(B: int = 3, T: int = 9) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    codes = torch.randint(0, CARD + 1, (B, K, T), generator=g)  # (B, K, T)
    text = torch.randint(0, 99, (B, 5), generator=g)  # (B, S)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]])[:B]  # padded, full, unconditional
    return codes, text, mask


def hf_logits(model: Any, codes: torch.Tensor, text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    B, _, T = codes.shape
    with torch.no_grad():
        out = model(input_ids=text, attention_mask=mask, decoder_input_ids=codes.reshape(B * K, T))
    return out.logits.view(B, K, T, CARD)  # (B, K, T, card)


def test_parts(parts: MusicgenParts, model: Any) -> None:
    assert parts.lm.config.card == CARD and parts.lm.config.num_codebooks == K and parts.lm.config.cross_dim == 32
    assert parts.enc_to_dec_proj is model.enc_to_dec_proj and parts.text_encoder is model.text_encoder
    assert parts.audio_encoder is model.audio_encoder and parts.start_token == CARD
    assert not parts.lm.training


def test_forward_matches_transformers(parts: MusicgenParts, model: Any) -> None:
    codes, text, mask = inputs()
    want = hf_logits(model, codes, text, mask)
    states, smask = parts.encode_text(text, mask)
    with torch.no_grad():
        got = parts.lm(codes, cross_states=states, cross_mask=smask)
    assert want.abs().max() > 1e-3  # not trivially zero
    assert (got - want).abs().max() < TOL


def test_prefill_and_cached_steps_match_transformers(parts: MusicgenParts, model: Any) -> None:
    codes, text, mask = inputs()
    want = hf_logits(model, codes, text, mask)
    with parts.lm.streaming(batch_size=3) as stream:
        stream.set_cross(*parts.encode_text(text, mask))
        got = [stream.prefill(codes[:, :, :4])]
        got += [stream.step(codes[:, :, t : t + 1]) for t in range(4, 9)]
    for i, g in enumerate(got):
        assert (g - want[:, :, 3 + i]).abs().max() < TOL


@pytest.mark.parametrize("packed", [False, True])
def test_cached_steps_match_transformers_cache(
    parts: MusicgenParts, model: Any, hf: ModuleType, packed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cached steps give transformers' logits; `packed` puts every linear on StepLinear's float32 fast path."""
    if packed:
        monkeypatch.setattr(engine.lm.linear, "PACK_MIN_WEIGHTS", 0)
    codes, text, mask = inputs(B=2)
    states, smask = parts.encode_text(text, mask)
    cache = hf.EncoderDecoderCache(hf.DynamicCache(), hf.DynamicCache())
    with parts.lm.streaming(batch_size=2) as stream, torch.no_grad():
        stream.set_cross(states, smask)
        for t in range(6):
            frame = codes[:, :, t : t + 1]  # (B, K, 1)
            out = model.decoder(
                input_ids=frame.reshape(2 * K, 1),
                encoder_hidden_states=states,
                encoder_attention_mask=smask,
                cache=cache,
                use_cache=True,
            )
            cache = out.cache
            assert (stream.step(frame) - out.logits.view(2, K, CARD)).abs().max() < TOL


def test_null_text_is_musicgens_unconditional_input(parts: MusicgenParts, model: Any) -> None:
    codes, _, _ = inputs(B=2, T=5)
    uncond = model.get_unconditional_inputs(num_samples=2)
    with torch.no_grad():
        want = model(
            encoder_outputs=uncond.encoder_outputs,
            attention_mask=uncond.attention_mask,
            decoder_input_ids=codes.reshape(2 * K, 5),
        ).logits.view(2, K, 5, CARD)
    with torch.no_grad():
        got = parts.lm(codes, cross_states=parts.null_text(2)[0], cross_mask=parts.null_text(2)[1])
    assert (got - want).abs().max() < TOL


def test_guidance_rows_with_a_text_prompt(parts: MusicgenParts) -> None:
    codes, text, mask = inputs(B=2, T=4)
    prompt_states, prompt_mask = parts.encode_text(text[1:2], mask[1:2])  # one prompt (S = 5)
    null_states, null_mask = parts.null_text(1, length=5)
    states, smask = torch.cat([null_states, prompt_states]), torch.cat([null_mask, prompt_mask])  # rows [u, c]
    with parts.lm.streaming(batch_size=2) as stream:
        stream.set_cross(states, smask)
        rows = stream.prefill(codes[:1].expand(2, -1, -1))  # (R, K, card)
    guided = combine_guidance(rows[None], [1.0], scale=3.0)[0]
    assert torch.allclose(guided, rows[0] + 3.0 * (rows[1] - rows[0]))


def test_decoder_only_model(hf: ModuleType, model: Any) -> None:
    decoder = hf.MusicgenForCausalLM(model.config.decoder).eval()
    parts = load_musicgen(decoder, max_len=16)
    assert parts.text_encoder is None and parts.enc_to_dec_proj is None
    codes, _, _ = inputs(B=2, T=6)
    with torch.no_grad():
        want = decoder(input_ids=codes.reshape(2 * K, 6)).logits.view(2, K, 6, CARD)
    with parts.lm.streaming(batch_size=2) as stream:
        got = stream.prefill(codes)
    assert (got - want[:, :, -1]).abs().max() < TOL
    with pytest.raises(RuntimeError, match="text encoder"):
        parts.encode_text(torch.zeros(1, 2, dtype=torch.long))


def test_load_from_local_folder(model: Any, parts: MusicgenParts, tmp_path: Path) -> None:
    model.save_pretrained(tmp_path / "tiny")
    loaded = load_musicgen(tmp_path / "tiny", max_len=64)
    assert loaded.tokenizer is None  # no tokenizer files were saved
    mine, theirs = loaded.lm.state_dict(), parts.lm.state_dict()
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs)
    _, text, mask = inputs()
    assert torch.allclose(loaded.encode_text(text, mask)[0], parts.encode_text(text, mask)[0])


def test_encode_prompts_uses_the_tokenizer(parts: MusicgenParts) -> None:
    def tokenizer(texts: list[str], **_: Any) -> dict[str, torch.Tensor]:
        ids = torch.tensor([[len(t) % 99, 1, 0] for t in texts])
        return {"input_ids": ids, "attention_mask": (ids > 0).long()}

    with_tok = MusicgenParts(parts.lm, parts.text_encoder, parts.enc_to_dec_proj, None, CARD, tokenizer)
    states, mask = with_tok.encode_prompts(["lofi", "dnb"])
    assert states.shape == (2, 3, 32) and mask.tolist() == [[1, 1, 0], [1, 1, 0]]
    with pytest.raises(RuntimeError, match="tokenizer"):
        parts.encode_prompts(["x"])


def test_loader_errors(hf: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_musicgen(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="local Hugging Face cache"):
        load_musicgen("concert-tests/not-a-cached-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotMusicgenError, match="config.json"):
        load_musicgen(tmp_path / "empty")
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(NotMusicgenError, match="bert"):
        load_musicgen(tmp_path / "bert")
    with pytest.raises(NotMusicgenError, match="Linear"):
        load_musicgen(torch.nn.Linear(2, 2))
