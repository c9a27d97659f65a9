"""Audio quality metrics for the codec and the token model: SI-SNR, log-mel distance, an MP3 anchor, collapse.

Every function takes mono float PCM (numpy, any float dtype, nominally in [-1, 1]) and is pure numpy/scipy
except the PNG writers (matplotlib, Agg, no pyplot state). They are evaluation tools, not training losses.

- `si_snr_db`: scale-invariant SNR of an estimate against its reference.
- `log_mel` / `mel_distance`: log10 mel power (HTK mel scale) and the mean absolute difference of two of them.
- `mp3_roundtrip`: the same audio through libsndfile's LAME at a constant bitrate, aligned back sample for
  sample, as a "what does a cheap classic codec score" anchor for the neural codec.
- `window_verdicts` / `collapse_fraction`: how much of a clip is degenerate (silent, DC, noise) — what a
  collapsed or untrained decoder produces (a random codec decodes to a constant DC offset). A buzz or a
  stuck tone is not caught: it is neither flat nor silent.
- `spectrogram_png` / `compare_png`: pictures for reports.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
from scipy.ndimage import median_filter
from scipy.signal import fftconvolve

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage

MEL_FMIN = 30.0  # lowest edge of the default mel filterbank, Hz
LOG_FLOOR = 1e-5  # floor of the mel power before log10 (-50 dB: white noise at -50 dBFS sits on it)
SILENT_DB = -50.0  # window RMS below this, dBFS: silent
DC_AC_DB = -50.0  # RMS of the window minus its mean below this, dBFS (while the window is not silent): DC
# A window is noise when its mean spectral flatness (geometric / arithmetic mean of the power spectrum, per frame)
# is above NOISE_FLATNESS and it has no tonal line: its time-averaged spectrum nowhere rises more than
# TONAL_PEAK_DB above its running median (over TONAL_MEDIAN_BINS bins) within TONAL_BAND_HZ. Calibrated on
# 12-bar renders of every genre (seeds 0..4) in drop, intro, breakdown, build and at energy 0.1 and 1.0, see
# tests/engine/train/test_metrics.py:
#   flatness  white noise 0.56 (= exp(-Euler gamma), exponentially distributed bin powers), noise filtered to
#             pink (1/f power) 0.20..0.23, brown (1/f^2) 0.002 (not flagged); synth drops, intros, breakdowns
#             and low-energy windows at most 0.07, but builds up to 0.21 (the noise riser and snare roll).
#   tonal     white and pink noise at most 3.4 dB; every synth window at least 12.8 dB (bass, pads, kicks).
# So the flatness threshold sits between music and pink noise, and the tonal guard keeps builds "ok".
NOISE_FLATNESS = 0.12
TONAL_PEAK_DB = 8.0
TONAL_MEDIAN_BINS = 31  # width of the running median the peaks are measured against, FFT bins
TONAL_BAND_HZ = (40.0, 6000.0)  # band searched for tonal lines, Hz
TONAL_FFT = 2048  # STFT size of the tonal measure, samples
FLATNESS_FFT = 1024  # STFT size of the flatness measure, samples
MAX_MP3_LAG = 4096  # largest encoder + decoder delay searched for when aligning the MP3 decode, samples
MP3_KBPS_TOLERANCE = 0.15  # relative deviation of the measured from the requested bitrate still accepted

# libsndfile's mpeg_l3_encoder_set_quality maps compression_level c in [0, 1] linearly onto a LAME CBR bitrate,
# int(hi - c * (hi - lo)) kbps, with (lo, hi) = (32, 320) for MPEG-1 (sample rate >= 32 kHz), (8, 160) for MPEG-2
# (16..32 kHz) and (8, 64) for MPEG-2.5 (< 16 kHz); LAME then snaps that to the nearest legal bitrate. Measured
# with libsndfile 1.2.2 at 24 kHz on 10 s of synth audio: c = 0.0 -> 161 kbps, 0.5 -> 80.5, 0.9 -> 24.1,
# 0.95 -> 16.1, 0.97..0.995 -> 8.04 kbps; c = 1.0 is refused (soundfile sets it while LAME is still in VBR mode,
# where it means VBR quality 10, out of range), so c is capped at MP3_MAX_COMPRESSION.
MP3_MAX_COMPRESSION = 0.995
MP3_RANGES = ((32000, 32, 320), (16000, 8, 160), (0, 8, 64))  # (lowest sample rate Hz, lowest kbps, highest kbps)


def _mono(pcm: np.ndarray, name: str = "pcm") -> np.ndarray:
    x = np.asarray(pcm)
    if x.ndim != 1:
        raise ValueError(f"{name} must be mono (1-D), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{name} must be float PCM, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite samples")
    return x


def _rate(sample_rate: int) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer number of Hz, got {sample_rate!r}")
    return int(sample_rate)


def _db(rms: float) -> float:
    return float(20.0 * np.log10(rms + 1e-12))


def si_snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SNR of `estimate` against `reference`, dB (both made zero-mean; equal lengths)."""
    ref, est = _mono(reference, "reference"), _mono(estimate, "estimate")
    if len(ref) != len(est):
        raise ValueError(f"reference and estimate must have the same length, got {len(ref)} and {len(est)}")
    if len(ref) == 0:
        raise ValueError("reference and estimate are empty")
    ref, est = ref - ref.mean(), est - est.mean()
    energy = float(np.dot(ref, ref))
    if energy == 0.0:
        raise ValueError("reference is constant: SI-SNR is undefined")
    target = (np.dot(est, ref) / energy) * ref  # (samples,) the part of the estimate along the reference
    noise = est - target  # (samples,)
    return float(10.0 * np.log10((np.dot(target, target) + 1e-20) / (np.dot(noise, noise) + 1e-20)))


