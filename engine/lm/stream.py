"""Streaming state of a TokenLM: the pre-allocated KV cache, the cross-attention memory and the frame counter.

Made by `TokenLM.streaming`, which frees it when the `with` block ends:

    with lm.streaming(batch_size=2) as stream:
        stream.set_cross(states, mask)            # MusicGen only: once per prompt, again when it changes
        logits = stream.prefill(prompt, cond)     # (B, K, T) -> (B, K, card) for the last frame
        while ...:
            logits = stream.step(frame, cond)     # (B, K, 1) -> (B, K, card)

Positions continue from `length`. When the cache is full (`remaining == 0`) `step` raises `CacheFullError`; the
caller re-primes with a sliding window: `reset()`, then `prefill` of the last `window - stride` frames, which
take positions 0 .. again. Conditioning changes (`cond`, `set_cross`) only affect frames run after them; the
cached keys and values of earlier frames are never touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from engine.lm.attention import CrossMemory, KVCache
from engine.lm.step import decode_step

if TYPE_CHECKING:
    from engine.lm.model import TokenLM


class StreamClosedError(RuntimeError):
    """The stream's `with` block has ended; its cache is gone."""


class LMStream:
    """One generation's state for `batch_size` rows (e.g. guidance rows [uncond, cond_1 .. cond_n])."""

    def __init__(self, lm: TokenLM, batch_size: int) -> None:
        cfg = lm.config
        weight = lm.embed.weight
        self.lm = lm
        with torch.inference_mode():  # every cache tensor is made and written in inference mode, whatever the caller
            self._cache: KVCache | None = KVCache(
                cfg.num_layers,
                batch_size,
                cfg.num_heads,
                cfg.head_dim,
                cfg.max_len,
                dtype=lm.attention_dtype,
                device=weight.device,
            )
        self._cross: CrossMemory | None = None

    # ---- state --------------------------------------------------------------------------------------------

    @property
    def cache(self) -> KVCache:
        if self._cache is None:
            raise StreamClosedError("this stream is closed; open a new one with lm.streaming()")
        return self._cache

    @property
    def cross(self) -> CrossMemory | None:
        """The projected encoder states in use, or None."""
        return self._cross

    @property
    def batch_size(self) -> int:
        return self.cache.batch_size

    @property
    def length(self) -> int:
        """Frames in the cache; the next frame takes this position."""
        return self.cache.length

    @property
    def remaining(self) -> int:
        """Frames that still fit before `CacheFullError`."""
        return self.cache.remaining

    def reset(self) -> None:
        """Forget every frame (positions restart at 0); the cross-attention memory stays."""
        self.cache.reset()

    def close(self) -> None:
        self._cache = None
        self._cross = None

    def select_rows(self, rows: Sequence[int] | Tensor) -> None:
        """Re-batch the stream: new row i continues old row rows[i] (cache and cross memory alike).

        Use it when the number of guidance rows changes, e.g. a new prompt row starting from a copy of the
        history of an existing one. Rows may repeat, be dropped or reordered.
        """
        index = torch.as_tensor(rows, dtype=torch.long, device=self.cache.kv.device)
        if index.dim() != 1 or index.numel() == 0:
            raise ValueError("rows must be a non-empty 1-D list of row indices")
        if int(index.min()) < 0 or int(index.max()) >= self.batch_size:
            raise ValueError(f"rows must be in [0, {self.batch_size}), got {index.tolist()}")
        with torch.inference_mode():
            self.cache.select_rows(index)
            if self._cross is not None:
                self._cross = self._cross.select_rows(index)

    # ---- conditioning -------------------------------------------------------------------------------------

    def set_cross(self, states: Tensor, mask: Tensor | None = None) -> None:
        """Project encoder states (B, S, cross_dim), mask (B, S) once; later frames attend to them.

        Replacing them (a new prompt) keeps the self-attention cache: earlier frames stay as they were.
        """
        if states.dim() != 3 or states.shape[0] != self.batch_size:
            raise ValueError(f"encoder states must be ({self.batch_size}, S, cross_dim), got {tuple(states.shape)}")
        with torch.inference_mode():
            self._cross = self.lm.encode_cross(states, mask)

    def prefill(self, tokens: Tensor, cond: Tensor | None = None) -> Tensor:
        """Append tokens (B, K, T) to the cache; return the logits (B, K, card) predicting the frame after them.

        cond: (B, dim) for every frame, or (B, T, dim) per frame, or None.
        """
        self.lm.check_tokens(tokens)
        return self._append(tokens, cond)

    def step(self, tokens: Tensor, cond: Tensor | None = None) -> Tensor:
        """Append one frame, tokens (B, K, 1); return the logits (B, K, card) for the next frame."""
        self.lm.check_tokens(tokens, frames=1)
        return self._append(tokens, cond)

    def _append(self, tokens: Tensor, cond: Tensor | None) -> Tensor:
        cache = self.cache
        B, _, T = tokens.shape
        if B != cache.batch_size:
            raise ValueError(f"this stream has {cache.batch_size} rows, tokens have {B}")
        self.lm.check_cond(cond, B, T)
        cache.check_room(T)
        with torch.inference_mode():
            if T == 1 and not self.lm.training:  # the hot path: same logits, half the tensor calls
                return decode_step(self.lm, tokens, cond, cache, self._cross)  # (B, K, card)
            logits = self.lm.run(tokens, cond, cache, self._cross, last_only=True)  # (B, K, 1, card)
        return logits[:, :, 0]  # (B, K, card)
