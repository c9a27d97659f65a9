"""Small audio measurements for tests and integration checks: tempo, brightness, band levels.

All functions take mono float PCM (any length of a few seconds or more) and are
pure numpy. They are estimators for checking that music follows its controls,
not a beat tracker.
"""

from __future__ import annotations

import numpy as np

HOP_SECONDS = 0.005  # hop of the onset envelope, seconds
FRAME_SECONDS = 0.04  # STFT frame of the onset envelope, seconds


def _frames(x: np.ndarray, frame: int, hop: int) -> np.ndarray:
    """(n_frames, frame) Hann-windowed frames of x (zero-padded at the end)."""
    n = 1 + max(0, len(x) - frame + hop - 1) // hop
    padded = np.concatenate([x, np.zeros(n * hop + frame - len(x))])
    idx = np.arange(frame)[None, :] + hop * np.arange(n)[:, None]  # (n, frame)
    return padded[idx] * np.hanning(frame)[None, :]


def _check(pcm: np.ndarray, sr: int) -> np.ndarray:
    x = np.asarray(pcm, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"pcm must be mono (1-D), got shape {x.shape}")
    if not isinstance(sr, int) or sr <= 0:
        raise ValueError(f"sample rate must be a positive integer, got {sr!r}")
    return x


def onset_envelope(pcm: np.ndarray, sr: int) -> tuple[np.ndarray, float]:
    """(n_frames,) spectral flux of log magnitudes (rises at note/drum onsets) and its frame rate, Hz."""
    x = _check(pcm, sr)
    hop = max(1, round(HOP_SECONDS * sr))
    frame = max(16, round(FRAME_SECONDS * sr))
    mag = np.abs(np.fft.rfft(_frames(x, frame, hop), axis=1))  # (n_frames, frame // 2 + 1)
    logmag = np.log1p(100.0 * mag)
    flux = np.maximum(np.diff(logmag, axis=0), 0.0).sum(axis=1)  # (n_frames - 1,)
    k = max(1, round(0.5 / HOP_SECONDS))  # detrend with a 0.5 s moving mean
    trend = np.convolve(flux, np.ones(k) / k, mode="same")
    return np.maximum(flux - trend, 0.0), sr / hop


def _acf(env: np.ndarray) -> np.ndarray:
    e = env - env.mean()
    size = 1 << int(np.ceil(np.log2(2 * len(e))))
    spec = np.fft.rfft(e, size)
    acf = np.fft.irfft(spec * np.conj(spec), size)[: len(e)]
    return acf / (acf[0] or 1.0)


def _peak(acf: np.ndarray, centre: float, width: float) -> float:
    """Lag of the largest value within centre +- width, refined by a parabola."""
    lo, hi = max(1, int(centre - width)), min(len(acf) - 2, int(np.ceil(centre + width)))
    if hi <= lo:
        return centre
    i = lo + int(np.argmax(acf[lo : hi + 1]))
    a, b, c = acf[i - 1], acf[i], acf[i + 1]
    den = a - 2 * b + c
    if not (b >= a and b >= c and den < 0):  # the window's edge, not a peak: nothing to refine
        return float(i)
    return i + float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))  # a parabola's vertex lies between the neighbours


def estimate_bpm(pcm: np.ndarray, sr: int, lo: float = 60.0, hi: float = 200.0) -> float:
    """Tempo in beats per minute within [lo, hi], from the autocorrelation of the onset envelope.

    The beat lag with the strongest periodicity (its multiples up to a bar count
    too, which favours the beat over sub-beats) is refined on the 4-beat lag.
    """
    if not 0 < lo < hi:
        raise ValueError(f"need 0 < lo < hi, got lo={lo!r}, hi={hi!r}")
    env, fps = onset_envelope(pcm, sr)
    if len(env) < 8 or not np.any(env):
        raise ValueError("pcm is too short or silent to estimate a tempo")
    acf = _acf(env)
    lags = np.arange(max(1, int(60 * fps / hi)), int(np.ceil(60 * fps / lo)) + 1)  # (k,) candidate beat lags
    lags = lags[lags * 4 < len(acf) - 2]
    if len(lags) == 0:
        raise ValueError(f"pcm of {len(pcm) / sr:.1f} s is too short for tempi down to {lo} bpm")
    score = sum(np.interp(lags * m, np.arange(len(acf)), acf) / m for m in (1, 2, 4))  # (k,)
    best = float(lags[int(np.argmax(score))])
    bar = _peak(acf, 4 * best, 2.5)
    return float(np.clip(60.0 * fps * 4 / bar, lo, hi))


def average_spectrum(pcm: np.ndarray, sr: int, frame: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """(frame // 2 + 1,) mean power spectrum over frames, and its frequencies in Hz."""
    x = _check(pcm, sr)
    power = np.abs(np.fft.rfft(_frames(x, frame, frame // 2), axis=1)) ** 2  # (n_frames, frame // 2 + 1)
    return power.mean(axis=0), np.fft.rfftfreq(frame, 1.0 / sr)


def spectral_centroid(pcm: np.ndarray, sr: int) -> float:
    """Magnitude-weighted mean frequency of the whole signal, Hz (higher = brighter)."""
    power, freqs = average_spectrum(pcm, sr)
    mag = np.sqrt(power)
    return float(np.sum(freqs * mag) / (np.sum(mag) or 1.0))


def band_rms(pcm: np.ndarray, sr: int, lo: float, hi: float) -> float:
    """RMS level of the part of the signal between lo and hi Hz (linear, same scale as the pcm)."""
    x = _check(pcm, sr)
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1.0 / sr)
    band = (f >= lo) & (f < hi)
    return float(np.sqrt(2.0 * np.sum(np.abs(spec[band]) ** 2)) / len(x))


def rms_db(pcm: np.ndarray) -> float:
    """RMS level in dBFS."""
    x = np.asarray(pcm, dtype=np.float64)
    return float(20.0 * np.log10(np.sqrt(np.mean(x**2)) + 1e-12))


def onset_rate(pcm: np.ndarray, sr: int, threshold: float = 0.1) -> float:
    """Onsets per second: peaks of the onset envelope above `threshold` x its 99th percentile, >= 40 ms apart."""
    env, fps = onset_envelope(pcm, sr)
    if len(env) < 3 or not np.any(env):
        return 0.0
    floor = threshold * float(np.percentile(env, 99))
    peaks = np.flatnonzero((env[1:-1] > env[:-2]) & (env[1:-1] >= env[2:]) & (env[1:-1] > floor)) + 1
    gap = max(1, round(0.04 * fps))
    kept: list[int] = []
    for p in peaks.tolist():
        if not kept or p - kept[-1] >= gap:
            kept.append(p)
        elif env[p] > env[kept[-1]]:
            kept[-1] = p
    return len(kept) / (len(pcm) / sr)
