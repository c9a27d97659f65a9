"""Every kind of bad input the engine meets gets a clear error naming the value, and a running set plays on."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from engine.codec.model import Codec, CodecConfig, CodecError
from engine.generate.continuation import ContinuationConfig, TokenSource
from engine.lm.model import LMConfig, TokenLM
from engine.music.prompt import Prompt, PromptError, StyleWeight, prompt_from_json
from engine.music.styles import UnknownStyleError
from engine.musicgen.weights import load_musicgen
from tests.engine.generate.test_continuation import tiny

BAD_PROMPTS: list[tuple[Callable[[], object], type[Exception], str]] = [
    (lambda: Prompt.of("polka"), UnknownStyleError, "'polka'"),
    (lambda: Prompt(mix=()), PromptError, "empty"),
    (lambda: Prompt(mix=(StyleWeight("house", 0.0), StyleWeight("techno", 0))), PromptError, "all zero"),
    (lambda: Prompt(mix=(StyleWeight("house", math.nan),)), PromptError, "nan"),
    (lambda: Prompt(mix=(StyleWeight("house", -1.0),)), PromptError, "-1.0"),
    (lambda: Prompt.of("house", bpm=1000), PromptError, "1000"),
    (lambda: Prompt.of("house", bpm=math.inf), PromptError, "inf"),
    (lambda: prompt_from_json([{"style": "house", "weight": "loud"}]), PromptError, "'loud'"),
    (lambda: prompt_from_json({"style": "house"}), PromptError, "dict"),
    (lambda: Prompt.of("zydeco accordion"), UnknownStyleError, "zydeco"),
]


def _attempt(make: Callable[[], object], source: TokenSource) -> None:
    prompt = make()  # most bad prompts are refused here, before any source sees them
    source.set_prompt(prompt)  # type: ignore[arg-type]  # the rest (unknown styles) are refused here


@pytest.mark.parametrize(("make", "error", "names"), BAD_PROMPTS)
def test_bad_prompts_name_the_value_and_change_nothing(
    make: Callable[[], object], error: type[Exception], names: str
) -> None:
    played, twin = tiny(), tiny()
    played.next_chunk(), twin.next_chunk()
    with pytest.raises(error, match=names):
        _attempt(make, played)
    # the running source is exactly where an untouched twin is: same audio, same prompt
    a, b = played.next_chunk(), twin.next_chunk()
    np.testing.assert_array_equal(a.pcm, b.pcm)
    assert a.now_playing == b.now_playing and a.now_playing.genre == "drum-and-bass"


@pytest.mark.parametrize(
    ("changes", "names"),
    [
        ({"window": 16, "stride": 16}, "window=16, stride=16"),
        ({"window": 16, "stride": 20}, "window=16, stride=20"),
        ({"stride": 0}, "stride=0"),
        ({"chunk_frames": 0}, "chunk_frames must be >= 1, got 0"),
        ({"cfg_scale": -1.0}, "cfg_scale must be >= 0, got -1.0"),
    ],
)
def test_continuation_config_names_the_bad_value(changes: dict[str, float], names: str) -> None:
    with pytest.raises(ValueError, match=names):
        ContinuationConfig(**{"window": 48, "stride": 16, **changes})  # type: ignore[arg-type]


def test_window_larger_than_the_model_cache_is_named() -> None:
    src = tiny()
    with pytest.raises(ValueError, match="window 100 exceeds the model's max_len of 64"):
        TokenSource(src.lm, src.codec, Prompt.of("house"), ContinuationConfig(window=100, stride=10))


def test_mismatched_model_and_codec_are_named() -> None:
    lm = TokenLM(LMConfig(num_codebooks=2, card=32, dim=32, num_layers=1, num_heads=2, ffn_dim=64, max_len=64))
    codec = Codec.random(CodecConfig(num_filters=4, codebook_size=16, num_codebooks=2, hidden_size=16), seed=0)
    with pytest.raises(ValueError, match="2 codebooks of 32, codec has 2 of 16"):
        TokenSource(lm, codec, Prompt.of("house"), ContinuationConfig(window=32, stride=8))


def test_missing_or_broken_checkpoints_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(CodecError, match="nowhere"):
        Codec.from_pretrained(missing)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_musicgen(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CodecError, match="no config.json"):
        Codec.from_pretrained(empty)
    (empty / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="'bert'"):
        load_musicgen(empty)
    codec_dir = tmp_path / "codec"
    tiny().codec.save(codec_dir)
    next(codec_dir.glob("*.safetensors")).write_bytes(b"not a checkpoint")
    with pytest.raises(CodecError, match="codec"):
        Codec.from_pretrained(codec_dir)


def test_a_corrupt_musicgen_checkpoint_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.tiny_musicgen import save_tiny_musicgen

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = save_tiny_musicgen(tmp_path / "mg")
    next(folder.glob("*.safetensors")).write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not load the MusicGen checkpoint .*mg"):
        load_musicgen(folder)
