"""The log-mel training loss is the evaluation's `mel_distance`, differentiable, and it sees quiet-band rumble."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.train.mel_loss import LogMelLoss
from engine.train.metrics import log_mel, mel_distance

SR = 24_000


def _clip(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(SR) * 0.1).astype(np.float32)  # (SR,) one second of noise
    x[8_000:16_000] = 0.0  # a silent third, like the gap between two kicks
    return x


def test_log_mel_frames_equal_the_metric() -> None:
    x = _clip(0)
    ours = LogMelLoss(SR).log_mel(torch.from_numpy(x)[None])[0].T.numpy()  # (frames, n_mels)
    theirs = log_mel(x, SR)  # (frames, n_mels)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


@pytest.mark.parametrize("seed", [1, 2])
def test_the_loss_is_mel_distance(seed: int) -> None:
    x = _clip(seed)
    y = x + (np.random.default_rng(seed + 10).standard_normal(SR) * 0.004).astype(np.float32)
    loss = float(LogMelLoss(SR)(torch.from_numpy(y)[None], torch.from_numpy(x)[None]))
    assert loss == pytest.approx(mel_distance(x, y, SR), rel=1e-4)
    assert loss > 0.05


def test_rumble_in_the_silence_costs_and_its_gradient_removes_it() -> None:
    x = torch.from_numpy(_clip(3))[None]  # (1, SR)
    t = torch.arange(SR) / SR
    rumble = torch.zeros(1, SR)
    rumble[:, 8_000:16_000] = 0.01 * torch.sin(2 * torch.pi * 50.0 * t[8_000:16_000])  # 50 Hz at -43 dBFS
    estimate = (x + rumble).requires_grad_(True)
    loss_fn = LogMelLoss(SR)
    loss = loss_fn(estimate, x)
    before = float(loss.detach())
    assert before > 0.01 and before > 100 * float(loss_fn(x + 1e-6, x))
    loss.backward()
    assert estimate.grad is not None
    silent = estimate.grad[0, 9_000:15_000]  # (6000,) deep inside the silent third
    assert float(silent.abs().max()) > 0
    with torch.no_grad():
        stepped = estimate - 1e-3 * estimate.grad / estimate.grad.abs().max()
    assert float(loss_fn(stepped, x)) < before


def test_shapes_are_checked() -> None:
    loss_fn = LogMelLoss(SR)
    with pytest.raises(ValueError, match="differ"):
        loss_fn(torch.zeros(1, SR), torch.zeros(1, SR - 1))
    with pytest.raises(ValueError, match="batch, samples"):
        loss_fn.log_mel(torch.zeros(SR))
