"""Band-limited periodic tones as seamless loops, cached per (spectrum, pitch).

A loop holds a whole number of cycles, so tiling it is click-free and costs a
memcpy instead of per-sample oscillator maths. The loop length is ~`loop_seconds`
rounded so `cycles * sample_rate / length` is the wanted frequency to within
~0.1 cent. Each loop is made by an inverse FFT from its harmonic amplitudes, so
no partial reaches Nyquist: no aliasing at any pitch.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType

import numpy as np
from scipy import fft as sfft


def _saw(k: np.ndarray) -> np.ndarray:
    return 1.0 / k


def _soft_saw(k: np.ndarray) -> np.ndarray:
    return np.exp(-k / 10.0) / k


def _square(k: np.ndarray) -> np.ndarray:
    return np.where(k % 2 == 1, 1.0 / k, 0.0)


def _soft_square(k: np.ndarray) -> np.ndarray:
    return np.where(k % 2 == 1, np.exp(-k / 8.0) / k, 0.0)


def _triangle(k: np.ndarray) -> np.ndarray:
    return np.where(k % 2 == 1, 1.0 / k**2, 0.0)


def _sine(k: np.ndarray) -> np.ndarray:
    return np.where(k == 1, 1.0, 0.0)


def _epiano(k: np.ndarray) -> np.ndarray:
    # tine-like: strong fundamental, a bell-ish 2nd/3rd, quickly falling top
    return np.select([k == 1, k == 2, k == 3, k == 4], [1.0, 0.5, 0.3, 0.2], 1.2 * np.exp(-k / 6.0) / k)


def _mellow(k: np.ndarray) -> np.ndarray:
    return np.select([k == 1, k == 2, k == 3], [1.0, 0.18, 0.05], 0.0)


def _organ(k: np.ndarray) -> np.ndarray:
    return np.select([k == 1, k == 2, k == 3, k == 4, k == 6, k == 8], [1.0, 0.6, 0.3, 0.35, 0.15, 0.1], 0.0)


SPECTRA: MappingProxyType[str, Callable[[np.ndarray], np.ndarray]] = MappingProxyType(
    {
        "saw": _saw,
        "soft_saw": _soft_saw,
        "square": _square,
        "soft_square": _soft_square,
        "triangle": _triangle,
        "sine": _sine,
        "epiano": _epiano,
        "mellow": _mellow,
        "organ": _organ,
    }
)


class ToneBank:
    """Caches one loop per (spectrum, frequency); owned by one synth (not shared, not thread-safe)."""

    def __init__(self, sample_rate: int, loop_seconds: float = 0.1) -> None:
        self.sample_rate = sample_rate
        self.loop_seconds = loop_seconds
        self._loops: dict[tuple[str, float], np.ndarray] = {}

    def loop(self, spectrum: str, hz: float) -> np.ndarray:
        """(length,) float32 loop of `spectrum` at `hz`, peak-normalised to 1."""
        key = (spectrum, round(hz, 3))
        cached = self._loops.get(key)
        if cached is not None:
            return cached
        if spectrum not in SPECTRA:
            raise ValueError(f"unknown spectrum {spectrum!r}; known: {', '.join(SPECTRA)}")
        sr = self.sample_rate
        cycles = max(1, round(hz * self.loop_seconds))
        length = max(4, round(cycles * sr / hz))
        n_harm = int((0.45 * sr) // hz)  # partials strictly below 0.45 * sample_rate
        spec = np.zeros(length // 2 + 1, dtype=np.complex128)  # (length // 2 + 1,)
        if n_harm >= 1:
            k = np.arange(1, n_harm + 1, dtype=np.float64)  # (n_harm,) harmonic numbers
            amp = SPECTRA[spectrum](k)
            taper = np.clip((0.45 * sr - k * hz) / (0.1 * sr), 0.0, 1.0)  # fade partials near the top
            bins = (k * cycles).astype(np.int64)
            ok = bins < len(spec)
            spec[bins[ok]] = (amp * taper)[ok] * -1j  # sine phase: starts at 0
        wave = sfft.irfft(spec, n=length)  # (length,)
        peak = float(np.max(np.abs(wave))) or 1.0
        out = (wave / peak).astype(np.float32)
        self._loops[key] = out
        return out

    def tone(self, spectrum: str, hz: float, n: int, start: int = 0) -> np.ndarray:
        """(n,) float32 tone, the loop tiled from phase offset `start` samples."""
        loop = self.loop(spectrum, hz)
        size = len(loop)
        s = start % size
        reps = (s + n + size - 1) // size
        return np.tile(loop, reps)[s : s + n]
