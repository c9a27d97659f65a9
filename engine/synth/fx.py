"""Section effects shared by all genres: the build's noise riser and the drop's impact."""

from __future__ import annotations

import numpy as np

from engine.synth.bus import Bus
from engine.synth.drums import impact
from engine.synth.filters import bandpass
from engine.synth.voice import SWEEP_BLOCKS, Span

RISER_LOW = 400.0  # Hz, riser band centre when a build starts
RISER_SPAN = 18.0  # ratio the centre climbs by over a full build


def riser_level(progress: float) -> float:
    return 0.02 + 0.16 * progress**2


class SectionFx:
    def __init__(self, sample_rate: int, seed: int, declick: int) -> None:
        self.sr = sample_rate
        self.seed = seed
        self.impact = impact(sample_rate, np.random.default_rng([seed, 29])) * np.float32(0.8)
        self.riser = Bus(1, declick)
        self.hits = Bus(1, declick)
        self._designs = [bandpass(RISER_LOW, sample_rate, 1.5)]  # the riser's latest filter designs

    def render(self, bar: int, n: int, section: str, build: Span, hit: bool) -> tuple[np.ndarray, np.ndarray]:
        """(n,) dry and (n,) reverb send: a riser while building, an impact on the first bar of a drop."""
        out = self.hits.mix(n, [(0, self.impact)] if hit else [])
        building = section == "build"
        if building or self.riser.last_gain:  # a riser that just ended fades out over the declick time
            noise = np.random.default_rng([self.seed, bar, 31]).standard_normal(n).astype(np.float32)
            if building:
                blocks = 2 * SWEEP_BLOCKS
                centres = [RISER_LOW * RISER_SPAN ** build.at((i + 0.5) / blocks) for i in range(blocks)]
                self._designs = [bandpass(c, self.sr, 1.5) for c in centres]
            swept = self.riser.filter.sweep(self._designs if building else self._designs[-1:], noise)
            levels = (riser_level(build.start), riser_level(build.end)) if building else (0.0, 0.0)
            out = out + swept * self.riser.gain(*levels, n)
        return out, (0.5 * out).astype(np.float32)
