"""Bar timing under a tempo that may glide: beats -> seconds -> samples (pure).

Within a bar the tempo moves linearly *in beats* from `bpm0` at the downbeat to
`bpm1` at the next downbeat: bpm(x) = bpm0 + k x with k = (bpm1 - bpm0) / 4. The
time of beat x is t(x) = integral_0^x 60 / bpm(u) du = (60 / k) ln(1 + k x / bpm0),
which tends to 60 x / bpm0 as k -> 0. Consecutive bars share the boundary tempo,
so the tempo curve is continuous: a ramp over several bars has no jumps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.music.meter import BEATS_PER_BAR


def beat_seconds(beats: np.ndarray | float, bpm0: float, bpm1: float) -> np.ndarray:
    """Seconds from the downbeat to `beats` (any shape); beats past the bar keep tempo `bpm1`."""
    x = np.asarray(beats, dtype=np.float64)
    k = (bpm1 - bpm0) / BEATS_PER_BAR  # bpm per beat
    xin = np.minimum(x, BEATS_PER_BAR)
    if abs(k) < 1e-9 * bpm0:
        t = 60.0 * xin / bpm0
    else:
        t = (60.0 / k) * np.log1p(k * xin / bpm0)
    return t + 60.0 * np.maximum(x - BEATS_PER_BAR, 0.0) / bpm1


def bar_seconds(bpm0: float, bpm1: float) -> float:
    """Duration of one bar whose tempo glides from bpm0 to bpm1, seconds."""
    return float(beat_seconds(float(BEATS_PER_BAR), bpm0, bpm1))


@dataclass(frozen=True)
class BarGrid:
    """Maps beats of one bar to sample offsets from its downbeat.

    The bar is `samples` long (its exact duration rounded to a whole sample);
    beats are placed proportionally so the last beat ends exactly on the next bar.
    """

    sample_rate: int  # Hz
    bpm0: float  # tempo at the downbeat, beats per minute
    bpm1: float  # tempo at the next downbeat, beats per minute

    @property
    def seconds(self) -> float:
        return bar_seconds(self.bpm0, self.bpm1)

    @property
    def samples(self) -> int:
        return max(1, round(self.seconds * self.sample_rate))

    def offset(self, beats: float) -> int:
        """Sample offset of a beat position (may exceed the bar for tails)."""
        return int(self.offsets(np.asarray([beats]))[0])

    def offsets(self, beats: np.ndarray) -> np.ndarray:
        """(k,) beat positions -> (k,) int64 sample offsets from the downbeat."""
        scale = self.samples / self.seconds  # samples per second, ~sample_rate
        return np.round(beat_seconds(beats, self.bpm0, self.bpm1) * scale).astype(np.int64)
