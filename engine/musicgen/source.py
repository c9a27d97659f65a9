"""MusicGen in our continuation loop: the crowd's prompt mix as weighted text rows of classifier-free guidance.

    prompt mix ──▶ one text per entry ("house music, 124 bpm, minor key, energetic, full drop")
               ──▶ tokenizer ──▶ T5 encoder (cached per text) ──▶ rows [null, text_1 .. text_n]
               ──▶ LMStream.set_cross; weights = the mix          ──▶ engine.generate.guidance.guided_step

During a glide the rows are the null row plus the texts of both the start and the end prompt, weighted by the
lerp of the two mixes, so a transition interpolates over `ramp_bars` from its landing bar. When the set of
texts changes, kept texts keep their row (and its cached keys and values), a new text's row starts as a copy of
the heaviest row, and texts whose weight reached 0 at the end of a glide are dropped; only the cross-attention
memory is replaced. The self-attention cache is never reset by a prompt change (only by the sliding window).
"""

from __future__ import annotations

import logging
import math
import re
import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import EncodecModel

from engine.codec.model import Codec, CodecError
from engine.generate.continuation import ContinuationConfig, TokenSource
from engine.lm.stream import LMStream
from engine.music.interpret import Controls, resolve
from engine.music.prompt import Prompt
from engine.music.styles import GENRE_IDS, genre
from engine.musicgen.weights import MusicgenParts

log = logging.getLogger(__name__)

TEXT_CACHE_SIZE = 64  # encoded texts kept (LRU); a set rarely plays more distinct prompts than this at once
ENERGY_WORDS = ((0.25, "calm"), (0.45, "relaxed"), (0.6, "groovy"), (math.inf, "energetic"))  # (energy below, word)
SECTION_WORDS = {"intro": "sparse intro", "build": "rising build-up", "drop": "full drop", "breakdown": "breakdown"}
DARK_BELOW, BRIGHT_ABOVE = 0.35, 0.65  # brightness (0..1) that earns the word "dark" / "bright"

Tokenizer = Callable[..., Any]  # texts, return_tensors="pt", padding=True -> {"input_ids", "attention_mask"} (B, S)


def control_words(controls: Controls) -> str:
    """The resolved controls in words, e.g. "124 bpm, minor key, energetic, full drop"."""
    energy = next(word for below, word in ENERGY_WORDS if controls.energy < below)
    tone = "dark" if controls.brightness < DARK_BELOW else "bright" if controls.brightness > BRIGHT_ABOVE else ""
    words = [f"{round(controls.bpm)} bpm", f"{controls.mode} key", energy, tone, SECTION_WORDS[controls.section]]
    return ", ".join(w for w in words if w)


@dataclass(frozen=True)
class TextCondition:
    """A validated prompt as MusicGen consumes it: one text per mix entry, with its weight."""

    controls: Controls  # numbers the prompt resolved to (tempo for the bar clock, energy, section)
    weights: Tensor  # (num_genres,) float32 genre weights, sum 1: what is playing
    texts: tuple[tuple[str, float], ...]  # (text, weight) per conditional guidance row, weights sum 1

    @classmethod
    def of(cls, prompt: Prompt) -> TextCondition:
        """Resolve and validate (raises PromptError / UnknownStyleError naming the bad value); build the texts.

        A genre id reads as its label ("drum & bass music"); free text (already checked by `resolve`) as itself.
        Both get the same control words. Entries that read the same are merged.
        """
        controls = resolve(prompt)
        words = control_words(controls)
        texts: dict[str, float] = {}
        for sw in prompt.mix:
            name = f"{genre(sw.style).label.lower()} music" if sw.style in GENRE_IDS else " ".join(sw.style.split())
            text = f"{name}, {words}"
            texts[text] = texts.get(text, 0.0) + sw.weight
        weights = torch.as_tensor(controls.weights, dtype=torch.float32)  # (num_genres,)
        return cls(controls, weights, tuple(texts.items()))


def text_mix(start: TextCondition, end: TextCondition, a: float) -> dict[str, float]:
    """Text weights a fraction `a` (0..1) of the way from start to end: start's texts first, then end's new ones."""
    mix = {text: (1.0 - a) * w for text, w in start.texts}
    for text, w in end.texts:
        mix[text] = mix.get(text, 0.0) + a * w
    return mix


