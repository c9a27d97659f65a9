from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.backends import EMBEDDED_TOP_K, BackendConfig, build_source
from engine.generate.continuation import TokenSource
from engine.lm.linear import StepLinear
from engine.music.prompt import Prompt
from engine.synth.source import StyleSynth


def test_backends_by_name_share_the_source_interface() -> None:
    synth = build_source(BackendConfig(name="synth"), Prompt.of("techno"))
    assert isinstance(synth, StyleSynth) and synth.sample_rate == 24000
    emb = build_source(BackendConfig(name="embedded", seed=1), Prompt.of("techno"))
    assert isinstance(emb, TokenSource)
    assert emb.config.top_k == EMBEDDED_TOP_K < emb.lm.config.card  # a filter over the 256 tokens, not all of them
    assert next(emb.lm.parameters()).dtype == torch.bfloat16  # activations; the linears run on int8 weights
    assert all(m.int8 is not None for m in emb.lm.modules() if isinstance(m, StepLinear))
    assert 8e6 < sum(p.numel() for p in emb.lm.parameters()) < 15e6  # the embedded size
    chunk = emb.next_chunk()
    assert chunk.sample_rate == emb.codec.sample_rate and np.isfinite(chunk.pcm).all()
    assert emb.set_prompt(Prompt.of("ambient")) >= emb.next_bar - 1


def test_unknown_backend_or_precision_is_named() -> None:
    with pytest.raises(ValueError, match="'jukebox'"):
        BackendConfig(name="jukebox")
    with pytest.raises(ValueError, match="'fp8'"):
        BackendConfig(name="embedded", precision="fp8")
