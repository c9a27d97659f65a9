"""The neural audio codec: EnCodec's architecture (transformers' Apache-2.0 ``EncodecModel``) behind a small API.

Audio (B, T) at ``sample_rate`` becomes K parallel token streams (B, K, F) at ``frame_rate`` frames per second,
one frame per ``hop_length`` samples, and back. Every rate and count is read from the model, never assumed, so a
checkpoint with other ratios or codebooks just works. ``Codec.streaming_decoder`` turns codes into audio chunk by
chunk, equal to a whole decode, using the decoder's receptive field worked out from its kernels and strides
(``engine.codec.stream``).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from huggingface_hub.errors import StrictDataclassError
from safetensors import SafetensorError
from torch import Tensor, nn
from transformers import EncodecConfig, EncodecModel
from transformers.models.encodec.modeling_encodec import (
    EncodecConv1d,
    EncodecConvTranspose1d,
    EncodecLSTM,
    EncodecResnetBlock,
)

if TYPE_CHECKING:
    from engine.codec.stream import ChunkDecoder

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
LSTM_WARMUP_S = 0.5  # seconds of left context a windowed decoder gives an LSTM to forget its zero state


class CodecError(Exception):
    """A codec checkpoint or model that concert cannot use; the message names the path or setting at fault."""


@dataclass(frozen=True)
class CodecConfig:
    """An EnCodec-architecture codec; the defaults are the embedded 50 Hz codec (≈ 0.94 M parameters a side)."""

    sample_rate: int = 24000  # Hz, mono
    num_filters: int = 16  # channels of the first encoder conv; doubled at each down-sampling
    num_lstm_layers: int = 0  # LSTM layers after the encoder and before the decoder; 0 = purely convolutional
    upsampling_ratios: tuple[int, ...] = (8, 6, 5, 2)  # decoder strides; hop 480 samples = 50 Hz frames at 24 kHz
    # 8 x 256 (64 bits a frame, 3.2 kbps) rather than 4 x 1024 (40 bits, 2 kbps). Same recipe, same seed, 1,000
    # steps: held-out SI-SNR 5.38 dB against 4.22 (the 4 x 1024 codec reached 4.99 only after 3,500), mel distance
    # 0.56 against 0.60, 76 % of its codes in use against 50 %. Style agreement of round trips grew with every
    # stage of the 4 x 1024 codec kept (0.03, 0.09, 0.25, 0.38 for 1..4): more stages buy style. Its token model
    # is no slower to run: 8 x 256 output logits a frame instead of 4 x 1024.
    codebook_size: int = 256  # tokens per codebook (a power of two)
    num_codebooks: int = 8  # residual quantizer stages = parallel token streams K
    hidden_size: int = 128  # latent channels per frame (the codebook vector size)
    use_causal_conv: bool = True  # causal convolutions: audio of frame t needs no codes after t

    def __post_init__(self) -> None:
        for name in ("sample_rate", "num_filters", "codebook_size", "num_codebooks", "hidden_size"):
            _check_int(name, getattr(self, name), 1)
        _check_int("num_lstm_layers", self.num_lstm_layers, 0)
        if not isinstance(self.upsampling_ratios, tuple) or not self.upsampling_ratios:
            raise ValueError(f"upsampling_ratios must be a non-empty tuple of ints, got {self.upsampling_ratios!r}")
        for ratio in self.upsampling_ratios:
            _check_int("each upsampling ratio", ratio, 1)
        if self.codebook_size & (self.codebook_size - 1):
            raise ValueError(f"codebook_size must be a power of two, got {self.codebook_size}")
        if self.sample_rate % self.hop_length:
            raise ValueError(
                f"sample_rate {self.sample_rate} Hz is not a whole number of hops of {self.hop_length} samples "
                f"(upsampling_ratios {self.upsampling_ratios}), so the frame rate would not be an integer"
            )

    @property
    def hop_length(self) -> int:
        """Samples per frame: the product of the up-sampling ratios."""
        return math.prod(self.upsampling_ratios)

    @property
    def frame_rate(self) -> int:
        """Token frames per second."""
        return self.sample_rate // self.hop_length

    @classmethod
    def from_encodec(cls, config: EncodecConfig, num_codebooks: int) -> CodecConfig:
        """The inverse of `to_encodec`, for a checkpoint's config and the codebooks in use."""
        return cls(
            sample_rate=config.sampling_rate,
            num_filters=config.num_filters,
            num_lstm_layers=config.num_lstm_layers,
            upsampling_ratios=tuple(config.upsampling_ratios),
            codebook_size=config.codebook_size,
            num_codebooks=num_codebooks,
            hidden_size=config.hidden_size,
            use_causal_conv=config.use_causal_conv,
        )

    def to_encodec(self) -> EncodecConfig:
        """The transformers config; its one target bandwidth yields exactly ``num_codebooks`` quantizers."""
        bits = int(math.log2(self.codebook_size))
        bandwidth = self.num_codebooks * bits * self.frame_rate / 1000  # kbps
        config = EncodecConfig(
            target_bandwidths=[bandwidth],
            sampling_rate=self.sample_rate,
            audio_channels=1,
            hidden_size=self.hidden_size,
            num_filters=self.num_filters,
            upsampling_ratios=list(self.upsampling_ratios),
            use_causal_conv=self.use_causal_conv,
            num_lstm_layers=self.num_lstm_layers,
            codebook_size=self.codebook_size,
        )
        # transformers floors 1000 * bandwidth / (frame_rate * bits); nudge past float rounding just below K
        while config.num_quantizers < self.num_codebooks:  # e.g. K = 31 codebooks of 128 at 75 Hz
            bandwidth = math.nextafter(bandwidth, math.inf)
            config.target_bandwidths = [bandwidth]
        return config


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