class WordHashTokenizer:
    """Offline fallback tokenizer for checkpoints shipped without one (tests, random benchmark models).

    Lower-cased words -> 3 + crc32(word) mod (vocab_size - 3), then EOS id 1, like T5 (0 = pad, 2 = unknown).
    Deterministic across processes and never touches the network, but a trained T5 encoder does not understand
    these ids: a real checkpoint needs its own tokenizer files (tokenizer.json or spiece.model).
    """

    EOS, PAD, FIRST = 1, 0, 3  # T5's end-of-sequence and pad ids; the first id words hash to

    def __init__(self, vocab_size: int, max_words: int = 64) -> None:
        if vocab_size <= self.FIRST:
            raise ValueError(f"vocab_size must be > {self.FIRST} for the word-hashing tokenizer, got {vocab_size}")
        if max_words < 1:
            raise ValueError(f"max_words must be >= 1, got {max_words}")
        self.vocab_size = vocab_size
        self.max_words = max_words  # longer texts are cut to this many words

    def ids(self, text: str) -> list[int]:
        words = re.findall(r"[\w&'-]+", text.lower())[: self.max_words]
        span = self.vocab_size - self.FIRST
        return [self.FIRST + zlib.crc32(w.encode()) % span for w in words] + [self.EOS]

    def __call__(self, texts: Sequence[str], return_tensors: str = "pt", padding: bool = True) -> dict[str, Tensor]:
        rows = [self.ids(t) for t in texts]
        width = max(len(r) for r in rows)
        input_ids = torch.tensor([r + [self.PAD] * (width - len(r)) for r in rows])  # (B, S)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])  # (B, S)
        return {"input_ids": input_ids, "attention_mask": mask}


def text_tokenizer(parts: MusicgenParts) -> Tokenizer:
    """The checkpoint's T5 tokenizer, or (logged) the offline `WordHashTokenizer` over the text encoder's vocab."""
    if parts.tokenizer is not None:
        return parts.tokenizer
    if parts.text_encoder is None:
        raise ValueError("this MusicGen checkpoint has no text encoder; the musicgen backend needs the full model")
    vocab = int(parts.text_encoder.get_input_embeddings().num_embeddings)  # type: ignore[operator]
    log.warning(
        "MusicGen checkpoint has no tokenizer files: using the offline WordHashTokenizer over %d ids "
        "(fine for random test models; a trained checkpoint needs its tokenizer.json / spiece.model)",
        vocab,
    )
    return WordHashTokenizer(vocab)


