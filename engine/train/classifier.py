"""A small style (genre) classifier: multinomial logistic regression on `engine.train.style_features`.

It answers "which of the 8 genres does this audio sound like?" for evaluation: does the codec keep the style,
does the token model play what the prompt asked for. The model is a standardised linear softmax over
`engine.music.styles.GENRE_IDS`, fitted full-batch with L-BFGS in torch (float64, deterministic); inference is numpy.

    feats = np.stack([style_features(w, sr) for w in windows])   # (N, FEATURE_DIM)
    clf = StyleClassifier.fit(feats, labels)                      # labels: indices into GENRE_IDS
    clf.save("style.npz"); StyleClassifier.load("style.npz").predict(feats)
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.music.styles import GENRE_IDS

FILE_KEYS = ("mean", "std", "weight", "bias", "classes")


@dataclass(frozen=True)
class ClassifierConfig:
    l2: float = 1e-3  # weight of 0.5 * sum(weight^2) added to the mean cross-entropy, per sample
    max_iter: int = 200  # L-BFGS iterations, at most
    tolerance: float = 1e-9  # L-BFGS stops when the gradient's largest entry falls below this
    seed: int = 0  # seeds torch before fitting (the zero start makes the fit deterministic anyway)

    def __post_init__(self) -> None:
        if not self.l2 >= 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2!r}")
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter!r}")
        if not self.tolerance > 0:
            raise ValueError(f"tolerance must be > 0, got {self.tolerance!r}")


def window_starts(num_samples: int, sample_rate: int, window_s: float, hop_s: float) -> list[int]:
    """Start samples of every whole window of `window_s` seconds, one every `hop_s` seconds."""
    if num_samples < 0 or sample_rate <= 0:
        raise ValueError(f"need num_samples >= 0 and sample_rate > 0, got {num_samples}, {sample_rate}")
    if not window_s > 0 or not hop_s > 0:
        raise ValueError(f"window_s and hop_s must be > 0, got {window_s!r}, {hop_s!r}")
    size, hop = round(window_s * sample_rate), max(1, round(hop_s * sample_rate))
    return list(range(0, num_samples - size + 1, hop))


def _features(features: np.ndarray, dim: int | None = None) -> np.ndarray:
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) == 0:
        raise ValueError(f"features must be a non-empty (N, D) array, got shape {f.shape}")
    if dim is not None and f.shape[1] != dim:
        raise ValueError(f"features have {f.shape[1]} dimensions, the classifier was fitted on {dim}")
    if not np.all(np.isfinite(f)):
        raise ValueError("features contain NaN or infinite values")
    return f


def _labels(labels: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be ({n},) integers, got shape {y.shape} dtype {y.dtype}")
    if len(y) and (y.min() < 0 or y.max() >= len(GENRE_IDS)):
        raise ValueError(f"labels must be indices into GENRE_IDS, 0..{len(GENRE_IDS) - 1}, got {y.min()}..{y.max()}")
    return y.astype(np.int64)


class StyleClassifier:
    """Standardised multinomial logistic regression over GENRE_IDS; numpy at inference."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> None:
        if weight.ndim != 2:
            raise ValueError(f"weight must be (D, C), got shape {weight.shape}")
        dim, classes = weight.shape
        if mean.shape != (dim,) or std.shape != (dim,) or bias.shape != (classes,):
            raise ValueError(
                f"inconsistent shapes: mean {mean.shape}, std {std.shape}, weight {weight.shape}, bias {bias.shape}"
            )
        if classes != len(GENRE_IDS):
            raise ValueError(f"weight has {classes} classes, GENRE_IDS has {len(GENRE_IDS)}")
        if not np.all(std > 0):
            raise ValueError("std must be > 0 in every dimension")
        self.mean = mean.astype(np.float64)  # (D,) training feature mean
        self.std = std.astype(np.float64)  # (D,) training feature std (floored)
        self.weight = weight.astype(np.float64)  # (D, C) on standardised features
        self.bias = bias.astype(np.float64)  # (C,)

    @property
    def dim(self) -> int:
        return len(self.mean)

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, config: ClassifierConfig | None = None) -> StyleClassifier:
        """Fit on (N, D) features and (N,) labels (indices into GENRE_IDS)."""
        cfg = config or ClassifierConfig()
        f = _features(features)
        y = _labels(labels, len(f))
        mean = f.mean(axis=0)  # (D,)
        std = f.std(axis=0)  # (D,)
        std = np.where(std > 1e-8, std, 1.0)  # (D,) constant features pass through unscaled
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            torch.manual_seed(cfg.seed)
            xs = torch.from_numpy((f - mean) / std)  # (N, D) float64
            ys = torch.from_numpy(y)  # (N,)
            weight = torch.zeros(f.shape[1], len(GENRE_IDS), dtype=torch.float64, requires_grad=True)  # (D, C)
            bias = torch.zeros(len(GENRE_IDS), dtype=torch.float64, requires_grad=True)  # (C,)
            opt = torch.optim.LBFGS(
                [weight, bias],
                lr=1.0,
                max_iter=cfg.max_iter,
                tolerance_grad=cfg.tolerance,
                tolerance_change=1e-12,
                history_size=20,
                line_search_fn="strong_wolfe",
            )

            def closure() -> torch.Tensor:
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(xs @ weight + bias, ys) + 0.5 * cfg.l2 * (weight**2).sum()
                loss.backward()
                return loss

            opt.step(closure)
        finally:
            torch.set_num_threads(threads)
        return cls(mean, std, weight.detach().numpy(), bias.detach().numpy())

    def logits(self, features: np.ndarray) -> np.ndarray:
        """(N, C) unnormalised log-probabilities."""
        f = _features(features, self.dim)
        return ((f - self.mean) / self.std) @ self.weight + self.bias  # (N, C)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """(N, C) class probabilities, C = len(GENRE_IDS)."""
        z = self.logits(features)  # (N, C)
        z = np.exp(z - z.max(axis=1, keepdims=True))  # (N, C)
        return z / z.sum(axis=1, keepdims=True)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(N,) int64 predicted class indices into GENRE_IDS."""
        return np.argmax(self.logits(features), axis=1).astype(np.int64)

    def accuracy(self, features: np.ndarray, labels: np.ndarray) -> float:
        """Fraction of rows predicted right."""
        f = _features(features, self.dim)
        return float(np.mean(self.predict(f) == _labels(labels, len(f))))

    def save(self, path: str | Path) -> Path:
        """Write mean, std, weight, bias and the class names to an .npz file."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("wb") as fh:
            np.savez(fh, mean=self.mean, std=self.std, weight=self.weight, bias=self.bias, classes=np.array(GENRE_IDS))
        return out

    @classmethod
    def load(cls, path: str | Path) -> StyleClassifier:
        """Read a file written by `save`; ValueError naming the file if it is missing, corrupt or mismatched."""
        src = Path(path)
        if not src.is_file():
            raise ValueError(f"style classifier file {src} does not exist")
        try:
            # np.load(path) leaks its file handle when the zip is corrupt, so open the file here.
            with src.open("rb") as fh, np.load(fh, allow_pickle=False) as data:
                arrays = {k: data[k] for k in FILE_KEYS if k in data.files}
        except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
            raise ValueError(f"style classifier file {src} is not a readable .npz: {e}") from e
        missing = [k for k in FILE_KEYS if k not in arrays]
        if missing:
            raise ValueError(f"style classifier file {src} lacks {', '.join(missing)}")
        classes = tuple(str(c) for c in arrays["classes"].reshape(-1))
        if classes != GENRE_IDS:
            raise ValueError(f"style classifier file {src} has classes {classes}, expected GENRE_IDS {GENRE_IDS}")
        for k in ("mean", "std", "weight", "bias"):
            if not np.issubdtype(arrays[k].dtype, np.floating) or not np.all(np.isfinite(arrays[k])):
                raise ValueError(f"style classifier file {src}: {k} is not a finite float array")
        try:
            return cls(arrays["mean"], arrays["std"], arrays["weight"], arrays["bias"])
        except ValueError as e:
            raise ValueError(f"style classifier file {src} does not match: {e}") from e
