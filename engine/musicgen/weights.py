"""Load transformers' MusicGen weights into `TokenLM`, so the streaming loop runs MusicGen without `generate`.

Sources: a local checkpoint folder (`save_pretrained` output: config.json + weights), a hub id already in the
local Hugging Face cache (never downloaded: `local_files_only=True`), or an in-memory
`MusicgenForConditionalGeneration` / `MusicgenForCausalLM`. transformers is imported only when loading.

MusicGen's text conditioning: T5 states (B, S, text_dim) -> `enc_to_dec_proj` (when text_dim != decoder width)
-> multiplied by the attention mask -> the decoder's cross-attention. `MusicgenParts.encode_text` does the first
three; feed its result to `LMStream.set_cross`. The loaded `TokenLM` has cross_dim = the decoder width.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from engine.lm.model import LMConfig, TokenLM

if TYPE_CHECKING:
    from transformers import MusicgenDecoderConfig, MusicgenForCausalLM

MUSICGEN_TYPES = ("musicgen", "musicgen_decoder")  # config.json model_type values this loader understands
HF_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}


class NotMusicgenError(ValueError):
    """The checkpoint or object is not a MusicGen model this loader understands."""


@dataclass
class MusicgenParts:
    """What the streaming loop needs from a MusicGen checkpoint."""

    lm: TokenLM  # the decoder, in eval mode
    text_encoder: nn.Module | None  # T5 encoder (None when only a decoder was loaded)
    enc_to_dec_proj: nn.Linear | None  # text width -> decoder width; None when they match
    audio_encoder: nn.Module | None  # the checkpoint's EnCodec (transformers EncodecModel), for decoding tokens
    start_token: int  # id fed as the first frame and as the delay pattern's pad (MusicGen: card = 2048)
    tokenizer: Callable[..., Any] | None = None  # the T5 tokenizer when the checkpoint folder holds one

    def encode_text(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Text token ids (B, S) -> (states (B, S, dim), mask (B, S)) for `LMStream.set_cross`."""
        if self.text_encoder is None:
            raise RuntimeError("this MusicGen checkpoint was loaded without its text encoder")
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (B, S), got {tuple(input_ids.shape)}")
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        if mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask must be {tuple(input_ids.shape)}, got {tuple(mask.shape)}")
        with torch.no_grad():
            states = self.text_encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state  # (B, S, text)
            if self.enc_to_dec_proj is not None:
                states = self.enc_to_dec_proj(states)  # (B, S, dim)
            states = states * mask[..., None].to(states.dtype)  # (B, S, dim)
        return states.to(self.lm.embed.weight.dtype), mask

    def encode_prompts(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Texts -> (states (B, S, dim), mask (B, S)), padded to the longest; needs the checkpoint's tokenizer."""
        if self.tokenizer is None:
            raise RuntimeError("no tokenizer was found next to this checkpoint; tokenize and call encode_text")
        batch = self.tokenizer(list(texts), return_tensors="pt", padding=True)
        return self.encode_text(batch["input_ids"], batch["attention_mask"])

    def null_text(self, batch_size: int, length: int = 1) -> tuple[Tensor, Tensor]:
        """The unconditional rows: zero states (B, length, dim) and an all-zero mask (B, length), as MusicGen does."""
        weight = self.lm.embed.weight
        states = torch.zeros(batch_size, length, self.lm.config.dim, dtype=weight.dtype, device=weight.device)
        return states, torch.zeros(batch_size, length, dtype=torch.long, device=weight.device)


def lm_config_from_musicgen(config: MusicgenDecoderConfig, *, max_len: int = 1500) -> LMConfig:
    """The `LMConfig` of a transformers `MusicgenDecoderConfig` (cross-attention width = decoder width)."""
    activation = HF_ACTIVATIONS.get(config.activation_function)
    if activation is None:
        raise NotMusicgenError(f"unsupported MusicGen activation {config.activation_function!r}")
    return LMConfig(
        num_codebooks=config.num_codebooks,
        card=config.vocab_size,
        dim=config.hidden_size,
        num_layers=config.num_hidden_layers,
        num_heads=config.num_attention_heads,
        ffn_dim=config.ffn_dim,
        max_len=max_len,
        num_styles=0,
        num_controls=0,
        cross_dim=config.hidden_size,
        bias=False,
        norm_eps=1e-5,  # MusicGen's nn.LayerNorm default
        activation=activation,
        dropout=0.0,
    )


def _decoder_state_dict(decoder: MusicgenForCausalLM, config: LMConfig) -> dict[str, Tensor]:
    """Rename and fuse HF decoder weights into `TokenLM` names (q|k|v -> qkv, k|v -> kv, K heads -> one)."""
    sd = decoder.state_dict()
    pre = "model.decoder."
    K = config.num_codebooks
    out = {
        "embed.weight": torch.cat([sd[f"{pre}embed_tokens.{k}.weight"] for k in range(K)]),
        "norm.weight": sd[f"{pre}layer_norm.weight"],
        "norm.bias": sd[f"{pre}layer_norm.bias"],
        "heads.weight": torch.cat([sd[f"lm_heads.{k}.weight"] for k in range(K)]),
    }
    for i in range(config.num_layers):
        hf, me = f"{pre}layers.{i}.", f"layers.{i}."
        for theirs, mine in (
            ("self_attn_layer_norm", "norm_self"),
            ("encoder_attn_layer_norm", "norm_cross"),
            ("final_layer_norm", "norm_ffn"),
        ):
            out[f"{me}{mine}.weight"] = sd[f"{hf}{theirs}.weight"]
            out[f"{me}{mine}.bias"] = sd[f"{hf}{theirs}.bias"]
        attn, cross = f"{hf}self_attn.", f"{hf}encoder_attn."
        out[f"{me}self_attn.qkv.weight"] = torch.cat([sd[f"{attn}{p}_proj.weight"] for p in "qkv"])
        out[f"{me}self_attn.out.weight"] = sd[f"{attn}out_proj.weight"]
        out[f"{me}cross_attn.q.weight"] = sd[f"{cross}q_proj.weight"]
        out[f"{me}cross_attn.kv.weight"] = torch.cat([sd[f"{cross}{p}_proj.weight"] for p in "kv"])
        out[f"{me}cross_attn.out.weight"] = sd[f"{cross}out_proj.weight"]
        out[f"{me}fc1.weight"] = sd[f"{hf}fc1.weight"]
        out[f"{me}fc2.weight"] = sd[f"{hf}fc2.weight"]
    return out


def tokenlm_from_decoder(
    decoder: MusicgenForCausalLM, *, max_len: int = 1500, dtype: torch.dtype = torch.float32
) -> TokenLM:
    """A `TokenLM` holding a copy of a transformers `MusicgenForCausalLM`'s weights, in eval mode."""
    config = lm_config_from_musicgen(decoder.config, max_len=max_len)
    try:
        weights = _decoder_state_dict(decoder, config)
    except KeyError as err:
        raise NotMusicgenError(f"MusicGen decoder weight {err} is missing") from err
    with torch.device("meta"):  # no memory and no random init for weights about to be replaced
        lm = TokenLM(config, seed=None)
    lm.load_state_dict({k: v.detach().to(dtype, copy=True) for k, v in weights.items()}, strict=True, assign=True)
    lm.make_buffers()
    return lm.eval()


def _start_token(decoder: MusicgenForCausalLM) -> int:
    card = decoder.config.vocab_size
    token = decoder.config.bos_token_id
    if token is None:
        token = decoder.config.pad_token_id
    if token is None or not 0 <= token <= card:
        raise NotMusicgenError(f"MusicGen start token {token} is outside [0, {card}]")
    return int(token)


def parts_from_model(model: nn.Module, *, max_len: int = 1500, dtype: torch.dtype = torch.float32) -> MusicgenParts:
    """Split an in-memory `MusicgenForConditionalGeneration` (or a bare `MusicgenForCausalLM`) into parts."""
    from transformers import MusicgenForCausalLM, MusicgenForConditionalGeneration

    if isinstance(model, MusicgenForConditionalGeneration):
        decoder = model.decoder
        text_encoder, audio_encoder = model.text_encoder.eval(), model.audio_encoder.eval()
        proj = getattr(model, "enc_to_dec_proj", None)
    elif isinstance(model, MusicgenForCausalLM):
        decoder, text_encoder, audio_encoder, proj = model, None, None, None
    else:
        raise NotMusicgenError(f"expected a transformers MusicGen model, got {type(model).__name__}")
    lm = tokenlm_from_decoder(decoder, max_len=max_len, dtype=dtype)
    return MusicgenParts(lm, text_encoder, proj, audio_encoder, _start_token(decoder))


def _model_type(source: str | os.PathLike[str]) -> tuple[str, Path | None]:
    """(model_type, folder) of a local folder, or of a hub id found in the local cache (folder None)."""
    path = Path(source)
    if path.is_dir():
        config_file = path / "config.json"
        if not config_file.is_file():
            raise NotMusicgenError(f"{path} has no config.json; it is not a transformers checkpoint")
        try:
            model_type = json.loads(config_file.read_text()).get("model_type", "")
        except (json.JSONDecodeError, AttributeError) as err:
            raise NotMusicgenError(f"{config_file} is not a valid config: {err}") from err
        return str(model_type), path
    if path.exists() or path.is_absolute() or str(source).startswith((".", "~")) or str(source).count("/") != 1:
        raise FileNotFoundError(f"no MusicGen checkpoint folder at {path}")
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(source), local_files_only=True)
    except (OSError, ValueError) as err:
        raise FileNotFoundError(f"{source} is neither a folder nor a model in the local Hugging Face cache") from err
    return str(config.model_type), None


