"""Biquad filters (RBJ cookbook) and a stateful, time-varying filter for streaming.

Coefficients are plain maths (no scipy design call per block), so a cutoff can
move every sub-block cheaply; the filter state (`zi` of scipy.signal.sosfilt)
carries across blocks and bars, so there is no click where blocks meet.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import sosfilt


def _clamp_hz(hz: float, sample_rate: int) -> float:
    return min(max(hz, 10.0), 0.45 * sample_rate)


def lowpass(hz: float, sample_rate: int, q: float = 0.707) -> np.ndarray:
    """(1, 6) second-order low-pass section."""
    w = 2.0 * math.pi * _clamp_hz(hz, sample_rate) / sample_rate
    c, alpha = math.cos(w), math.sin(w) / (2.0 * q)
    b = np.array([(1 - c) / 2, 1 - c, (1 - c) / 2])
    a = np.array([1 + alpha, -2 * c, 1 - alpha])
    return np.concatenate([b / a[0], a / a[0]])[None, :]


def highpass(hz: float, sample_rate: int, q: float = 0.707) -> np.ndarray:
    """(1, 6) second-order high-pass section."""
    w = 2.0 * math.pi * _clamp_hz(hz, sample_rate) / sample_rate
    c, alpha = math.cos(w), math.sin(w) / (2.0 * q)
    b = np.array([(1 + c) / 2, -(1 + c), (1 + c) / 2])
    a = np.array([1 + alpha, -2 * c, 1 - alpha])
    return np.concatenate([b / a[0], a / a[0]])[None, :]


def bandpass(hz: float, sample_rate: int, q: float = 1.0) -> np.ndarray:
    """(1, 6) second-order band-pass section, 0 dB at the centre."""
    w = 2.0 * math.pi * _clamp_hz(hz, sample_rate) / sample_rate
    c, alpha = math.cos(w), math.sin(w) / (2.0 * q)
    b = np.array([alpha, 0.0, -alpha])
    a = np.array([1 + alpha, -2 * c, 1 - alpha])
    return np.concatenate([b / a[0], a / a[0]])[None, :]


def apply(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    """One-off (stateless) filtering of a one-shot, float32 out."""
    return sosfilt(sos, x).astype(np.float32)


class StreamFilter:
    """A chain of biquads whose design may change per block; state persists across calls."""

    def __init__(self, sections: int) -> None:
        self._zi = np.zeros((sections, 2))  # (sections, 2) DF2T state of sosfilt

    def process(self, sos: np.ndarray, x: np.ndarray) -> np.ndarray:
        """(n,) -> (n,) float32 through `sos` (sections, 6)."""
        if sos.shape[0] != self._zi.shape[0]:
            raise ValueError(f"filter has {self._zi.shape[0]} sections, got sos of shape {sos.shape}")
        y, self._zi = sosfilt(sos, x, zi=self._zi)
        return y.astype(np.float32)

    def sweep(self, design: list[np.ndarray], x: np.ndarray) -> np.ndarray:
        """Filter (n,) in len(design) equal blocks, block i through design[i] (a moving cutoff)."""
        if len(design) == 1:
            return self.process(design[0], x)
        edges = np.linspace(0, len(x), len(design) + 1).astype(np.int64)  # (blocks + 1,)
        out = np.empty(len(x), dtype=np.float32)
        for sos, a, b in zip(design, edges[:-1], edges[1:], strict=True):
            out[a:b] = self.process(sos, x[a:b])
        return out
