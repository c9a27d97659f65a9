"""One cached frame through a TokenLM in as few tensor operations as possible: the streaming hot path.

A streaming step is a handful of tiny products, so on CPU its time goes as much to the number of PyTorch calls
(Python, dispatch, thread wake-ups: ≈ 5-15 µs each on a 2-core machine) as to arithmetic. `decode_step` does what
`TokenLM.run(tokens, cond, cache, cross, last_only=True)` does for T = 1 in eval mode — the same modules, weights
and operation order, so the same logits — with about half the calls: no nn.Module dispatch, no dropout calls,
keys and values written into the cache in one copy, no reshapes a single frame does not need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import torch.nn.functional as F
from torch import Tensor

from engine.lm.attention import CrossMemory, KVCache

if TYPE_CHECKING:
    from engine.lm.model import DecoderLayer, TokenLM


def decode_step(lm: TokenLM, tokens: Tensor, cond: Tensor | None, cache: KVCache, cross: CrossMemory | None) -> Tensor:
    """tokens (B, K, 1) (checked by the caller), cond (B, dim), (B, 1, dim) or None -> logits (B, K, card).

    Appends the frame to `cache` at position `cache.length`. Eval mode only (no dropout).
    """
    cfg = lm.config
    B, K = tokens.shape[0], tokens.shape[1]
    D, H = cfg.dim, cfg.num_heads
    hd = D // H
    pos = cache.length
    x = lm.embed.weight[tokens.view(B, K) + lm.offsets.view(1, K)].sum(dim=1)  # (B, K, D) -> (B, D)
    x = x + lm.positions[pos]  # (B, D)
    if cond is not None:
        x = x + cond.view(B, D).to(x.dtype)  # (B, D)
    kv = cache.kv  # (L, 2, B, H, max_len, hd)
    for i, module in enumerate(lm.layers):
        layer = cast("DecoderLayer", module)
        attn = layer.self_attn
        norm = layer.norm_self
        h = F.layer_norm(x, (D,), norm.weight, norm.bias, norm.eps)  # (B, D)
        qkv = attn.qkv.forward(h).view(B, 3, H, hd)  # (B, 3, H, hd) rows q | k | v
        kv[i, :, :, :, pos] = qkv[:, 1:].transpose(0, 1)  # (2, B, H, hd) k and v in one copy
        q = qkv[:, 0, :, None].to(kv.dtype)  # (B, H, 1, hd)
        y = F.scaled_dot_product_attention(q, kv[i, 0, :, :, : pos + 1], kv[i, 1, :, :, : pos + 1])  # (B, H, 1, hd)
        x = x + attn.out.forward(y.view(B, D).to(x.dtype))  # (B, D)
        if cross is not None and layer.cross_attn is not None and layer.norm_cross is not None:
            h = F.layer_norm(x, (D,), layer.norm_cross.weight, layer.norm_cross.bias, layer.norm_cross.eps)  # (B, D)
            x = x + layer.cross_attn.forward(h.view(B, 1, D), cross.kv[i], cross.bias).view(B, D)  # (B, D)
        norm = layer.norm_ffn
        h = layer.fc1.forward(F.layer_norm(x, (D,), norm.weight, norm.bias, norm.eps))  # (B, ffn)
        x = x + layer.fc2.forward(layer.activate(h))  # (B, D)
    cache.advance(1)
    norm = lm.norm
    logits = lm.heads.forward(F.layer_norm(x, (D,), norm.weight, norm.bias, norm.eps))  # (B, K * card)
    return logits.view(B, K, cfg.card)
