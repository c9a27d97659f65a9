"""Drum one-shots synthesised once per genre at construction (pure functions of spec + rng).

Every one-shot starts at (near) zero and fades to exactly zero, so placing it
anywhere in a bar never clicks.
"""

from __future__ import annotations

import numpy as np

from engine.synth.filters import apply, bandpass, highpass, lowpass
from engine.synth.specs import KickSpec, KitSpec, SnareSpec


def _t(seconds: float, sr: int) -> np.ndarray:
    return np.arange(max(1, round(seconds * sr))) / sr  # (n,) seconds


def _fade(x: np.ndarray, sr: int, seconds: float = 0.005) -> np.ndarray:
    """Fade the last `seconds` to zero (and the first sample ramp in), float32."""
    n = min(len(x), max(1, round(seconds * sr)))
    y = x.astype(np.float32).copy()
    y[-n:] *= np.linspace(1.0, 0.0, n, dtype=np.float32)
    m = min(len(y), max(1, round(0.0005 * sr)))
    y[:m] *= np.linspace(0.0, 1.0, m, dtype=np.float32)
    return y


def _norm(x: np.ndarray, peak: float = 1.0) -> np.ndarray:
    return (x * (peak / (float(np.max(np.abs(x))) or 1.0))).astype(np.float32)


def kick(spec: KickSpec, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = _t(7.0 * spec.decay + 0.05, sr)
    hz = spec.f_end + (spec.f_start - spec.f_end) * np.exp(-t / spec.pitch_decay)  # (n,) Hz
    phase = 2.0 * np.pi * np.cumsum(hz) / sr
    body = np.sin(phase) * np.exp(-t / spec.decay)
    click = apply(bandpass(2500.0, sr, 0.8), rng.standard_normal(len(t))) * np.exp(-t / 0.003)
    x = body + spec.click * click
    x = np.tanh(spec.drive * x) / np.tanh(spec.drive)
    return _fade(_norm(x, 0.8), sr, 0.02)


def snare(spec: SnareSpec, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = _t(0.45 + spec.gate, sr)
    body = (np.sin(2 * np.pi * spec.tone * t) + 0.5 * np.sin(2 * np.pi * spec.tone * 1.65 * t)) * np.exp(
        -t / spec.tone_decay
    )
    noise = rng.standard_normal(len(t))
    noise = apply(bandpass(spec.noise_hz, sr, 0.6), noise) + 0.3 * apply(highpass(6000.0, sr), noise)
    x = (1 - spec.noise_level) * body + spec.noise_level * 2.0 * noise * np.exp(-t / spec.noise_decay)
    if spec.gate > 0:
        # the 80s gated reverb: a dense noisy body held flat, then cut
        tail = apply(lowpass(6000.0, sr), rng.standard_normal(len(t))) * 0.45
        gate = np.clip((spec.gate - t) / 0.02, 0.0, 1.0) * (1 - np.exp(-t / 0.01))
        x = x + tail * gate
    return _fade(_norm(x, 0.9), sr, 0.01)


def clap(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = _t(0.35, sr)
    env = sum(np.where(t >= d, np.exp(-(t - d) / 0.006), 0.0) for d in (0.0, 0.011, 0.022))
    env = env + np.where(t >= 0.03, 0.6 * np.exp(-(t - 0.03) / 0.09), 0.0)
    noise = rng.standard_normal(len(t))
    x = (apply(bandpass(1500.0, sr, 0.9), noise) + 0.4 * apply(highpass(3500.0, sr), noise)) * env
    return _fade(_norm(x, 1.0), sr)


def hat(decay: float, cut: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = _t(min(1.0, decay * 6 + 0.02), sr)
    noise = rng.standard_normal(len(t))
    # a little metal: a few inharmonic square-ish partials under the noise
    metal = sum(np.sign(np.sin(2 * np.pi * f * t)) for f in (317.0, 465.0, 562.0, 793.0))
    x = apply(highpass(cut, sr, 0.9), noise + 0.35 * metal)
    x = x * np.exp(-t / decay)
    return _fade(_norm(x, 0.8), sr)


def shaker(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = _t(0.09, sr)
    env = np.minimum(t / 0.012, 1.0) * np.exp(-t / 0.025)
    x = apply(bandpass(6500.0, sr, 1.0), rng.standard_normal(len(t))) * env
    return _fade(_norm(x, 0.45), sr)


def rim(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = _t(0.06, sr)
    x = np.sin(2 * np.pi * 1700 * t) * np.exp(-t / 0.008) + 0.4 * apply(
        bandpass(3000.0, sr, 2.0), rng.standard_normal(len(t))
    ) * np.exp(-t / 0.004)
    return _fade(_norm(x, 0.6), sr)


def ride(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = _t(0.9, sr)
    freqs, phases = (2890.0, 4330.0, 5210.0, 6470.0), rng.random(4) * 6.0
    partials = sum(np.sin(2 * np.pi * f * t + p) for f, p in zip(freqs, phases, strict=True))
    noise = apply(highpass(5000.0, sr), rng.standard_normal(len(t)))
    x = (0.5 * partials + noise) * np.exp(-t / 0.3)
    return _fade(_norm(x, 0.4), sr, 0.02)


def perc(sr: int, rng: np.random.Generator) -> np.ndarray:
    """A short tuned conga/tom-ish hit."""
    t = _t(0.25, sr)
    hz = 280.0 + 120.0 * np.exp(-t / 0.01)
    x = np.sin(2 * np.pi * np.cumsum(hz) / sr) * np.exp(-t / 0.06)
    x = x + 0.1 * apply(bandpass(2000.0, sr), rng.standard_normal(len(t))) * np.exp(-t / 0.005)
    return _fade(_norm(x, 0.7), sr)


def crash(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = _t(2.5, sr)
    noise = apply(highpass(3500.0, sr), rng.standard_normal(len(t)))
    x = noise * (np.exp(-t / 0.7) * 0.8 + 0.2 * np.exp(-t / 0.05))
    return _fade(_norm(x, 0.5), sr, 0.1)


def impact(sr: int, rng: np.random.Generator) -> np.ndarray:
    """Sub boom falling from 90 to 35 Hz plus a crash: the downbeat of a drop."""
    t = _t(2.5, sr)
    hz = 35.0 + 55.0 * np.exp(-t / 0.25)
    boom = np.sin(2 * np.pi * np.cumsum(hz) / sr) * np.exp(-t / 0.9)
    x = 0.8 * np.tanh(1.5 * boom) + crash(sr, rng)[: len(t)]
    return _fade(_norm(x, 0.9), sr, 0.1)


def build_kit(spec: KitSpec, sr: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """voice name -> (n,) float32 one-shot."""
    kit = {
        "kick": kick(spec.kick, sr, rng),
        "snare": snare(spec.snare, sr, rng),
        "clap": clap(sr, rng),
        "hat": hat(spec.hat_decay, spec.hat_hz, sr, rng),
        "open_hat": hat(spec.open_decay, spec.hat_hz * 0.9, sr, rng),
        "shaker": shaker(sr, rng),
        "rim": rim(sr, rng),
        "ride": ride(sr, rng),
        "perc": perc(sr, rng),
    }
    if spec.lowpass > 0:
        sos = lowpass(spec.lowpass, sr, 0.6)
        kit = {k: _fade(apply(sos, v), sr) for k, v in kit.items()}
    return kit