class EncodecModelOptionalLstm(EncodecModel):
    """``EncodecModel`` that also builds ``num_lstm_layers = 0`` (no LSTM), which transformers' class rejects."""

    def __init__(self, config: EncodecConfig) -> None:
        build = config
        if config.num_lstm_layers == 0:
            build = copy.deepcopy(config)
            build.num_lstm_layers = 1
        super().__init__(build)
        self.config = config
        if config.num_lstm_layers == 0:
            for stack in (self.encoder.layers, self.decoder.layers):
                for index, layer in enumerate(stack):
                    if isinstance(layer, EncodecLSTM):
                        stack[index] = nn.Identity()


@dataclass(frozen=True)
class ReceptiveField:
    """How many code frames around frame t the decoded audio of frame t depends on (from kernels and strides)."""

    left_frames: int  # earlier frames reached by the convolutions
    right_frames: int  # later frames reached; 0 with causal convolutions
    recurrent: bool  # an LSTM also carries state from every earlier frame, so left_frames is not the whole story


def _conv_span(layer: EncodecConv1d, lo: int, hi: int) -> tuple[int, int]:
    conv = layer.conv
    if conv.stride[0] != 1:
        raise CodecError(f"the decoder has a strided Conv1d (stride {conv.stride[0]}); streaming cannot follow it")
    kernel = (conv.kernel_size[0] - 1) * conv.dilation[0] + 1  # effective kernel, samples at this layer's rate
    padding = kernel - 1
    left = padding if layer.causal else padding - padding // 2
    lo, hi = lo - left, hi - left + kernel - 1
    if lo < 0:  # the window reaches into the padding before the first position
        if layer.pad_mode == "reflect":  # position -m mirrors position m
            hi = max(hi, -lo)
        elif layer.pad_mode not in ("constant", "replicate"):
            raise CodecError(f"decoder pad_mode {layer.pad_mode!r} is not supported for streaming")
    return max(lo, 0), hi


