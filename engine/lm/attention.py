"""Attention for the token LM: a pre-allocated KV cache, causal self-attention and cross-attention.

The layouts follow transformers' MusicGen decoder (`MusicgenAttention`): scaling head_dim ** -0.5, no biases
by default, one output projection. q/k/v are fused into one matrix here (`qkv`, rows q | k | v; cross-attention
keeps `q` apart and fuses `kv`), which is what `engine.musicgen.weights` concatenates HF's weights into.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.lm.linear import StepLinear


class CacheFullError(RuntimeError):
    """The KV cache cannot take more frames: reset it and prefill the last `window - stride` frames again."""


class KVCache:
    """Keys and values of every layer, pre-allocated: `kv` is (L, 2, B, H, max_len, head_dim).

    `length` counts the frames already written (the same for every row); new frames go to positions
    `length .. length + T - 1`. Writing never allocates. `reset()` only rewinds the counter.
    """

    def __init__(
        self,
        num_layers: int,
        batch_size: int,
        num_heads: int,
        head_dim: int,
        max_len: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        shape = (num_layers, 2, batch_size, num_heads, max_len, head_dim)
        self.kv = torch.zeros(shape, dtype=dtype, device=device)  # (L, 2, B, H, max_len, hd)
        self.length = 0  # frames written so far

    @property
    def batch_size(self) -> int:
        return self.kv.shape[2]

    @property
    def max_len(self) -> int:
        return self.kv.shape[4]

    @property
    def remaining(self) -> int:
        """Frames that still fit."""
        return self.max_len - self.length

    def check_room(self, frames: int) -> None:
        """Raise `CacheFullError` unless `frames` more frames fit."""
        if frames > self.remaining:
            raise CacheFullError(
                f"KV cache full: {self.length} of {self.max_len} frames used, {frames} more asked; "
                "reset() and prefill the last (window - stride) frames to continue"
            )

    def write(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store k, v (B, H, T, hd) at the frames after `length`; return views of all keys and values so far."""
        end = self.length + k.shape[2]
        self.kv[layer, 0, :, :, self.length : end] = k
        self.kv[layer, 1, :, :, self.length : end] = v
        return self.kv[layer, 0, :, :, :end], self.kv[layer, 1, :, :, :end]  # (B, H, end, hd) each

    def advance(self, frames: int) -> None:
        """Count `frames` written frames (called once per forward pass, after every layer wrote)."""
        self.length += frames

    def reset(self) -> None:
        self.length = 0

    def select_rows(self, rows: Tensor) -> None:
        """Re-batch: row i of the new cache is old row `rows[i]` (rows may repeat, drop or reorder)."""
        self.kv = self.kv.index_select(2, rows).contiguous()  # (L, 2, len(rows), H, max_len, hd)


@dataclass
class CrossMemory:
    """Projected encoder states, computed once per prompt and read by every later step."""

    kv: Tensor  # (L, 2, B, H, S, hd) keys and values of every layer's cross-attention
    bias: Tensor | None  # (B, 1, 1, S) additive mask: 0 where attended, dtype min where padded; None = attend all

    @property
    def batch_size(self) -> int:
        return self.kv.shape[2]

    def select_rows(self, rows: Tensor) -> CrossMemory:
        bias = None if self.bias is None else self.bias.index_select(0, rows)
        return CrossMemory(self.kv.index_select(2, rows), bias)


def causal_mask(frames: int, past: int, device: torch.device) -> Tensor:
    """(T, past + T) bool mask: query i (at position past + i) may attend keys 0 .. past + i."""
    q = torch.arange(frames, device=device)[:, None] + past  # (T, 1)
    k = torch.arange(past + frames, device=device)[None, :]  # (1, past + T)
    return k <= q


class SelfAttention(nn.Module):
    """Causal multi-head self-attention, cached or not."""

    def __init__(self, dim: int, num_heads: int, *, bias: bool) -> None:
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = StepLinear(dim, 3 * dim, bias=bias)  # rows: q, k, v
        self.out = StepLinear(dim, dim, bias=bias)

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0) -> Tensor:
        """x (B, T, D) -> (B, T, D). With a cache, x holds the frames after `cache.length` and is written into it."""
        B, T, _ = x.shape
        q, k, v = self.qkv(x).split(self.dim, dim=-1)  # (B, T, D) each
        q = q.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, hd)
        k = k.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, hd)
        v = v.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, hd)
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, hd)
        else:
            past = cache.length
            k, v = cache.write(layer, k, v)  # (B, H, past + T, hd) each, in the cache's dtype
            q = q.to(k.dtype)  # (B, H, T, hd) attention runs in the cache's dtype (see TokenLM.attention_dtype)
            if T == 1:  # one new frame sees every cached frame
                y = F.scaled_dot_product_attention(q, k, v)
            elif past == 0:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:  # sdpa's is_causal aligns top-left, wrong with a past: spell the mask out
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(T, past, x.device))
            y = y.to(x.dtype)  # (B, H, T, hd)
        y = y.transpose(1, 2).reshape(B, T, self.dim)  # (B, T, D)
        return self.out(y)


class CrossAttention(nn.Module):
    """Multi-head attention from the token frames to encoder states (MusicGen's text conditioning)."""

    def __init__(self, dim: int, cross_dim: int, num_heads: int, *, bias: bool) -> None:
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q = StepLinear(dim, dim, bias=bias)
        self.kv = StepLinear(cross_dim, 2 * dim, bias=bias)  # rows: k, v
        self.out = StepLinear(dim, dim, bias=bias)

    def project(self, states: Tensor) -> Tensor:
        """states (B, S, cross_dim) -> keys and values stacked (2, B, H, S, hd)."""
        B, S, _ = states.shape
        kv = self.kv(states).view(B, S, 2, self.num_heads, self.head_dim)  # (B, S, 2, H, hd)
        return kv.permute(2, 0, 3, 1, 4)  # (2, B, H, S, hd)

    def forward(self, x: Tensor, kv: Tensor, bias: Tensor | None) -> Tensor:
        """x (B, T, D), kv (2, B, H, S, hd) from `project`, bias (B, 1, 1, S) or None -> (B, T, D)."""
        B, T, _ = x.shape
        q = self.q(x).view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, hd)
        y = F.scaled_dot_product_attention(q.to(kv.dtype), kv[0], kv[1], attn_mask=bias)  # (B, H, T, hd)
        y = y.to(x.dtype).transpose(1, 2).reshape(B, T, self.dim)  # (B, T, D)
        return self.out(y)