class MusicgenConditioner:
    """MusicGen's `engine.generate.continuation.Conditioner`: text rows through cross-attention. One per source."""

    def __init__(self, parts: MusicgenParts, tokenizer: Tokenizer | None = None) -> None:
        if parts.text_encoder is None:
            raise ValueError("this MusicGen checkpoint has no text encoder; the musicgen backend needs the full model")
        self.parts = parts
        self.tokenizer = text_tokenizer(parts) if tokenizer is None else tokenizer
        self._encoded: OrderedDict[str, tuple[Tensor, Tensor]] = OrderedDict()  # text -> (S, dim), (S,)
        self._texts: list[str] = []  # text of conditional row i + 1 of the stream (row 0 is the null text)
        self._weights = torch.zeros(0)  # (n,) the rows' weights at the last step

    @property
    def start_token(self) -> int:
        return self.parts.start_token

    @property
    def texts(self) -> tuple[str, ...]:
        """Texts of the stream's conditional rows, in row order (row 0, the null text, not included)."""
        return tuple(self._texts)

    def condition(self, prompt: Prompt) -> TextCondition:
        return TextCondition.of(prompt)

    def blend(self, start: TextCondition, end: TextCondition, a: float) -> TextCondition:
        texts = tuple((t, w) for t, w in text_mix(start, end, a).items() if w > 0)
        return TextCondition(end.controls, torch.lerp(start.weights, end.weights, a), texts)

    def batch_size(self, state: TextCondition) -> int:
        return 1 + len(state.texts)

    def rows(
        self, stream: LMStream, start: TextCondition, end: TextCondition, a: float, bar: float
    ) -> tuple[None, Tensor]:
        """Re-batch the stream if the set of texts changed; return (None, weights (n,)) for `guided_step`."""
        mix = text_mix(start, end, a)
        live = {t for t, w in mix.items() if w > 0 or a < 1}  # mid-glide both prompts keep their rows
        texts = [t for t in self._texts if t in live] + [t for t in mix if t in live and t not in self._texts]
        if texts != self._texts or stream.cross is None:
            self._switch(stream, texts)
        self._weights = torch.tensor([mix[t] for t in texts], dtype=torch.float32)  # (n,)
        return None, self._weights

    def _switch(self, stream: LMStream, texts: list[str]) -> None:
        if self._texts:  # kept texts keep their row; a new one copies the heaviest row's history
            old = {t: i + 1 for i, t in enumerate(self._texts)}
            heaviest = 1 + int(torch.argmax(self._weights))
            index = [0] + [old.get(t, heaviest) for t in texts]
            if index != list(range(stream.batch_size)):
                stream.select_rows(index)
        assert stream.batch_size == 1 + len(texts), "stream rows out of step with the texts"
        stream.set_cross(*self._cross(texts))
        self._texts = texts

    def _cross(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        """Rows [null, texts...] -> encoder states (R, S, dim) and mask (R, S), padded to the longest text."""
        encoded = [self._encode(t) for t in texts]
        length = max(s.shape[0] for s, _ in encoded)
        null_states, null_mask = self.parts.null_text(1, length)  # (1, S, dim), (1, S): zeros, as MusicGen does
        states = [null_states[0]] + [F.pad(s, (0, 0, 0, length - s.shape[0])) for s, _ in encoded]  # R x (S, dim)
        masks = [null_mask[0]] + [F.pad(m, (0, length - m.shape[0])) for _, m in encoded]  # R x (S,)
        return torch.stack(states), torch.stack(masks)  # (R, S, dim), (R, S)

    def _encode(self, text: str) -> tuple[Tensor, Tensor]:
        """One text -> (states (S, dim), mask (S,)) through the T5 encoder, cached."""
        if text in self._encoded:
            self._encoded.move_to_end(text)
            return self._encoded[text]
        batch = self.tokenizer([text], return_tensors="pt", padding=True)
        states, mask = self.parts.encode_text(batch["input_ids"], batch["attention_mask"])  # (1, S, dim), (1, S)
        self._encoded[text] = (states[0], mask[0].long())
        if len(self._encoded) > TEXT_CACHE_SIZE:
            self._encoded.popitem(last=False)
        return self._encoded[text]


def musicgen_codec(parts: MusicgenParts) -> Codec:
    """Our streaming codec over the checkpoint's EnCodec; CodecError unless it decodes the decoder's tokens."""
    K, card = parts.lm.config.num_codebooks, parts.lm.config.card
    model = parts.audio_encoder
    if not isinstance(model, EncodecModel):
        found = "none" if model is None else type(model).__name__
        raise CodecError(f"the musicgen backend needs the checkpoint's EnCodec audio encoder, found {found}")
    try:
        codec = Codec(model, num_codebooks=K)
    except CodecError as err:
        raise CodecError(f"the checkpoint's EnCodec cannot decode the decoder's {K} codebooks: {err}") from err
    if codec.codebook_size != card:
        raise CodecError(
            f"the checkpoint's EnCodec has codebooks of {codec.codebook_size} tokens, the decoder predicts {card}"
        )
    return codec


def musicgen_source(
    parts: MusicgenParts, prompt: Prompt, config: ContinuationConfig, *, tokenizer: Tokenizer | None = None
) -> TokenSource:
    """An endless, steerable source over in-memory MusicGen parts (see `engine.musicgen.weights.load_musicgen`).

    tokenizer: None takes the checkpoint's, or the logged `WordHashTokenizer` fallback when it has none.
    The codec's sample rate (MusicGen: 32 kHz) is the source's. Raises ValueError for a window longer than the
    decoder's max_len, CodecError for an EnCodec that cannot decode the decoder's tokens.
    """
    codec = musicgen_codec(parts)
    return TokenSource(parts.lm, codec, prompt, config, MusicgenConditioner(parts, tokenizer))
