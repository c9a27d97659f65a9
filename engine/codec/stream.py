"""Decoding codes chunk by chunk so that the chunks' audio concatenates to a whole decode: no seams.

Two decoders behind one interface (`ChunkDecoder`: push codes, get the audio of the frames that became final;
`flush()` at the end of the stream):

- `StreamingDecoder`, for convolution-only decoders (the embedded codec): each push decodes again a window of the
  last `left_context_frames` frames already played plus the new ones, and returns the new frames' audio::

      frames   ... | left context (decoded again) | new frames (returned) | held back (need later frames)

  With the receptive field as left context this equals a whole decode up to float rounding. Given an LSTM decoder
  it is only close: the LSTM restarts from zero state at each window (`LSTM_WARMUP_S` of extra left context).

- `RecurrentStreamingDecoder`, for EnCodec decoders with an LSTM (MusicGen's 32 kHz codec). The decoder is split
  at its LSTM: the first convolution runs once per frame (as soon as its right context has arrived) and the LSTM
  carries its state from chunk to chunk, so nothing before it is decoded twice; the convolutional upsampling stack
  after it runs as a `StreamingDecoder`-style window over the LSTM's output frames. Equal to a whole decode up to
  float rounding, and about half the work of the windowed decoder with its LSTM warm-up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Protocol, cast

import torch
from torch import Tensor, nn
from transformers import EncodecModel
from transformers.models.encodec.modeling_encodec import EncodecConv1d, EncodecLSTM

from engine.codec.model import Codec, _check_int, frames_needed, stack_field


class ChunkDecoder(Protocol):
    """What `Codec.streaming_decoder` returns."""

    @property
    def frames_received(self) -> int: ...

    @property
    def frames_emitted(self) -> int: ...

    def push(self, codes: Tensor) -> Tensor:
        """Add (B, K, n) codes; returns (B, m * hop_length) audio for the m frames that became final (m may be 0)."""
        ...

    def flush(self) -> Tensor:
        """Audio (B, m * hop_length) of every frame still held back; the decoder takes no pushes after this."""
        ...


class Window:
    """The windowed, exact chunked decode of a convolution stack: frames (B, C, n) in, audio (B, n * hop) out.

    `decode` maps a run of input frames to their audio as if they were a whole stream; frame f is final once
    `frames_needed(f)` frames have arrived. Each emit decodes `left` frames of context again.
    """

    def __init__(self, decode: Callable[[Tensor], Tensor], frames_needed: Callable[[int], int], hop: int, left: int):
        self._decode = decode
        self._needed = frames_needed
        self._hop = hop
        self._left = left
        self._buffer: Tensor | None = None  # (B, C, n) frames buffer_start .. received - 1
        self._buffer_start = 0  # index of the buffer's first frame in the stream
        self.received = 0  # frames pushed so far
        self.emitted = 0  # frames whose audio has been returned

    def append(self, frames: Tensor) -> None:
        """Add frames (B, C, n) without emitting any."""
        self._buffer = frames if self._buffer is None else torch.cat([self._buffer, frames], dim=-1)  # (B, C, n)
        self.received += frames.shape[-1]

    def push(self, frames: Tensor) -> Tensor:
        """Add frames (B, C, n); return the audio of the frames that became final."""
        self.append(frames)
        end = self.emitted
        while end < self.received and self._needed(end) <= self.received:
            end += 1
        return self.emit(end)

    def emit(self, end: int) -> Tensor:
        """Audio (B, (end - emitted) * hop) of frames emitted .. end - 1, decoded with the frames received so far."""
        if self._buffer is None:
            return torch.zeros(0, 0)
        if end == self.emitted:
            return torch.zeros(self._buffer.shape[0], 0)  # (B, 0)
        hop = self._hop
        start = max(self._buffer_start, self.emitted - self._left)
        wav = self._decode(self._buffer[..., start - self._buffer_start :])  # (B, (received - start) * hop)
        out = wav[:, (self.emitted - start) * hop : (end - start) * hop]  # (B, (end - emitted) * hop)
        self.emitted = end
        keep = max(self._buffer_start, end - self._left)  # first frame a later window can need
        self._buffer = self._buffer[..., keep - self._buffer_start :]  # (B, C, received - keep)
        self._buffer_start = keep
        return out


class _Checked:
    """What both decoders share: input checks (valid codes, one batch size, nothing after flush()) and the
    window their audio comes out of."""

    _window: Window

    def __init__(self, codec: Codec) -> None:
        self._codec = codec
        self._batch: int | None = None
        self._flushed = False

    @property
    def frames_emitted(self) -> int:
        return self._window.emitted

    def _accept(self, codes: Tensor) -> None:
        if self._flushed:
            raise RuntimeError("this decoder was flushed; start another with codec.streaming_decoder()")
        self._codec.check_codes(codes)
        if self._batch is not None and codes.shape[0] != self._batch:
            raise ValueError(f"batch size changed from {self._batch} to {codes.shape[0]} between pushes")
        self._batch = codes.shape[0]


class StreamingDecoder(_Checked):
    """Windowed decode over codes (see the module docstring); the codec's receptive field is the exact context."""

    def __init__(self, codec: Codec, left_context_frames: int) -> None:
        _check_int("left_context_frames", left_context_frames, 0)
        super().__init__(codec)
        self._left = left_context_frames
        self._window = Window(codec.decode, codec.frames_needed, codec.hop_length, left_context_frames)

    @property
    def left_context_frames(self) -> int:
        return self._left

    @property
    def frames_received(self) -> int:
        return self._window.received

    def push(self, codes: Tensor) -> Tensor:
        self._accept(codes)
        return self._window.push(codes.clone())

    def flush(self) -> Tensor:
        self._flushed = True
        return self._window.emit(self._window.received)


