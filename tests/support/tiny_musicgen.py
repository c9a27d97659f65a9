"""A tiny seeded random MusicGen (T5 text encoder, decoder, EnCodec at 32 kHz / 50 Hz) built offline, no weights.

Import only where transformers is installed; callers set HF_HUB_OFFLINE=1 first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

CARD = 64  # decoder vocabulary = codebook size
K = 4  # codebooks
TEXT_VOCAB = 99  # T5 ids
SAMPLE_RATE = 32000  # Hz, like MusicGen's EnCodec
RATIOS = [8, 5, 4, 4]  # hop 640 samples = 50 Hz frames at 32 kHz


@contextlib.contextmanager
def offline(threads: int | None = None) -> Iterator[None]:
    """No hub access inside; torch at `threads` threads (None: as it is), put back afterwards.

    One thread suits tiny models on a shared 2-core machine: two threads spin against each other there.
    """
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("HF_HUB_OFFLINE", "1")
            mp.setenv("TRANSFORMERS_OFFLINE", "1")
            yield
    finally:
        torch.set_num_threads(before)


def encodec_config(codebook_size: int = CARD, codebooks: int = K) -> Any:
    """EnCodec config whose one target bandwidth gives exactly `codebooks` codebooks of `codebook_size`."""
    from transformers import EncodecConfig

    bits = codebook_size.bit_length() - 1
    return EncodecConfig(
        sampling_rate=SAMPLE_RATE,
        num_filters=4,
        num_lstm_layers=1,
        upsampling_ratios=RATIOS,
        codebook_size=codebook_size,
        target_bandwidths=[codebooks * bits * 50 / 1000],  # kbps at 50 Hz
        hidden_size=16,
    )


def tiny_musicgen(seed: int = 0, max_positions: int = 64) -> Any:
    """A random MusicgenForConditionalGeneration: T5 width 24 -> enc_to_dec_proj -> decoder width 32, 2 layers."""
    from transformers import MusicgenConfig, MusicgenDecoderConfig, MusicgenForConditionalGeneration, T5Config

    text = T5Config(vocab_size=TEXT_VOCAB, d_model=24, d_ff=32, d_kv=8, num_layers=2, num_heads=3)
    decoder = MusicgenDecoderConfig(
        vocab_size=CARD,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        ffn_dim=64,
        num_codebooks=K,
        max_position_embeddings=max_positions,
        pad_token_id=CARD,
        bos_token_id=CARD,
        initializer_factor=0.2,  # init std: 10x transformers' 0.02, so the text visibly moves the logits
    )
    config = MusicgenConfig(text_encoder=text, audio_encoder=encodec_config(), decoder=decoder)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        model = MusicgenForConditionalGeneration(config).eval()
        for layer in model.audio_encoder.quantizer.layers:  # transformers inits codebooks to zeros: every code
            layer.codebook.embed.normal_()  # would decode to the same audio
            layer.codebook.embed_avg.copy_(layer.codebook.embed)
    return model


def save_tiny_musicgen(folder: Path, seed: int = 0) -> Path:
    """Write a tiny random checkpoint (config.json + model.safetensors, no tokenizer) to `folder`."""
    tiny_musicgen(seed).save_pretrained(folder)
    return folder
