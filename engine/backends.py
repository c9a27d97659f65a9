"""Audio sources by name: `synth`, `embedded` (our token model) and `musicgen` (MusicGen weights in our loop).

Built once at the entry point and injected; no registry. `embedded` loads the trained codec and token model
shipped in the package (`engine.embedded.weights.SHIPPED`), or another weights folder given as `model_path`; a
missing or broken file raises `engine.embedded.weights.WeightsError` naming it (never random weights). `musicgen` loads
transformers' MusicGen from a local checkpoint folder (never the network).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from engine.music.prompt import Prompt
from engine.source import AudioSource

if TYPE_CHECKING:
    from engine.lm.model import TokenLM

BACKENDS = ("synth", "embedded", "musicgen")
DEFAULT_BACKEND = "synth"  # what `concert serve` and `concert render` play unless told otherwise
PRECISIONS = ("int8", "bfloat16", "float32")
DEFAULT_PRECISION = "int8"  # token model weights unless told otherwise: the fastest on CPU
# The embedded model samples among its 20 likeliest tokens (of 256 per codebook; MusicGen's 250 is of 2048). With
# the 2026-12-02 weights, 600 s of a steered set: tempo error 5.5 bpm at top_k 250, 3.1 at 50, 0.6 at 20; style
# accuracy 0.5 at each (12 segments each); `concert eval` measures the shipped default.
EMBEDDED_TOP_K = 20


@dataclass(frozen=True)
class BackendConfig:
    name: str = DEFAULT_BACKEND  # synth | embedded | musicgen
    seed: int = 0  # sampling / rendering seed
    sample_rate: int = 24000  # Hz; the synth's rate (the token backends' codecs declare their own)
    precision: str = DEFAULT_PRECISION  # token model weights: int8 (weight-only, bfloat16 activations; fastest on CPU),
    # bfloat16 or float32; attention runs in float32 on CPU whichever (engine.lm.model.TokenLM.attention_dtype)
    model_path: Path | None = None  # musicgen: a local MusicGen checkpoint folder (HF format); embedded: a weights
    # folder (engine.embedded.weights) instead of the shipped one

    def __post_init__(self) -> None:
        if self.name not in BACKENDS:
            raise ValueError(f"unknown backend {self.name!r}; choose one of {', '.join(BACKENDS)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.name == "musicgen" and self.model_path is None:
            raise ValueError("the musicgen backend needs model_path: a local MusicGen checkpoint folder (HF format)")


def embedded_lm_config():  # type: ignore[no-untyped-def]
    """The embedded model's size: ~8.7 M parameters (4 layers of 384) over the embedded codec's tokens
    (`engine.codec.model.CodecConfig`'s defaults own their shape: 8 codebooks x 256 at 50 Hz)."""
    from engine.codec.model import CodecConfig
    from engine.generate.conditioning import NUM_CONTROLS
    from engine.lm.model import LMConfig
    from engine.music.styles import GENRES

    codec = CodecConfig()
    return LMConfig(
        num_codebooks=codec.num_codebooks, card=codec.codebook_size, num_styles=len(GENRES), num_controls=NUM_CONTROLS
    )


def build_source(config: BackendConfig, prompt: Prompt) -> AudioSource:
    """The source for `config.name`, opening with `prompt`. Heavy imports stay inside.

    musicgen: FileNotFoundError names a missing checkpoint folder; NotMusicgenError (a ValueError) a folder
    holding something else; engine.codec.model.CodecError an EnCodec that cannot decode the decoder's tokens.
    """
    if config.name == "synth":
        from engine.synth.source import StyleSynth, SynthConfig

        return StyleSynth(SynthConfig(sample_rate=config.sample_rate, seed=config.seed), prompt)
    import torch

    from engine.generate.continuation import ContinuationConfig, TokenSource

    continuation = ContinuationConfig(seed=config.seed)
    if config.name == "musicgen":
        from engine.musicgen.source import musicgen_source
        from engine.musicgen.weights import load_musicgen

        assert config.model_path is not None  # checked by BackendConfig
        load = torch.bfloat16 if config.precision == "bfloat16" else torch.float32  # int8 quantizes from float32
        parts = load_musicgen(config.model_path, max_len=continuation.window, dtype=load)
        with_precision(parts.lm, config.precision)
        return musicgen_source(parts, prompt, continuation)

    from engine.embedded.weights import SHIPPED, load_embedded

    lm, codec = load_embedded(SHIPPED if config.model_path is None else config.model_path)
    continuation = replace(continuation, top_k=EMBEDDED_TOP_K)
    return TokenSource(with_precision(lm, config.precision), codec, prompt, continuation)


def with_precision(lm: TokenLM, precision: str) -> TokenLM:
    """Put `lm` (float32 weights, or already bfloat16 for "bfloat16") in one of PRECISIONS, in place.

    int8 quantizes every linear from the float32 weights, then runs the rest in bfloat16.
    """
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "int8":
        lm.quantize_int8()
    return lm.to(torch.float32 if precision == "float32" else torch.bfloat16)
