"""The token language model: a MusicGen-style decoder over K parallel codebook streams.

One frame is K tokens (one per codebook, already delayed by `engine.lm.patterns`); the model predicts the next
frame's K tokens at once with one head per codebook. The layers match transformers' MusicGen decoder exactly
(`MusicgenForCausalLM`: summed per-codebook embeddings of card + 1 rows, MusicGen's sinusoidal positions,
pre-LayerNorm layers with self-attention, optional cross-attention and a GELU feed-forward, a final LayerNorm,
no biases), so `engine.musicgen.weights` can load MusicGen checkpoints into it.

Two ways to condition:
- style (the embedded model): a vector (B, dim) from `condition(style_weights, controls)` ADDED to the input of
  every frame. It enters through the inputs only, so a prompt change affects new frames and never cached keys or
  values. `null_condition` (zeros) is the unconditional row for classifier-free guidance.
- cross-attention (MusicGen): encoder states (B, S, cross_dim) projected once per prompt (`LMStream.set_cross`).

Streaming (inference) goes through `with lm.streaming(batch_size=B) as stream:` (see `engine.lm.stream`); training
calls `forward` on whole sequences.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.lm.attention import CrossAttention, CrossMemory, KVCache, SelfAttention
from engine.lm.linear import StepLinear
from engine.lm.stream import LMStream

ACTIVATIONS = ("gelu", "gelu_tanh", "relu")  # "gelu" is the exact (erf) GELU that MusicGen uses


@dataclass(frozen=True)
class LMConfig:
    num_codebooks: int = 4  # K: parallel token streams from the codec
    card: int = 1024  # codebook size; token id `card` is the special/pad token (an input, never predicted)
    # The embedded size: 384 wide with 4 layers is ~10.2 M parameters at K=4, card=1024. Fewer, wider layers than
    # 320 x 6 (10.0 M): a streaming step on CPU costs per tensor call as much as per weight, so this runs ~20 % faster.
    dim: int = 384  # model width
    num_layers: int = 4  # decoder layers
    num_heads: int = 8  # attention heads; dim must be a multiple
    ffn_dim: int = 1536  # hidden width of each feed-forward block (4 * dim)
    max_len: int = 1500  # frames the KV cache holds (30 s at 50 Hz); also the longest training sequence
    num_styles: int = 8  # learned style embeddings for the embedded model (engine.music.styles.GENRES); 0 = none
    num_controls: int = 0  # control features (e.g. bpm, energy, brightness, mode, section) projected to dim; 0 = none
    cross_dim: int | None = None  # width of encoder states for cross-attention (MusicGen's text); None = none
    bias: bool = False  # biases in the attention and feed-forward linears (MusicGen: none)
    norm_eps: float = 1e-5  # LayerNorm epsilon (MusicGen: torch's default 1e-5)
    activation: str = "gelu"  # feed-forward activation: "gelu" (exact, MusicGen), "gelu_tanh" or "relu"
    dropout: float = 0.0  # residual dropout while training (MusicGen trained with 0.1); never used when streaming
    init_std: float = 0.02  # std of the normal init of linears and embeddings

    def __post_init__(self) -> None:
        for name in ("num_codebooks", "card", "dim", "num_layers", "num_heads", "ffn_dim", "max_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"LMConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("num_styles", "num_controls"):
            if getattr(self, name) < 0:
                raise ValueError(f"LMConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.dim % self.num_heads:
            raise ValueError(f"LMConfig.dim ({self.dim}) must be a multiple of num_heads ({self.num_heads})")
        if self.cross_dim is not None and self.cross_dim < 1:
            raise ValueError(f"LMConfig.cross_dim must be None or >= 1, got {self.cross_dim}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"LMConfig.activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LMConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.norm_eps <= 0 or self.init_std <= 0:
            raise ValueError("LMConfig.norm_eps and init_std must be > 0")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads


def sinusoidal_positions(num_positions: int, dim: int) -> Tensor:
    """(num_positions, dim) table, exactly transformers' `MusicgenSinusoidalPositionalEmbedding.get_embedding`:
    cos in the first half, sin in the second, frequencies 10000 ** (-i / (dim / 2 - 1)), a zero column if dim is odd."""
    half = dim // 2
    step = math.log(10000) / (half - 1) if half > 1 else 0.0
    freqs = torch.exp(torch.arange(half, dtype=torch.int64, device="cpu").float() * -step)  # (half,)
    angles = torch.arange(num_positions, dtype=torch.int64, device="cpu").float()[:, None] * freqs[None]  # (P, half)
    table = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)  # (P, 2 * half)
    if dim % 2 == 1:
        table = torch.cat([table, torch.zeros(num_positions, 1, device="cpu")], dim=1)  # (P, dim)
    return table


class DecoderLayer(nn.Module):
    """Pre-LayerNorm block: x += SelfAttn(LN(x)); x += CrossAttn(LN(x)) if any; x += FFN(LN(x))."""

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        d = config.dim
        self.norm_self = nn.LayerNorm(d, eps=config.norm_eps)
        self.self_attn = SelfAttention(d, config.num_heads, bias=config.bias)
        self.norm_cross: nn.LayerNorm | None = None
        self.cross_attn: CrossAttention | None = None
        if config.cross_dim is not None:
            self.norm_cross = nn.LayerNorm(d, eps=config.norm_eps)
            self.cross_attn = CrossAttention(d, config.cross_dim, config.num_heads, bias=config.bias)
        self.norm_ffn = nn.LayerNorm(d, eps=config.norm_eps)
        self.fc1 = StepLinear(d, config.ffn_dim, bias=config.bias)
        self.fc2 = StepLinear(config.ffn_dim, d, bias=config.bias)
        self.activation = config.activation

    def forward(
        self, x: Tensor, cache: KVCache | None, layer: int, cross: CrossMemory | None, dropout: float
    ) -> Tensor:
        """x (B, T, D) -> (B, T, D)."""
        x = x + F.dropout(self.self_attn(self.norm_self(x), cache, layer), dropout, self.training)
        if cross is not None and self.cross_attn is not None and self.norm_cross is not None:
            h = self.cross_attn(self.norm_cross(x), cross.kv[layer], cross.bias)  # (B, T, D)
            x = x + F.dropout(h, dropout, self.training)
        h = self.activate(self.fc1(self.norm_ffn(x)))  # (B, T, ffn)
        return x + F.dropout(self.fc2(h), dropout, self.training)

    def activate(self, h: Tensor) -> Tensor:
        """The feed-forward activation of `config.activation`, elementwise."""
        if self.activation == "gelu":
            return F.gelu(h)
        if self.activation == "gelu_tanh":
            return F.gelu(h, approximate="tanh")
        return F.relu(h)


class TokenLM(nn.Module):
    """Decoder-only transformer over frames of K tokens; see the module docstring."""

    offsets: Tensor  # (K, 1) first embedding row of each codebook
    positions: Tensor  # (max_len, D) sinusoidal position table

    def __init__(self, config: LMConfig, *, seed: int | None = 0) -> None:
        """seed: the init's seed; None leaves the weights as torch made them (for loading, e.g. on "meta")."""
        super().__init__()
        self.config = config
        K, card, d = config.num_codebooks, config.card, config.dim
        # One table for all codebooks: codebook k's card + 1 rows start at k * (card + 1).
        self.embed = nn.Embedding(K * (card + 1), d)
        self.make_buffers()
        self.style_emb = nn.Embedding(config.num_styles, d) if config.num_styles else None
        self.controls = nn.Linear(config.num_controls, d) if config.num_controls else None
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.num_layers))
        self.norm = nn.LayerNorm(d, eps=config.norm_eps)
        # All heads in one linear: codebook k's logits are output rows k * card .. (k + 1) * card - 1.
        self.heads = StepLinear(d, K * card, bias=False)
        if seed is not None:
            self.reset_parameters(seed)

    def make_buffers(self) -> None:
        """(Re)build the constant buffers on the embedding's device (after loading weights made on "meta")."""
        K, card = self.config.num_codebooks, self.config.card
        device, dtype = self.embed.weight.device, self.embed.weight.dtype
        offsets = torch.arange(K, device=device).view(K, 1) * (card + 1)  # (K, 1)
        table = sinusoidal_positions(self.config.max_len, self.config.dim).to(device=device, dtype=dtype)
        self.register_buffer("offsets", offsets, persistent=False)
        self.register_buffer("positions", table, persistent=False)  # (max_len, D)

    def reset_parameters(self, seed: int = 0) -> None:
        """Deterministic init from `seed`: normal(0, init_std), residual outputs scaled by 1/sqrt(2 L) (GPT-2)."""
        gen = torch.Generator().manual_seed(seed)
        std = self.config.init_std
        residual_std = std / math.sqrt(2 * self.config.num_layers)
        with torch.no_grad():
            for name, module in self.named_modules():
                if isinstance(module, nn.LayerNorm):
                    nn.init.ones_(module.weight)
                    nn.init.zeros_(module.bias)
                elif isinstance(module, nn.Embedding):
                    nn.init.normal_(module.weight, 0.0, std, generator=gen)
                elif isinstance(module, nn.Linear):
                    residual = name.endswith((".out", ".fc2"))
                    nn.init.normal_(module.weight, 0.0, residual_std if residual else std, generator=gen)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)

    def quantize_int8(self) -> TokenLM:
        """Give every linear an int8 copy of its current weight for streaming steps on CPU (`engine.lm.linear`).

        Call it on the float32 weights, before `.to(torch.bfloat16)` (the activations' dtype), so the int8
        values come from the full-precision weights. Returns self.
        """
        for module in self.modules():
            if isinstance(module, StepLinear):
                module.quantize_int8()
        return self

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ---- conditioning -------------------------------------------------------------------------------------

    def condition(self, style_weights: Tensor | None = None, controls: Tensor | None = None) -> Tensor:
        """Conditioning vector (B, dim) = style_weights @ style_emb + controls projection.

        style_weights (B, num_styles): a weighted mix of styles (not renormalised; a one-hot picks one style).
        controls (B, num_controls): the control features. At least one is needed.
        """
        cfg = self.config
        parts: list[Tensor] = []
        if style_weights is not None:
            if self.style_emb is None:
                raise ValueError("this model has no style embeddings (num_styles=0)")
            if style_weights.dim() != 2 or style_weights.shape[1] != cfg.num_styles:
                raise ValueError(f"style_weights must be (B, {cfg.num_styles}), got {tuple(style_weights.shape)}")
            parts.append(style_weights.to(self.style_emb.weight.dtype) @ self.style_emb.weight)  # (B, D)
        if controls is not None:
            if self.controls is None:
                raise ValueError("this model takes no controls (num_controls=0)")
            if controls.dim() != 2 or controls.shape[1] != cfg.num_controls:
                raise ValueError(f"controls must be (B, {cfg.num_controls}), got {tuple(controls.shape)}")
            parts.append(self.controls(controls.to(self.controls.weight.dtype)))  # (B, D)
        if not parts:
            raise ValueError("condition() needs style_weights or controls; use null_condition() for none")
        if len(parts) == 2 and parts[0].shape[0] != parts[1].shape[0]:
            raise ValueError("style_weights and controls must have the same batch size")
        return sum(parts[1:], parts[0])

    def null_condition(self, batch_size: int) -> Tensor:
        """The unconditional vector (B, dim) of zeros, for the guidance row."""
        return torch.zeros(batch_size, self.config.dim, dtype=self.embed.weight.dtype, device=self.embed.weight.device)

    @property
    def attention_dtype(self) -> torch.dtype:
        """dtype of the streaming KV cache and cross memory, in which attention runs.

        float32 for a bfloat16/float16 model on CPU: half-precision attention there is several times slower
        (about 7x for one frame over a 375-frame cache on an AVX2 CPU) while the linears gain from half weights.
        The model's own dtype elsewhere.
        """
        weight = self.embed.weight
        if weight.device.type == "cpu" and weight.dtype in (torch.bfloat16, torch.float16):
            return torch.float32
        return weight.dtype

    def encode_cross(self, states: Tensor, mask: Tensor | None = None) -> CrossMemory:
        """Project encoder states (B, S, cross_dim) with mask (B, S) (1 = attend, 0 = padding) for every layer.

        Like transformers' MusicGen, states are multiplied by the mask first, so an all-zero mask row is the
        unconditional row (its cross-attention output is zero when the model has no biases).
        """
        cfg = self.config
        if cfg.cross_dim is None:
            raise ValueError("this model has no cross-attention (cross_dim=None)")
        if states.dim() != 3 or states.shape[2] != cfg.cross_dim or states.shape[1] < 1:
            raise ValueError(f"encoder states must be (B, S >= 1, {cfg.cross_dim}), got {tuple(states.shape)}")
        states = states.to(self.embed.weight.dtype)
        bias = None
        if mask is not None:
            if mask.shape != states.shape[:2]:
                raise ValueError(f"cross mask must be {tuple(states.shape[:2])}, got {tuple(mask.shape)}")
            keep = mask.to(states.dtype)  # (B, S)
            states = states * keep[..., None]  # (B, S, C)
            bias = ((1.0 - keep) * torch.finfo(states.dtype).min)[:, None, None, :]  # (B, 1, 1, S)
        attns = [cast(CrossAttention, cast(DecoderLayer, layer).cross_attn) for layer in self.layers]
        dtype = self.attention_dtype
        kv = torch.stack([attn.project(states) for attn in attns]).to(dtype)  # (L, 2, B, H, S, hd)
        return CrossMemory(kv, None if bias is None else bias.to(dtype))

    # ---- running ------------------------------------------------------------------------------------------

    def check_tokens(self, tokens: Tensor, frames: int | None = None) -> None:
        """Raise ValueError unless tokens is an integer (B, K, T) tensor with ids in [0, card] (T == frames if set)."""
        K, card = self.config.num_codebooks, self.config.card
        if not isinstance(tokens, Tensor) or tokens.dim() != 3 or tokens.shape[1] != K or tokens.shape[2] < 1:
            shape = tuple(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
            raise ValueError(f"tokens must be (B, {K}, T >= 1), got {shape}")
        if frames is not None and tokens.shape[2] != frames:
            raise ValueError(f"expected {frames} frame(s), got tokens of shape {tuple(tokens.shape)}")
        if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
            raise ValueError(f"tokens must be integer ids, got dtype {tokens.dtype}")
        lo, hi = int(tokens.min()), int(tokens.max())
        if lo < 0 or hi > card:
            raise ValueError(f"token ids must be in [0, {card}] ({card} = special), got range [{lo}, {hi}]")

    def check_cond(self, cond: Tensor | None, batch: int, frames: int) -> None:
        """Raise ValueError unless cond is None, (batch, dim) or (batch, frames, dim)."""
        if cond is None:
            return
        d = self.config.dim
        if not (cond.shape == (batch, d) or cond.shape == (batch, frames, d)):
            raise ValueError(f"cond must be ({batch}, {d}) or ({batch}, {frames}, {d}), got {tuple(cond.shape)}")

    def run(
        self,
        tokens: Tensor,
        cond: Tensor | None = None,
        cache: KVCache | None = None,
        cross: CrossMemory | None = None,
        last_only: bool = False,
    ) -> Tensor:
        """The shared forward pass (inputs already checked): tokens (B, K, T) -> logits (B, K, T or 1, card).

        With a cache, the frames take positions cache.length .. cache.length + T - 1 and are appended to it.
        """
        cfg = self.config
        B, K, T = tokens.shape
        start = 0 if cache is None else cache.length
        if start + T > cfg.max_len:
            if cache is not None:
                cache.check_room(T)
            raise ValueError(f"sequence of {T} frames is longer than max_len={cfg.max_len}")
        x = self.embed(tokens + self.offsets).sum(dim=1)  # (B, K, T, D) -> (B, T, D)
        x = x + self.positions[start : start + T]  # (B, T, D)
        if cond is not None:
            cond = cond.to(x.dtype)
            x = x + (cond[:, None, :] if cond.dim() == 2 else cond)  # (B, T, D)
        dropout = cfg.dropout if (self.training and cache is None) else 0.0
        x = F.dropout(x, dropout, self.training)
        for i, layer in enumerate(self.layers):
            x = layer(x, cache, i, cross, dropout)  # (B, T, D)
        if cache is not None:
            cache.advance(T)
        if last_only:
            x = x[:, -1:]  # (B, 1, D)
        logits = self.heads(self.norm(x))  # (B, T', K * card)
        return logits.view(B, x.shape[1], K, cfg.card).transpose(1, 2)  # (B, K, T', card)

    def forward(
        self,
        tokens: Tensor,
        cond: Tensor | None = None,
        cross_states: Tensor | None = None,
        cross_mask: Tensor | None = None,
    ) -> Tensor:
        """Training / scoring without a cache: tokens (B, K, T) -> logits (B, K, T, card).

        Position t predicts frame t + 1. cond is (B, dim) or per frame (B, T, dim); cross_states (B, S, cross_dim)
        with cross_mask (B, S).
        """
        self.check_tokens(tokens)
        self.check_cond(cond, tokens.shape[0], tokens.shape[2])
        cross = None if cross_states is None else self.encode_cross(cross_states, cross_mask)
        if cross is not None and cross.batch_size != tokens.shape[0]:
            raise ValueError(f"cross_states has batch {cross.batch_size}, tokens have {tokens.shape[0]}")
        return self.run(tokens, cond, None, cross)

    @contextmanager
    def streaming(self, batch_size: int) -> Iterator[LMStream]:
        """Own a pre-allocated KV cache for `batch_size` rows for the `with` block: `with lm.streaming(2) as s:`."""
        stream = LMStream(self, batch_size)
        try:
            yield stream
        finally:
            stream.close()
