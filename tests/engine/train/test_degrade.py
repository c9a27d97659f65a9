"""Generic degradations for the style judge's training: each keeps the length, is seeded, and changes the sound."""

from __future__ import annotations

import numpy as np
import pytest

from engine.train.degrade import KINDS, degrade
from engine.train.metrics import log_mel

SR = 24000


def clip(seconds: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(round(seconds * SR)) / SR
    tones = sum(np.sin(2 * np.pi * f * t) for f in (110.0, 440.0, 1760.0, 7040.0))
    return (0.05 * tones + 0.01 * rng.normal(size=len(t))).astype(np.float32)  # (samples,) broadband


def test_every_kind_keeps_length_and_changes_the_sound() -> None:
    x = clip()
    seen: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(1)
    for _ in range(200):
        y, kind = degrade(x, SR, rng)
        assert y.shape == x.shape and y.dtype == np.float32 and np.all(np.isfinite(y))
        seen.setdefault(kind, y)
        if len(seen) == len(KINDS):
            break
    assert sorted(seen) == sorted(KINDS)
    ref = log_mel(x.astype(np.float64), SR)
    for kind, y in seen.items():
        change = float(np.abs(log_mel(y.astype(np.float64), SR) - ref).mean())
        assert change > 0.01, f"{kind} left the sound unchanged ({change:.4f})"


def test_is_seeded() -> None:
    x = clip()
    a = [degrade(x, SR, np.random.default_rng(5)) for _ in range(2)]
    assert a[0][1] == a[1][1]
    np.testing.assert_array_equal(a[0][0], a[1][0])


def test_rejects_non_mono() -> None:
    with pytest.raises(ValueError, match="mono"):
        degrade(np.zeros((2, SR)), SR, np.random.default_rng(0))
