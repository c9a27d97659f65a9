"""Configuration of the procedural style synth."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SynthConfig:
    sample_rate: int = 24000  # Hz, mono output
    seed: int = 0  # seeds every random choice (patterns, noise, melodies); same seed -> same audio
    key: int = 9  # tonic pitch class, 0 = C ... 9 = A; shared by all genres so blends stay in key
    blend_threshold: float = 0.05  # genre weight below which a genre is not rendered at all
    blend_full: float = 0.15  # genre weight from which a genre plays at its full (sqrt-weight) level
    build_bars: int = 8  # bars over which a build's snare roll and riser grow to their peak
    reverb_seconds: float = 3.0  # length of the shared reverb impulse response, seconds
    master_gain: float = 0.6  # linear gain before the soft limiter
    declick_seconds: float = 0.01  # seconds over which a jump in a bus gain is smoothed

    def __post_init__(self) -> None:
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int):
            raise ValueError(f"sample_rate must be an integer number of Hz, got {self.sample_rate!r}")
        if not 8000 <= self.sample_rate <= 96000:
            raise ValueError(f"sample_rate must be within 8000..96000 Hz, got {self.sample_rate!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if isinstance(self.key, bool) or not isinstance(self.key, int) or not 0 <= self.key <= 11:
            raise ValueError(f"key must be a pitch class 0..11, got {self.key!r}")
        if not 0.0 <= self.blend_threshold < self.blend_full <= 1.0:
            raise ValueError(
                f"need 0 <= blend_threshold < blend_full <= 1, got {self.blend_threshold!r}, {self.blend_full!r}"
            )
        if isinstance(self.build_bars, bool) or not isinstance(self.build_bars, int) or self.build_bars < 1:
            raise ValueError(f"build_bars must be a positive integer, got {self.build_bars!r}")
        if not 0.1 <= self.reverb_seconds <= 10.0:
            raise ValueError(f"reverb_seconds must be within 0.1..10, got {self.reverb_seconds!r}")
        if not 0.0 < self.master_gain <= 4.0:
            raise ValueError(f"master_gain must be within (0, 4], got {self.master_gain!r}")
        if not 0.0 < self.declick_seconds <= 0.1:
            raise ValueError(f"declick_seconds must be within (0, 0.1], got {self.declick_seconds!r}")
