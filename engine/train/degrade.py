"""Generic channel degradations, for teaching the style judge to hear the music rather than the channel.

`degrade(pcm, sr, rng)` applies one random degradation of the kind a listener meets: MP3 at 8 to 32 kbps,
a low-pass at 3 to 10 kHz, a high-pass at 80 to 300 Hz (a phone's speaker), hiss at 20 to 40 dB below the
signal, a spectral tilt of 2 to 6 dB either way, or a low-pass then MP3 at 8 kbps. (No level change: the
features are scaled to one RMS first.) None of them is our codec: the judge that grades the codec must never
have been fitted on the codec's own artefacts.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfilt

from engine.train.metrics import mp3_roundtrip

MP3_KBPS = (8, 16, 24, 32)  # bitrates of the MP3 round trips
LOWPASS_HZ = (3000.0, 10000.0)  # range of low-pass cutoffs, Hz
NOISE_DB = (20.0, 40.0)  # range of signal-to-hiss ratios, dB
HIGHPASS_HZ = (80.0, 300.0)  # range of high-pass cutoffs, Hz
TILT_DB = (2.0, 6.0)  # range of the boost or cut above TILT_HZ, dB
TILT_HZ = 1500.0  # corner of the tilt, Hz
KINDS = ("mp3", "lowpass", "highpass", "noise", "tilt", "lowpass+mp3")


def _lowpass(x: np.ndarray, hz: float, sample_rate: int) -> np.ndarray:
    return sosfilt(butter(6, min(hz, 0.45 * sample_rate), fs=sample_rate, output="sos"), x)


def degrade(pcm: np.ndarray, sample_rate: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """(degraded float32 copy of the same length, the kind applied); `pcm` is mono."""
    x = np.asarray(pcm, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"pcm must be mono (1-D), got shape {x.shape}")
    kind = KINDS[int(rng.integers(len(KINDS)))]
    if kind == "mp3":
        y = mp3_roundtrip(x, sample_rate, int(rng.choice(MP3_KBPS))).pcm
    elif kind == "lowpass":
        y = _lowpass(x, float(rng.uniform(*LOWPASS_HZ)), sample_rate)
    elif kind == "noise":
        rms = float(np.sqrt(np.mean(x**2)))
        y = x + rng.normal(0.0, rms * 10 ** (-rng.uniform(*NOISE_DB) / 20), len(x))
    elif kind == "highpass":
        y = sosfilt(butter(4, float(rng.uniform(*HIGHPASS_HZ)), btype="highpass", fs=sample_rate, output="sos"), x)
    elif kind == "tilt":
        low = sosfilt(butter(1, TILT_HZ, fs=sample_rate, output="sos"), x)
        db = float(rng.uniform(*TILT_DB)) * float(rng.choice((-1.0, 1.0)))
        y = x + (10 ** (db / 20) - 1) * (x - low)
    else:  # lowpass+mp3
        y = mp3_roundtrip(_lowpass(x, float(rng.uniform(4000.0, 9000.0)), sample_rate), sample_rate, 8).pcm
    out = np.zeros(len(x), dtype=np.float32)
    n = min(len(x), len(y))
    out[:n] = np.asarray(y[:n], dtype=np.float32)
    return out, kind
