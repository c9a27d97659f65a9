"""Audio sources by name: `synth`, `embedded` (our token model) and `musicgen` (MusicGen weights in our loop).

Built once at the entry point and injected; no registry. The embedded model has
not been trained yet: until its checkpoint ships, `embedded` runs a seeded random
model of the embedded size (for tests, benchmarks and the live path's plumbing).
`musicgen` loads transformers' MusicGen from a local checkpoint folder (never the network).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.prompt import Prompt
from engine.source import AudioSource

BACKENDS = ("synth", "embedded", "musicgen")
PRECISIONS = ("int8", "bfloat16", "float32")


@dataclass(frozen=True)
class BackendConfig:
    name: str = "synth"  # synth | embedded | musicgen
    seed: int = 0  # sampling / rendering seed
    sample_rate: int = 24000  # Hz; the synth's rate (the token backends' codecs declare their own)
    precision: str = "int8"  # token model weights: int8 (weight-only, bfloat16 activations; fastest on CPU),
    # bfloat16 or float32; attention runs in float32 on CPU whichever (engine.lm.TokenLM.attention_dtype)
    model_path: Path | None = None  # local MusicGen checkpoint folder (HF format) for the musicgen backend

    def __post_init__(self) -> None:
        if self.name not in BACKENDS:
            raise ValueError(f"unknown backend {self.name!r}; choose one of {', '.join(BACKENDS)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.name == "musicgen" and self.model_path is None:
            raise ValueError("the musicgen backend needs model_path: a local MusicGen checkpoint folder (HF format)")


def embedded_lm_config():  # type: ignore[no-untyped-def]
    """The embedded model's size: ~10.2 M parameters (4 layers of 384), 4 codebooks × 1024 at 50 Hz."""
    from engine.conditioning import NUM_CONTROLS
    from engine.lm import LMConfig
    from engine.styles import GENRES

    return LMConfig(num_styles=len(GENRES), num_controls=NUM_CONTROLS)


def build_source(config: BackendConfig, prompt: Prompt) -> AudioSource:
    """The source for `config.name`, opening with `prompt`. Heavy imports stay inside.

    musicgen: FileNotFoundError names a missing checkpoint folder; NotMusicgenError (a ValueError) a folder
    holding something else; engine.codec.CodecError an EnCodec that cannot decode the decoder's tokens.
    """
    if config.name == "synth":
        from engine.synth.source import StyleSynth, SynthConfig

        return StyleSynth(SynthConfig(sample_rate=config.sample_rate, seed=config.seed), prompt)
    import torch

    from engine.continuation import ContinuationConfig, TokenSource

    continuation = ContinuationConfig(seed=config.seed)
    int8 = config.precision == "int8"
    dtype = torch.bfloat16 if int8 else getattr(torch, config.precision)
    if config.name == "musicgen":
        from engine.musicgen_source import musicgen_source
        from engine.musicgen_weights import load_musicgen

        assert config.model_path is not None  # checked by BackendConfig
        parts = load_musicgen(config.model_path, max_len=continuation.window, dtype=torch.float32 if int8 else dtype)
        if int8:  # quantize from the float32 weights, then run the rest in bfloat16
            parts.lm.quantize_int8().to(dtype)
        return musicgen_source(parts, prompt, continuation)

    from engine.codec import Codec, CodecConfig
    from engine.lm import TokenLM

    lm = TokenLM(embedded_lm_config(), seed=config.seed)
    if int8:
        lm.quantize_int8()
    lm = lm.to(dtype)
    codec = Codec.random(CodecConfig(), seed=config.seed)
    return TokenSource(lm, codec, prompt, continuation)