def _transposed_span(layer: EncodecConvTranspose1d, lo: int, hi: int) -> tuple[int, int]:
    kernel, stride = layer.conv.kernel_size[0], layer.conv.stride[0]
    padding = kernel - stride
    right = math.ceil(padding * layer.trim_right_ratio) if layer.causal else padding // 2
    left = padding - right
    # untrimmed output q = i * stride + j (0 <= j < kernel) takes input i; trimmed p = q - left
    return max(-((kernel - 1 - lo - left) // stride), 0), (hi + left) // stride


def _input_span(layer: nn.Module, lo: int, hi: int, lstm_reaches_start: bool) -> tuple[int, int]:
    """The input positions of one decoder layer that its outputs ``lo..hi`` depend on (a stream starts at 0)."""
    if isinstance(layer, nn.ELU | nn.Identity):
        return lo, hi
    if isinstance(layer, EncodecConv1d):
        return _conv_span(layer, lo, hi)
    if isinstance(layer, EncodecConvTranspose1d):
        return _transposed_span(layer, lo, hi)
    if isinstance(layer, EncodecLSTM):
        return (0 if lstm_reaches_start else lo), hi
    if isinstance(layer, EncodecResnetBlock):
        branch = (lo, hi)
        for inner in reversed(layer.block):
            branch = _input_span(inner, *branch, lstm_reaches_start)
        shortcut = _input_span(layer.shortcut, lo, hi, lstm_reaches_start)
        return min(branch[0], shortcut[0]), max(branch[1], shortcut[1])
    raise CodecError(f"cannot work out the receptive field of decoder layer {type(layer).__name__}")


def _frame_span(layers: Sequence[nn.Module], hop: int, frame: int, lstm_reaches_start: bool) -> tuple[int, int]:
    """First and last input frame that output frame ``frame`` (samples frame*hop .. +hop-1) of ``layers`` needs."""
    lo, hi = frame * hop, frame * hop + hop - 1
    for layer in reversed(layers):
        lo, hi = _input_span(layer, lo, hi, lstm_reaches_start)
    return lo, hi


def stack_field(layers: Sequence[nn.Module], hop: int) -> tuple[ReceptiveField, tuple[int, ...]]:
    """The receptive field of a decoder stack at its input frame rate, and how many input frames each of its first
    ``left_frames + 1`` output frames needs (reflect padding mirrors later frames to the front of a stream)."""
    steady = 1 << 20  # a frame far enough from the start that padding at position 0 cannot matter
    lo, hi = _frame_span(layers, hop, steady, lstm_reaches_start=False)
    recurrent = any(isinstance(module, nn.LSTM) for layer in layers for module in layer.modules())
    field = ReceptiveField(left_frames=steady - lo, right_frames=hi - steady, recurrent=recurrent)
    # past the left receptive field no span reaches position 0, so padding there no longer matters
    startup = tuple(
        _frame_span(layers, hop, frame, lstm_reaches_start=True)[1] + 1 for frame in range(field.left_frames + 1)
    )
    assert startup[-1] == field.left_frames + 1 + field.right_frames
    return field, startup


def frames_needed(field: ReceptiveField, startup: Sequence[int], frame: int) -> int:
    """Input frames that output ``frame`` of a stack with this field and startup table (see `stack_field`) needs."""
    return startup[frame] if frame < len(startup) else frame + 1 + field.right_frames


class Codec:
    """Audio <-> tokens. ``encode``: (B, T) float -> (B, K, F) long; ``decode``: (B, K, F) -> (B, F * hop_length)."""

    def __init__(self, model: EncodecModel, num_codebooks: int | None = None) -> None:
        config = model.config
        if config.audio_channels != 1:
            raise CodecError(f"concert's codec is mono; this model has audio_channels = {config.audio_channels}")
        if config.normalize or config.chunk_length_s is not None:
            raise CodecError(
                "the codec must decode from tokens alone; a model with normalize=True or chunk_length_s set "
                f"(here normalize={config.normalize}, chunk_length_s={config.chunk_length_s}) needs per-chunk scales"
            )
        if config.sampling_rate % config.hop_length:
            raise CodecError(
                f"sampling_rate {config.sampling_rate} Hz is not a whole number of hops of {config.hop_length} samples"
            )
        if config.pad_mode not in ("reflect", "constant", "replicate"):
            raise CodecError(f"pad_mode {config.pad_mode!r} is not supported; use 'reflect', 'constant' or 'replicate'")
        counts = {model.quantizer.get_num_quantizers_for_bandwidth(b): b for b in config.target_bandwidths}
        wanted = max(counts) if num_codebooks is None else num_codebooks
        if wanted not in counts:
            raise CodecError(f"this codec offers {sorted(counts)} codebooks (one per target bandwidth), not {wanted}")
        self._model = model.eval().requires_grad_(False)
        self._bandwidth = counts[wanted]  # kbps, passed to EncodecModel.encode
        self._num_codebooks = wanted
        self._device = next(model.parameters()).device
        self._field, self._startup_needs = stack_field(list(model.decoder.layers), self.hop_length)

    @classmethod
    def random(cls, config: CodecConfig, seed: int) -> Codec:
        """A seeded, randomly initialised codec (same seed, same weights) for tests and until one is trained.

        Codebook vectors are drawn with the mean and spread of the random encoder's output on seeded noise (each
        stage from the residual the stages before it leave), so encoding uses many codes. The global torch RNG is
        left as it was.
        """
        generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            model = EncodecModelOptionalLstm(config.to_encodec()).eval()
            noise = 0.1 * torch.randn(4, 1, config.sample_rate, generator=generator)  # (4, 1, T) four seconds
            residual = model.encoder(noise).transpose(1, 2).flatten(0, 1)  # (N, D) latent frames
            for layer in model.quantizer.layers:  # like EnCodec's k-means init: codebooks spread like the data
                book = layer.codebook
                mean, std = residual.mean(dim=0), residual.std(dim=0)  # (D,), (D,)
                book.embed.copy_(mean + std * torch.randn(book.embed.shape, generator=generator))  # (card, D)
                book.embed_avg.copy_(book.embed)
                residual = residual - book.decode(book.encode(residual))  # (N, D) what the next stage refines
        return cls(model)

    @classmethod
    def from_pretrained(cls, path: Path | str, num_codebooks: int | None = None) -> Codec:
        """Load a Hugging Face format EnCodec checkpoint from a local directory (never the network).

        ``num_codebooks`` picks one of the checkpoint's target bandwidths; by default the largest.
        """
        path = Path(path)
        if not path.is_dir():
            raise CodecError(f"codec checkpoint {path} is not a directory")
        config_file = path / "config.json"
        if not config_file.is_file():
            raise CodecError(f"codec checkpoint {path} has no config.json")
        try:
            raw = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CodecError(f"{config_file} is not readable JSON: {error}") from error
        model_type = raw.get("model_type") if isinstance(raw, dict) else None
        if model_type != "encodec":
            raise CodecError(f"{config_file} describes model_type {model_type!r}, not an EnCodec codec ('encodec')")
        if raw.get("audio_channels", 1) != 1:
            raise CodecError(f"{config_file} is a {raw['audio_channels']}-channel codec; concert's codec is mono")
        if not any((path / name).is_file() for name in WEIGHT_FILES):
            raise CodecError(f"codec checkpoint {path} has no weights (looked for {', '.join(WEIGHT_FILES)})")
        try:
            loaded: Any = EncodecModelOptionalLstm.from_pretrained(  # float32 whatever the file's dtype (CPU convs)
                path, local_files_only=True, output_loading_info=True, dtype=torch.float32
            )
            model, info = loaded
        except (OSError, ValueError, RuntimeError, TypeError, StrictDataclassError, SafetensorError) as error:
            raise CodecError(f"could not load the codec checkpoint {path}: {error}") from error
        for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
            if info.get(kind):
                names = ", ".join(sorted(str(key) for key in info[kind])[:5])
                raise CodecError(f"codec checkpoint {path} does not match its config.json: {kind} {names}")
        return cls(model, num_codebooks)

    def save(self, path: Path | str) -> None:
        """Write the codec in Hugging Face format (``config.json`` + ``model.safetensors``) to directory ``path``."""
        self._model.save_pretrained(Path(path))

    @property
    def model(self) -> EncodecModel:
        return self._model

    @property
    def sample_rate(self) -> int:
        """Audio samples per second (Hz), mono."""
        return int(self._model.config.sampling_rate)

    @property
    def hop_length(self) -> int:
        """Audio samples per token frame."""
        return int(self._model.config.hop_length)

    @property
    def frame_rate(self) -> int:
        """Token frames per second (Hz)."""
        return self.sample_rate // self.hop_length

    @property
    def num_codebooks(self) -> int:
        """K, the number of parallel token streams (residual quantizer stages in use)."""
        return self._num_codebooks

    @property
    def codebook_size(self) -> int:
        """Tokens per codebook; codes lie in [0, codebook_size)."""
        return int(self._model.quantizer.codebook_size)

    @property
    def receptive_field(self) -> ReceptiveField:
        return self._field

    @property
    def default_left_context_frames(self) -> int:
        """Left context a streaming decoder needs: exact for convolutions, plus LSTM_WARMUP_S with an LSTM."""
        warmup = math.ceil(LSTM_WARMUP_S * self.frame_rate) if self._field.recurrent else 0
        return self._field.left_frames + warmup

    def frames_needed(self, frame: int) -> int:
        """How many code frames must have arrived before frame ``frame`` decodes exactly as in a whole decode.

        ``frame + 1 + right_frames`` in general; more for the first frames when reflect padding mirrors later frames
        to the front of the stream.
        """
        return frames_needed(self._field, self._startup_needs, frame)

    def encode(self, wav: Tensor) -> Tensor:
        """(B, T) float audio at ``sample_rate`` -> (B, K, ceil(T / hop_length)) long codes in [0, codebook_size)."""
        if not isinstance(wav, Tensor) or not wav.is_floating_point():
            raise TypeError(f"wav must be a float torch.Tensor, got {getattr(wav, 'dtype', type(wav).__name__)}")
        if wav.dim() != 2 or wav.shape[0] < 1 or wav.shape[1] < 1:
            raise ValueError(f"wav must have shape (B, T) with B, T >= 1, got {tuple(wav.shape)}")
        audio = wav.to(self._device, torch.float32)[:, None, :]  # (B, 1, T)
        with torch.no_grad():
            out = self._model.encode(audio, bandwidth=self._bandwidth, return_dict=True)
        return out.audio_codes[0]  # (B, K, F)

    def check_codes(self, codes: Tensor) -> None:
        """Raise TypeError/ValueError unless ``codes`` is a (B, K, F) LongTensor of this codec's tokens."""
        if not isinstance(codes, Tensor) or codes.dtype != torch.long:
            raise TypeError(f"codes must be a LongTensor, got {getattr(codes, 'dtype', type(codes).__name__)}")
        if codes.dim() != 3 or codes.shape[0] < 1 or codes.shape[1] != self.num_codebooks:
            raise ValueError(
                f"codes must have shape (B, {self.num_codebooks}, F) with B >= 1, got {tuple(codes.shape)}"
            )
        if codes.numel() and not 0 <= int(codes.min()) <= int(codes.max()) < self.codebook_size:
            bad = int(codes.min()) if int(codes.min()) < 0 else int(codes.max())
            raise ValueError(f"code {bad} is outside the codebook [0, {self.codebook_size})")

    def decode(self, codes: Tensor) -> Tensor:
        """(B, K, F) long codes -> (B, F * hop_length) float32 audio at ``sample_rate``."""
        self.check_codes(codes)
        if codes.shape[-1] == 0:
            return torch.zeros(codes.shape[0], 0, device=self._device)  # (B, 0)
        with torch.no_grad():
            out = self._model.decode(codes.to(self._device)[None], [None], return_dict=True)
        return out.audio_values[:, 0]  # (B, F * hop)

    def streaming_decoder(self, left_context_frames: int | None = None) -> ChunkDecoder:
        """A decoder for codes arriving in chunks (see ``engine.codec.stream``).

        By default it is exact: a convolution-only decoder re-decodes its receptive field as left context; a decoder
        with an LSTM carries the LSTM's state from chunk to chunk. With ``left_context_frames`` set, every decoder
        re-decodes that many frames instead (an LSTM then restarts from zero state at each window).
        """
        from engine.codec.stream import RecurrentStreamingDecoder, StreamingDecoder, splits_at_lstm

        if left_context_frames is None and self._field.recurrent and splits_at_lstm(self._model):
            return RecurrentStreamingDecoder(self)
        if left_context_frames is None:
            left_context_frames = self.default_left_context_frames
        return StreamingDecoder(self, left_context_frames)