def splits_at_lstm(model: EncodecModel) -> bool:
    """True for the SEANet layout `RecurrentStreamingDecoder` needs: a weight-normed, unstrided first convolution,
    then the LSTM, then no other recurrence."""
    layers = list(model.decoder.layers)
    if len(layers) < 3 or not isinstance(layers[0], EncodecConv1d) or not isinstance(layers[1], EncodecLSTM):
        return False
    first = layers[0]
    if first.norm_type != "weight_norm" or first.conv.stride[0] != 1:
        return False
    return not any(isinstance(m, nn.LSTM) for layer in layers[2:] for m in layer.modules())


class RecurrentStreamingDecoder(_Checked):
    """Exact chunked decode for an EnCodec decoder with an LSTM (see the module docstring)."""

    def __init__(self, codec: Codec) -> None:
        model = codec.model
        if not splits_at_lstm(model):
            raise ValueError("this codec's decoder is not conv -> LSTM -> convolutions; use StreamingDecoder")
        super().__init__(codec)
        layers = list(model.decoder.layers)
        self._quantizer = model.quantizer
        self._first = cast(EncodecConv1d, layers[0])  # checked by splits_at_lstm
        self._lstm = cast(EncodecLSTM, layers[1]).lstm
        self._post: Sequence[nn.Module] = layers[2:]
        # the first convolution at the frame rate (hop 1): its padding, and the frames each output needs
        first_field, first_startup = stack_field([self._first], 1)
        self._pad_left, self._pad_right = first_field.left_frames, first_field.right_frames
        self._first_needs = partial(frames_needed, first_field, first_startup)
        field, startup = stack_field(self._post, codec.hop_length)
        post_needs = partial(frames_needed, field, startup)
        self._window = Window(self._decode_post, post_needs, codec.hop_length, field.left_frames)
        self._emb: Tensor | None = None  # (B, D, n) quantized frames emb_start .. received - 1
        self._emb_start = 0
        self._received = 0  # code frames pushed
        self._latent = 0  # frames through the first convolution and the LSTM so far
        self._state: tuple[Tensor, Tensor] | None = None  # the LSTM's (h, c), each (layers, B, D)

    @property
    def frames_received(self) -> int:
        return self._received

    def push(self, codes: Tensor) -> Tensor:
        self._accept(codes)
        with torch.no_grad():
            emb = self._quantizer.decode(codes.transpose(0, 1))  # (B, D, n) frame by frame
            self._emb = emb if self._emb is None else torch.cat([self._emb, emb], dim=-1)  # (B, D, m)
            self._received += codes.shape[-1]
            end = self._latent
            while end < self._received and self._first_needs(end) <= self._received:
                end += 1
            if end == self._latent:  # nothing new is final yet: the first convolution waits for its right context
                return torch.zeros(codes.shape[0], 0)  # (B, 0)
            return self._window.push(self._through_lstm(end, at_end=False))

    def flush(self) -> Tensor:
        self._flushed = True
        with torch.no_grad():
            if self._received > self._latent:
                self._window.append(self._through_lstm(self._received, at_end=True))
            return self._window.emit(self._window.received)

    def _through_lstm(self, end: int, at_end: bool) -> Tensor:
        """Frames latent .. end - 1 through the first convolution and the LSTM (state carried) -> (B, D', n)."""
        assert self._emb is not None
        first, start = self._first, self._latent
        lo, hi = start - self._pad_left, end + self._pad_right  # code frames the outputs start .. end - 1 read
        if lo <= 0 and at_end:  # the whole stream: pad both ends in one call, exactly as a whole decode does
            x = first._pad1d(self._emb, (self._pad_left, self._pad_right), mode=first.pad_mode)  # (B, D, m + pad)
            x = x[..., start : end + self._pad_left + self._pad_right]
        else:
            pads = (max(0, -lo), max(0, hi - self._received) if at_end else 0)
            # mirrored into the front: frames 1 .. pads[0], so the window reaches at least frame pads[0]
            top = max(min(hi, self._received), pads[0] + 1)
            x = self._emb[..., max(lo, 0) - self._emb_start : top - self._emb_start]  # (B, D, w)
            if pads != (0, 0):
                x = first._pad1d(x, pads, mode=first.pad_mode)
        h = first.conv(x)[..., : end - start]  # (B, D', end - start): a valid convolution over the window
        seq = h.permute(2, 0, 1)  # (n, B, D')
        out, self._state = self._lstm(seq, self._state)  # (n, B, D')
        latent = (out + seq).permute(1, 2, 0)  # (B, D', n) EncodecLSTM's skip connection
        self._latent = end
        keep = max(self._emb_start, end - self._pad_left)  # first code frame a later window reads
        self._emb = self._emb[..., keep - self._emb_start :]
        self._emb_start = keep
        return latent

    def _decode_post(self, latent: Tensor) -> Tensor:
        """The convolutions after the LSTM: latent frames (B, D', n) -> audio (B, n * hop)."""
        h = latent
        for layer in self._post:
            h = layer(h)
        return h[:, 0]  # (B, n * hop)
