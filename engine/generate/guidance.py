"""Classifier-free guidance with weighted prompts.

A guided stream runs G independent generations ("groups") of R = 1 + n rows each, group-major: rows
g * R .. g * R + R - 1 are [uncond, cond_1 .. cond_n] of group g. Every row of a group is fed the same sampled
tokens; their logits are combined as

    logits = uncond + scale * sum_i w_i * (cond_i - uncond)

- MusicGen (cross-attention): one row per text prompt; the uncond row has zero encoder states and an all-zero
  mask (`engine.musicgen.weights.MusicgenParts.encode_text` / `null_text`); give all rows to `LMStream.set_cross`.
- Style model, cheap 2-row form: rows [null, lm.condition(mix)] with weights [1.0] (`style_rows(..., per_style=False)`).
- Style model, rows form: one row per style (one-hot conditions) with the crowd's mix as the weights
  (`style_rows(..., per_style=True)`): a change of the mix then changes only `weights`, never a row's history,
  at the price of 1 + num_styles rows.
With scale 1 and weights summing to 1 the result is the weighted mix of the conditional logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from engine.lm.model import TokenLM
from engine.lm.stream import LMStream


def _weights(weights: Tensor | Sequence[float], groups: int, n: int, like: Tensor) -> Tensor:
    w = torch.as_tensor(weights, dtype=like.dtype, device=like.device)
    if w.dim() == 1:
        w = w.expand(groups, -1)
    if w.shape != (groups, n):
        raise ValueError(f"weights must be ({n},) or ({groups}, {n}) for {n} conditional rows, got {tuple(w.shape)}")
    return w  # (G, n)


def combine_guidance(logits: Tensor, weights: Tensor | Sequence[float], scale: float) -> Tensor:
    """logits (G, 1 + n, K, card) with row 0 unconditional, weights (n,) or (G, n) -> guided logits (G, K, card)."""
    if logits.dim() != 4 or logits.shape[1] < 2:
        raise ValueError(f"logits must be (G, 1 + n, K, card) with n >= 1, got {tuple(logits.shape)}")
    G, R = logits.shape[:2]
    w = _weights(weights, G, R - 1, logits)  # (G, n)
    uncond = logits[:, 0]  # (G, K, card)
    if R == 2:  # one conditional row: a single lerp, uncond + scale * w * (cond - uncond)
        return torch.lerp(uncond, logits[:, 1], (scale * w).view(G, 1, 1))  # (G, K, card)
    delta = logits[:, 1:] - uncond[:, None]  # (G, n, K, card)
    return uncond + scale * torch.einsum("gn,gnkc->gkc", w, delta)  # (G, K, card)


def guided_prefill(
    stream: LMStream,
    tokens: Tensor,
    weights: Tensor | Sequence[float],
    scale: float,
    cond: Tensor | None = None,
) -> Tensor:
    """Feed tokens (G, K, T) to every row of each group; return guided logits (G, K, card) for the next frame.

    cond: (G * R, dim) or (G * R, T, dim) per row, or None (cross-attention rows set with `stream.set_cross`).
    """
    if tokens.dim() != 3 or tokens.shape[0] < 1 or stream.batch_size % tokens.shape[0]:
        raise ValueError(f"tokens must be (G, K, T) with G dividing the stream's {stream.batch_size} rows")
    G = tokens.shape[0]
    R = stream.batch_size // G
    if R < 2:
        raise ValueError(f"guidance needs >= 2 rows per group (uncond + cond), the stream has {R}")
    logits = stream.prefill(tokens.repeat_interleave(R, dim=0), cond)  # (G * R, K, card)
    return combine_guidance(logits.view(G, R, *logits.shape[1:]), weights, scale)


def guided_step(
    stream: LMStream,
    tokens: Tensor,
    weights: Tensor | Sequence[float],
    scale: float,
    cond: Tensor | None = None,
) -> Tensor:
    """One frame tokens (G, K, 1) for every row -> guided logits (G, K, card). See `guided_prefill`."""
    if tokens.dim() != 3 or tokens.shape[2] != 1:
        raise ValueError(f"guided_step takes one frame (G, K, 1), got {tuple(tokens.shape)}")
    return guided_prefill(stream, tokens, weights, scale, cond)


@torch.no_grad()
def style_rows(
    lm: TokenLM,
    style_weights: Tensor,
    controls: Tensor | None = None,
    *,
    per_style: bool = False,
) -> tuple[Tensor, Tensor]:
    """Guidance rows for the style model: style_weights (G, num_styles), controls (G, num_controls) or None
    -> (cond (G * R, dim), weights (G, n)) for `guided_step`.

    per_style=False: R = 2, rows [null, condition(mix, controls)], weights 1.
    per_style=True: R = 1 + num_styles, rows [null, condition(one-hot i, controls) for each style],
    weights = style_weights.
    """
    if style_weights.dim() != 2:
        raise ValueError(f"style_weights must be (G, num_styles), got {tuple(style_weights.shape)}")
    G, S = style_weights.shape
    null = lm.null_condition(G)  # (G, D)
    if not per_style:
        rows = [null, lm.condition(style_weights, controls)]  # 2 x (G, D)
        weights = torch.ones(G, 1, dtype=null.dtype, device=null.device)
    else:
        eye = torch.eye(S, dtype=style_weights.dtype, device=style_weights.device)  # (S, S)
        rows = [null] + [lm.condition(eye[i].expand(G, S), controls) for i in range(S)]  # (1 + S) x (G, D)
        weights = style_weights.to(null.dtype)
    cond = torch.stack(rows, dim=1).reshape(G * len(rows), -1)  # (G * R, D), group-major
    return cond, weights
