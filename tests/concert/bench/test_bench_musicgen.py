"""The MusicGen benchmark pair on a tiny random MusicGen (no weights, no network)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from concert.bench.musicgen import (
    bench_musicgen,
    musicgen_small_config,
    prompt_ids,
    rtf_ours_musicgen,
    rtf_transformers_musicgen,
)
from engine.musicgen.source import WordHashTokenizer
from engine.musicgen.weights import load_musicgen
from tests.support.tiny_musicgen import SAMPLE_RATE, TEXT_VOCAB, tiny_musicgen
from tests.support.tiny_musicgen import offline as offline_hub

SECONDS = 0.2  # audio asked of each side
HOP = 640  # samples per frame at 32 kHz / 50 Hz


@pytest.fixture(scope="module", autouse=True)
def offline() -> Iterator[None]:
    """No hub access; the thread count the benchmark sets is put back afterwards."""
    with offline_hub(threads=None):
        yield


@pytest.fixture(scope="module")
def model(offline: None) -> Any:
    return tiny_musicgen(seed=0)


def test_bench_reports_positive_finite_figures(model: Any) -> None:
    result = bench_musicgen(SECONDS, threads=1, model=model)
    keys = {
        "rtf_ours_musicgen",
        "rtf_ours_musicgen_bf16",
        "rtf_ours_musicgen_int8",
        "rtf_transformers_musicgen",
        "rtf_transformers_musicgen_bf16",
        "speedup_vs_transformers",
        "speedup_vs_transformers_bf16_ours",
        "speedup_vs_transformers_int8_ours",
        "speedup_vs_transformers_bf16",
    }
    assert keys <= result.keys()
    assert all(math.isfinite(v) and v > 0 for v in result.values())
    assert result["speedup_vs_transformers"] == pytest.approx(
        result["rtf_transformers_musicgen"] / result["rtf_ours_musicgen"]
    )
    assert next(model.parameters()).dtype == torch.float32  # the bfloat16 run used a copy


def test_both_sides_make_audio_of_the_asked_length(model: Any) -> None:
    parts = load_musicgen(model)
    ours = rtf_ours_musicgen(parts, SECONDS, threads=1)
    assert ours.sample_rate == SAMPLE_RATE
    assert ours.audio.shape == (SAMPLE_RATE // 2,)  # whole 0.5 s chunks until >= SECONDS
    ids = prompt_ids(WordHashTokenizer(TEXT_VOCAB))
    theirs = rtf_transformers_musicgen(model, ids, SECONDS, threads=1)
    assert theirs.audio.shape == (round(SECONDS * 50) * HOP,)  # exactly SECONDS: frames + K - 1 tokens
    for run in (ours, theirs):
        assert run.rtf > 0 and torch.isfinite(run.audio).all() and run.audio.abs().max() > 0


def test_same_text_ids_on_both_sides(model: Any) -> None:
    ids = prompt_ids(WordHashTokenizer(TEXT_VOCAB))
    assert ids.shape[0] == 1 and ids.shape[1] > 3 and int(ids.max()) < TEXT_VOCAB


def test_musicgen_small_config_is_the_published_architecture() -> None:
    config = musicgen_small_config()
    dec, text, audio = config.decoder, config.text_encoder, config.audio_encoder
    assert (dec.num_hidden_layers, dec.hidden_size, dec.num_attention_heads, dec.ffn_dim) == (24, 1024, 16, 4096)
    assert (dec.num_codebooks, dec.vocab_size, dec.bos_token_id) == (4, 2048, 2048)
    assert (text.d_model, text.d_ff, text.num_layers, text.num_heads, text.vocab_size) == (768, 3072, 12, 12, 32128)
    assert (audio.sampling_rate, audio.frame_rate, audio.num_quantizers, audio.codebook_size) == (32000, 50, 4, 2048)
