"""Audio sources by name: `synth`, `embedded` (our token model) and, later, `musicgen`.

Built once at the entry point and injected; no registry. The embedded model has
not been trained yet: until its checkpoint ships, `embedded` runs a seeded random
model of the embedded size (for tests, benchmarks and the live path's plumbing).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.prompt import Prompt
from engine.source import AudioSource

BACKENDS = ("synth", "embedded")
PRECISIONS = ("bfloat16", "float32")


@dataclass(frozen=True)
class BackendConfig:
    name: str = "synth"  # synth | embedded
    seed: int = 0  # sampling / rendering seed
    sample_rate: int = 24000  # Hz; the synth's rate (the embedded codec declares its own)
    precision: str = "bfloat16"  # token model weights and cache: bfloat16 (about 2x faster on CPU) or float32

    def __post_init__(self) -> None:
        if self.name not in BACKENDS:
            raise ValueError(f"unknown backend {self.name!r}; choose one of {', '.join(BACKENDS)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")


def embedded_lm_config():  # type: ignore[no-untyped-def]
    """The embedded model's size: ~10 M parameters, 4 codebooks × 1024 at 50 Hz."""
    from engine.conditioning import NUM_CONTROLS
    from engine.lm import LMConfig
    from engine.styles import GENRES

    return LMConfig(num_styles=len(GENRES), num_controls=NUM_CONTROLS)


def build_source(config: BackendConfig, prompt: Prompt) -> AudioSource:
    """The source for `config.name`, opening with `prompt`. Heavy imports stay inside."""
    if config.name == "synth":
        from engine.synth.source import StyleSynth, SynthConfig

        return StyleSynth(SynthConfig(sample_rate=config.sample_rate, seed=config.seed), prompt)
    import torch

    from engine.codec import Codec, CodecConfig
    from engine.continuation import ContinuationConfig, TokenSource
    from engine.lm import TokenLM

    lm = TokenLM(embedded_lm_config(), seed=config.seed).to(getattr(torch, config.precision))
    codec = Codec.random(CodecConfig(), seed=config.seed)
    return TokenSource(lm, codec, prompt, ContinuationConfig(seed=config.seed))