def load_musicgen(
    source: str | os.PathLike[str] | nn.Module, *, max_len: int = 1500, dtype: torch.dtype = torch.float32
) -> MusicgenParts:
    """Load MusicGen from a local folder, a locally cached hub id ("facebook/musicgen-small") or a model object.

    Never downloads. Raises FileNotFoundError for a missing path, NotMusicgenError for anything else than
    MusicGen (`model_type` "musicgen" or "musicgen_decoder"; MusicGen-Melody is not supported).
    max_len: frames the streaming KV cache holds (MusicGen runs at 50 Hz: 1500 = 30 s).
    """
    if isinstance(source, nn.Module):
        return parts_from_model(source, max_len=max_len, dtype=dtype)
    if not isinstance(source, str | os.PathLike):
        raise TypeError(f"source must be a path, a hub id or a model, got {type(source).__name__}")
    model_type, folder = _model_type(source)
    if model_type not in MUSICGEN_TYPES:
        raise NotMusicgenError(f"{source} holds a {model_type or 'untyped'!r} model, not MusicGen {MUSICGEN_TYPES}")
    from transformers import MusicgenForCausalLM, MusicgenForConditionalGeneration

    cls = MusicgenForConditionalGeneration if model_type == "musicgen" else MusicgenForCausalLM
    from safetensors import SafetensorError

    try:
        model = cls.from_pretrained(str(source), local_files_only=True)
    except (OSError, ValueError, RuntimeError, SafetensorError) as err:
        raise NotMusicgenError(f"could not load the MusicGen checkpoint {source}: {err}") from err
    parts = parts_from_model(model.eval(), max_len=max_len, dtype=dtype)
    if folder is not None and any((folder / name).is_file() for name in ("tokenizer.json", "spiece.model")):
        from transformers import AutoTokenizer

        parts.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    return parts
