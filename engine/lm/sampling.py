"""Picking the next tokens from logits: temperature, top-k, top-p, seeded.

`sample` is deterministic for a given `torch.Generator` state. Order of the filters: temperature scales the
logits, top-k keeps the k largest, top-p keeps the smallest set of the most likely remaining tokens whose
probability reaches p (the most likely token is always kept).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def check_sampling(temperature: float, top_k: int, top_p: float) -> None:
    """Raise ValueError for settings `sample` cannot use (callers may check settings once, up front)."""
    if not (isinstance(temperature, int | float) and math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0 (0 = argmax), got {temperature!r}")
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0:
        raise ValueError(f"top_k must be an int >= 0 (0 = off), got {top_k!r}")
    if not (isinstance(top_p, int | float) and 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1] (1 = off), got {top_p!r}")


def sample(
    logits: Tensor,
    *,
    generator: torch.Generator,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
) -> Tensor:
    """logits (B, K, card) -> token ids (B, K), int64. Any leading shape works: (..., card) -> (...).

    temperature 0 takes the argmax (the lowest id on ties) and draws nothing from the generator.
    top_k 0 and top_p 1 switch those filters off.
    """
    check_sampling(temperature, top_k, top_p)
    if not isinstance(logits, Tensor) or logits.dim() < 1 or logits.shape[-1] < 1:
        raise ValueError("logits must be a tensor (..., card) with card >= 1")
    if not logits.dtype.is_floating_point:
        raise ValueError(f"logits must be floating point, got {logits.dtype}")
    if torch.isnan(logits).any():
        raise ValueError("logits contain NaN")
    lead, card = logits.shape[:-1], logits.shape[-1]
    flat = logits.reshape(-1, card).float()  # (N, card)
    if temperature == 0:
        return flat.argmax(dim=-1).view(lead)
    flat = flat / temperature
    if top_k and top_k < card:
        values, ids = flat.topk(top_k, dim=-1)  # (N, k) each, values sorted descending
    elif top_p < 1:
        values, ids = flat.sort(dim=-1, descending=True)  # (N, card) each
    else:
        probs = torch.softmax(flat, dim=-1)  # (N, card)
        return torch.multinomial(probs, 1, generator=generator).view(lead)
    probs = torch.softmax(values, dim=-1)  # (N, k), descending
    if top_p < 1:
        before = probs.cumsum(dim=-1) - probs  # (N, k) mass of the more likely tokens
        probs = probs.masked_fill(before >= top_p, 0.0)  # the first token always stays (before = 0 < top_p)
    choice = torch.multinomial(probs, 1, generator=generator)  # (N, 1) index into the kept, sorted tokens
    return ids.gather(-1, choice).view(lead)