def _stft_power(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(frames, n_fft // 2 + 1) Hann-windowed power, centred frames (n_fft // 2 zeros each side).

    Scaled by 1 / sum(window^2), so white noise of variance s^2 has power s^2 in every bin.
    """
    padded = np.concatenate([np.zeros(n_fft // 2), x, np.zeros(n_fft // 2 + hop)])
    frames = 1 + len(x) // hop
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)  # (n_fft,) periodic Hann
    views = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:frames]  # (frames, n_fft)
    spec = np.fft.rfft(views * window[None, :], axis=1)  # (frames, n_fft // 2 + 1)
    return (spec.real**2 + spec.imag**2) / float(np.sum(window**2))


def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters on the HTK mel scale (2595 log10(1 + f / 700)), unit peak."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))  # (n_mels + 2,) Hz
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)  # (n_fft // 2 + 1,) Hz
    lo, centre, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # (n_mels, 1) each
    rising = (freqs[None, :] - lo) / (centre - lo)  # (n_mels, bins)
    falling = (hi - freqs[None, :]) / (hi - centre)  # (n_mels, bins)
    bank = np.maximum(0.0, np.minimum(rising, falling))  # (n_mels, bins)
    empty = np.flatnonzero(bank.sum(axis=1) == 0.0)
    if len(empty):
        raise ValueError(
            f"mel band {int(empty[0])} ({edges[empty[0]]:.1f}..{edges[empty[0] + 2]:.1f} Hz) falls between FFT bins "
            f"of {sample_rate / n_fft:.1f} Hz: use fewer mels, a larger n_fft or a higher fmin"
        )
    return bank


def log_mel(
    pcm: np.ndarray,
    sample_rate: int,
    n_mels: int = 64,
    n_fft: int = 1024,
    hop: int = 256,
    fmin: float = MEL_FMIN,
    fmax: float | None = None,
) -> np.ndarray:
    """(frames, n_mels) log10 of mel power (floored at LOG_FLOOR); frame t is centred on sample t * hop."""
    x = _mono(pcm)
    sr = _rate(sample_rate)
    top = sr / 2.0 if fmax is None else float(fmax)
    if n_mels < 1 or n_fft < 16 or hop < 1:
        raise ValueError(f"need n_mels >= 1, n_fft >= 16 and hop >= 1, got {n_mels}, {n_fft}, {hop}")
    if not 0.0 <= fmin < top <= sr / 2.0:
        raise ValueError(f"need 0 <= fmin < fmax <= sample_rate / 2 = {sr / 2}, got fmin={fmin}, fmax={top}")
    bank = mel_filterbank(sr, n_fft, n_mels, float(fmin), top)  # (n_mels, bins)
    power = _stft_power(x, n_fft, hop)  # (frames, bins)
    return np.log10(np.maximum(power @ bank.T, LOG_FLOOR))  # (frames, n_mels)


def mel_distance(reference: np.ndarray, estimate: np.ndarray, sample_rate: int, fmax: float | None = None) -> float:
    """Mean absolute difference of the two `log_mel`s (log10 units), over the frames both have.

    A missing band costs its full depth down to the floor: 8 kbps MP3 at 24 kHz (LAME low-passes it near
    1.5 kHz) scores worse over the full band than white noise does; pass `fmax` (Hz) to average only over the
    default `log_mel` bands that lie wholly below it.
    """
    a = log_mel(reference, sample_rate)  # (frames_a, n_mels)
    b = log_mel(estimate, sample_rate)  # (frames_b, n_mels)
    n = min(len(a), len(b))
    bands = a.shape[1]
    if fmax is not None:
        mels = np.linspace(_hz_to_mel(MEL_FMIN), _hz_to_mel(sample_rate / 2.0), bands + 2)  # (n_mels + 2,)
        tops = _mel_to_hz(mels)[2:]  # (n_mels,) upper edge of each band, Hz
        bands = int(np.sum(tops <= fmax))
        if bands == 0:
            raise ValueError(f"no mel band lies wholly below fmax={fmax} Hz")
    return float(np.mean(np.abs(a[:n, :bands] - b[:n, :bands])))


def best_lag(reference: np.ndarray, delayed: np.ndarray, max_lag: int = MAX_MP3_LAG) -> int:
    """The lag 0..max_lag (samples) at which `delayed[lag:]` best matches `reference` (largest cross-correlation)."""
    ref, dly = _mono(reference, "reference"), _mono(delayed, "delayed")
    if max_lag < 0:
        raise ValueError(f"max_lag must be >= 0, got {max_lag}")
    if len(ref) == 0:
        raise ValueError("reference is empty")
    dly = np.concatenate([dly, np.zeros(max(0, len(ref) + max_lag - len(dly)))])[: len(ref) + max_lag]
    corr = fftconvolve(dly, ref[::-1], mode="valid")  # (max_lag + 1,) corr[k] = sum_n ref[n] * dly[n + k]
    return int(np.argmax(corr))


@dataclass(frozen=True)
class Mp3Result:
    pcm: np.ndarray  # (samples,) float32, the decoded audio aligned to the input, same length
    kbps: float  # measured bitrate of the encoded stream, kbit/s (bytes * 8 / seconds / 1000, headers included)
    compression_level: float  # the libsndfile compression level used, 0..1
    delay: int  # encoder + decoder delay removed, samples


def mp3_compression_level(sample_rate: int, kbps: int) -> float:
    """The libsndfile compression_level that asks LAME for `kbps` CBR at `sample_rate` (see MP3_RANGES)."""
    sr = _rate(sample_rate)
    lo, hi = next((lo, hi) for min_sr, lo, hi in MP3_RANGES if sr >= min_sr)
    if not lo <= kbps <= hi:
        raise ValueError(f"MP3 at {sr} Hz supports {lo}..{hi} kbps, got {kbps}")
    level = (hi - kbps - 0.5) / (hi - lo)  # int(hi - level * (hi - lo)) == kbps
    return float(min(MP3_MAX_COMPRESSION, max(0.0, level)))


def mp3_roundtrip(pcm: np.ndarray, sample_rate: int, kbps: int = 8) -> Mp3Result:
    """`pcm` through MP3 at `kbps` constant bitrate and back, delay removed, exactly len(pcm) samples.

    Raises ValueError when LAME does not deliver the bitrate (it snaps to the nearest legal MPEG bitrate of the
    sample rate's MPEG version; measured more than MP3_KBPS_TOLERANCE off the request).
    """
    x = _mono(pcm)  # clipped to [-1, 1] for the encoder
    sr = _rate(sample_rate)
    if len(x) < sr // 4:
        raise ValueError(f"pcm of {len(x)} samples is too short to measure an MP3 bitrate; give >= 0.25 s")
    level = mp3_compression_level(sr, kbps)
    buf = io.BytesIO()
    sf.write(
        buf,
        np.clip(x, -1.0, 1.0).astype(np.float32),
        sr,
        format="MP3",
        subtype="MPEG_LAYER_III",
        bitrate_mode="CONSTANT",
        compression_level=level,
    )
    measured = len(buf.getvalue()) * 8.0 / (len(x) / sr) / 1000.0
    if abs(measured - kbps) > MP3_KBPS_TOLERANCE * kbps:
        raise ValueError(
            f"MP3 at {sr} Hz with compression_level {level:.3f} gave {measured:.1f} kbps, not {kbps} kbps: "
            "that bitrate is not a legal MPEG bitrate at this sample rate"
        )
    buf.seek(0)
    decoded, decoded_sr = sf.read(buf, dtype="float64", always_2d=False)
    if decoded_sr != sr:
        raise ValueError(f"the MP3 decoded at {decoded_sr} Hz instead of {sr} Hz")
    if decoded.ndim != 1:
        decoded = decoded.mean(axis=1)
    # The decoder trims LAME's 1105-sample delay itself only when the first frame could carry the LAME tag: at
    # 24 kHz it does at 64 kbps (delay 0 here) but not at 8..32 kbps (frames too small; delay 1105 here).
    delay = best_lag(x, decoded, MAX_MP3_LAG)
    out = decoded[delay : delay + len(x)]  # (<= samples,)
    out = np.concatenate([out, np.zeros(len(x) - len(out))])  # (samples,)
    return Mp3Result(out.astype(np.float32), float(measured), level, delay)


@dataclass(frozen=True)
class WindowVerdict:
    start_s: float  # window start, seconds
    verdict: str  # "ok", "silent", "dc" or "noise"
    rms_db: float  # RMS of the window, dBFS
    ac_rms_db: float  # RMS of the window minus its mean, dBFS
    flatness: float  # mean spectral flatness of the window's frames, 0..1
    tonal_db: float  # highest tonal line above the running median of the averaged spectrum, dB

    @property
    def degenerate(self) -> bool:
        return self.verdict != "ok"


def spectral_flatness(pcm: np.ndarray, n_fft: int = FLATNESS_FFT) -> float:
    """Mean over frames of geometric / arithmetic mean of the power spectrum (1 = white, ~0 = tonal)."""
    x = _mono(pcm)
    power = _stft_power(x - x.mean(), n_fft, n_fft // 2)[:, 1:] + 1e-12  # (frames, bins), DC bin dropped
    flat = np.exp(np.mean(np.log(power), axis=1)) / np.mean(power, axis=1)  # (frames,)
    return float(np.mean(flat))


def tonal_peak_db(pcm: np.ndarray, sample_rate: int) -> float:
    """How far the strongest tonal line of the time-averaged spectrum rises above its running median, dB.

    Stationary noise stays within a few dB (its averaged bins scatter little); music with any held or repeated
    pitch (bass, pads, kicks) has lines 10+ dB up. Searched within TONAL_BAND_HZ.
    """
    x = _mono(pcm)
    sr = _rate(sample_rate)
    power = _stft_power(x - x.mean(), TONAL_FFT, TONAL_FFT // 4).mean(axis=0) + 1e-20  # (bins,)
    envelope = median_filter(power, size=TONAL_MEDIAN_BINS, mode="nearest")  # (bins,)
    freqs = np.fft.rfftfreq(TONAL_FFT, 1.0 / sr)  # (bins,) Hz
    band = (freqs >= TONAL_BAND_HZ[0]) & (freqs < min(TONAL_BAND_HZ[1], sr / 2))  # (bins,)
    return float(10.0 * np.log10(np.max(power[band] / envelope[band])))


def window_verdicts(pcm: np.ndarray, sample_rate: int, window_s: float = 1.0) -> list[WindowVerdict]:
    """One verdict per whole window of `window_s` (a clip shorter than one window is one window)."""
    x = _mono(pcm)
    sr = _rate(sample_rate)
    if not window_s > 0:
        raise ValueError(f"window_s must be > 0, got {window_s!r}")
    if len(x) == 0:
        raise ValueError("pcm is empty")
    size = max(1, round(window_s * sr))
    starts = list(range(0, len(x) - size + 1, size)) or [0]
    verdicts = []
    for start in starts:
        w = x[start : start + size]  # (window,)
        rms, ac = _db(float(np.sqrt(np.mean(w**2)))), _db(float(np.std(w)))
        live = ac >= DC_AC_DB
        flat = spectral_flatness(w) if live else 0.0
        tonal = tonal_peak_db(w, sr) if live else 0.0
        if rms < SILENT_DB:
            verdict = "silent"
        elif not live:
            verdict = "dc"
        elif flat > NOISE_FLATNESS and tonal < TONAL_PEAK_DB:
            verdict = "noise"
        else:
            verdict = "ok"
        verdicts.append(WindowVerdict(start / sr, verdict, rms, ac, flat, tonal))
    return verdicts


def collapse_fraction(pcm: np.ndarray, sample_rate: int, window_s: float = 1.0) -> float:
    """Fraction of windows that are degenerate (silent, DC or noise), 0..1; 0 for healthy music."""
    verdicts = window_verdicts(pcm, sample_rate, window_s)
    return sum(v.degenerate for v in verdicts) / len(verdicts)


def _draw(ax: Axes, pcm: np.ndarray, sample_rate: int, title: str, marks: Sequence[tuple[float, str]]) -> AxesImage:
    hop = 256
    mel = log_mel(pcm, sample_rate, hop=hop)  # (frames, n_mels)
    seconds = len(mel) * hop / sample_rate
    extent = (0.0, seconds, 0.0, float(mel.shape[1]))
    image = ax.imshow(mel.T, origin="lower", aspect="auto", extent=extent, cmap="magma", vmin=-5.0)
    for at, text in marks:
        ax.axvline(at, color="cyan", linewidth=1.0)
        ax.text(at, mel.shape[1] * 0.97, f" {text}", color="cyan", va="top", fontsize=8)
    ax.set_title(title)
    ax.set_xlabel("time, s")
    ax.set_ylabel("mel band")
    return image


def _figure(width: float, height: float) -> Figure:
    """A figure on its own Agg canvas: no pyplot, no global backend switch."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=100)
    return out


def _width(samples: int, sample_rate: int) -> float:
    return max(6.0, min(20.0, samples / _rate(sample_rate) / 2.0))  # inches: 2 s per inch, 6..20


def spectrogram_png(
    pcm: np.ndarray, sample_rate: int, path: str | Path, title: str, marks: Sequence[tuple[float, str]] = ()
) -> Path:
    """Write a log-mel spectrogram PNG, seconds on x, a labelled vertical line at each (seconds, text) mark."""
    x = _mono(pcm)
    fig = _figure(_width(len(x), sample_rate), 3.5)
    ax = fig.add_subplot(1, 1, 1)
    fig.colorbar(_draw(ax, x, sample_rate, title, marks), ax=ax, label="log10 power")
    return _save(fig, path)


def compare_png(
    reference: np.ndarray, estimate: np.ndarray, sample_rate: int, path: str | Path, titles: Sequence[str]
) -> Path:
    """Write two log-mel spectrograms stacked (e.g. before / after the codec) on a shared time axis."""
    if len(titles) != 2:
        raise ValueError(f"titles must be two strings (top, bottom), got {titles!r}")
    ref, est = _mono(reference, "reference"), _mono(estimate, "estimate")
    fig = _figure(_width(max(len(ref), len(est)), sample_rate), 6.5)
    axes = fig.subplots(2, 1, sharex=True)
    for ax, audio, title in zip(axes, (ref, est), titles, strict=True):
        fig.colorbar(_draw(ax, audio, sample_rate, title, ()), ax=ax, label="log10 power")
    axes[0].set_xlabel("")
    return _save(fig, path)
