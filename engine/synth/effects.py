"""Master effects: a streaming convolution reverb and a soft limiter."""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft

from engine.synth.filters import apply, highpass, lowpass


def reverb_ir(sample_rate: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """(n,) float32 impulse response: a bright early part and a darker, longer tail; ~unit energy."""
    n = round(seconds * sample_rate)
    t = np.arange(n) / sample_rate  # (n,) seconds
    pre = round(0.018 * sample_rate)  # pre-delay, samples
    bright = rng.standard_normal(n) * np.exp(-t / 0.12)
    dark = apply(lowpass(2500.0, sample_rate, 0.5), rng.standard_normal(n)) * np.exp(-t / (seconds / 6.9 * 1.3))
    ir = 0.5 * bright + 1.6 * dark
    ir[-round(0.05 * sample_rate) :] *= np.linspace(1.0, 0.0, round(0.05 * sample_rate))
    ir = np.concatenate([np.zeros(pre), ir])[:n]
    ir = apply(np.vstack([highpass(350.0, sample_rate), highpass(350.0, sample_rate)]), ir)  # no muddy low tail
    return (ir / np.sqrt(np.sum(ir**2))).astype(np.float32)


class Reverb:
    """Overlap-add FFT convolution; the tail past each block is carried into the next."""

    def __init__(self, ir: np.ndarray) -> None:
        self._ir = ir.astype(np.float64)
        self._spectra: dict[int, np.ndarray] = {}  # fft size -> rfft of the IR
        self._carry = np.zeros(0, dtype=np.float32)

    def process(self, x: np.ndarray) -> np.ndarray:
        """(n,) dry send -> (n,) float32 wet signal."""
        n = len(x)
        if not np.any(x) and not np.any(self._carry):
            return np.zeros(n, dtype=np.float32)
        size = sfft.next_fast_len(n + len(self._ir) - 1, real=True)
        spec = self._spectra.get(size)
        if spec is None:
            if len(self._spectra) > 8:
                self._spectra.clear()
            spec = self._spectra[size] = sfft.rfft(self._ir, size)
        y = sfft.irfft(sfft.rfft(x, size) * spec, size)[: n + len(self._ir) - 1].astype(np.float32)
        y[: len(self._carry)] += self._carry
        self._carry = y[n:].copy()
        return y[:n]


def soft_limit(x: np.ndarray, knee: float = 0.8) -> np.ndarray:
    """Identity below `knee`, tanh-compressed above, never reaching 1 (peak < 1, no memory, no clicks)."""
    a = np.abs(x)
    over = a > knee
    if not np.any(over):
        return x
    y = x.copy()
    room = 1.0 - knee
    y[over] = np.sign(x[over]) * (knee + room * np.tanh((a[over] - knee) / room))
    return y
