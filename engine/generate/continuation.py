"""Endless, steerable generation of codec tokens: the continuation loop and its audio source.

    prompt ──▶ conditioning (interpolated over `ramp_bars` from the landing bar)
                  │ rows [null, cond] → classifier-free guidance
    tokens ──▶ TokenLM step (KV cache) ──▶ sample ──▶ delayed tokens ──▶ complete frames
                  ▲                                                          │
                  └── when the cache holds `window` steps: reset and re-prime │
                      from the last `window − stride` steps (no audible seam) ▼
                                                      streaming codec decode ──▶ PCM

The bar clock runs at the prompt's tempo (ramped like the synth's), so changes land
on bar boundaries and every chunk reports where bars start.

What the rows are is a `Conditioner`'s business; the loop only keeps the glide (a start and an end prompt
state and how far along it is). `StyleConditioner` is the embedded model's (style vectors added to the
inputs); `engine.musicgen.source.MusicgenConditioner` is MusicGen's (text rows through cross-attention).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
from torch import Tensor

from engine.codec.model import Codec
from engine.generate.conditioning import NUM_CONTROLS, PROMPT_CONTROLS, StyleCondition, phase_matrix
from engine.generate.guidance import guided_prefill, guided_step, style_rows
from engine.lm.model import TokenLM
from engine.lm.patterns import complete_frames, delayed_step_mask, revert_delay_pattern
from engine.lm.sampling import sample
from engine.lm.stream import LMStream
from engine.music.interpret import Controls
from engine.music.meter import BEATS_PER_BAR
from engine.music.prompt import Prompt
from engine.music.steering import Steering
from engine.music.styles import GENRE_IDS
from engine.source import Chunk, NowPlaying


@dataclass(frozen=True)
class ContinuationConfig:
    window: int = 500  # delayed steps the model attends to (10 s at 50 Hz)
    stride: int = 250  # steps dropped when the window is full; re-prime from the last window - stride
    chunk_frames: int = 25  # complete frames generated per next_chunk (0.5 s at 50 Hz)
    temperature: float = 1.0  # sampling temperature; 0 = greedy
    top_k: int = 250  # sample among the k most likely tokens; 0 = no limit
    top_p: float = 1.0  # nucleus sampling mass; 1 = off
    cfg_scale: float = 3.0  # classifier-free guidance scale g
    seed: int = 0  # sampling seed

    def __post_init__(self) -> None:
        if not 0 < self.stride < self.window:
            raise ValueError(f"need 0 < stride < window, got window={self.window}, stride={self.stride}")
        if self.chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {self.chunk_frames}")
        if self.cfg_scale < 0:
            raise ValueError(f"cfg_scale must be >= 0, got {self.cfg_scale}")


class PromptState(Protocol):
    """A validated prompt as a conditioner consumes it; the loop reads only these two fields."""

    @property
    def controls(self) -> Controls: ...  # tempo (the bar clock), energy, section

    @property
    def weights(self) -> Tensor: ...  # (num_genres,) genre weights: what is playing


S = TypeVar("S", bound=PromptState)


class Conditioner(Protocol[S]):
    """Turns the glide between two prompt states into guidance rows for the stream."""

    @property
    def start_token(self) -> int: ...  # the first frame's ids and the delay pattern's pad (MusicGen's BOS)

    def condition(self, prompt: Prompt) -> S:
        """Resolve and validate; raises PromptError / UnknownStyleError naming the bad value."""
        ...

    def blend(self, start: S, end: S, a: float) -> S:
        """The state a fraction `a` (0..1) of the way from start to end (a glide cut short by a new change)."""
        ...

    def batch_size(self, state: S) -> int:
        """Rows the stream opens with for the first state."""
        ...

    def rows(self, stream: LMStream, start: S, end: S, a: float, bar: float) -> tuple[Tensor | None, Tensor]:
        """Rows at glide fraction `a` and bar clock `bar` (at the centre of the frame the next step starts):
        (cond (R, dim) or None, weights (n,) or (1, n)) for `guided_step`.

        May re-batch the stream (`select_rows`) or replace its cross-attention memory; never its cached frames.
        """
        ...


class StyleConditioner:
    """The embedded model: rows [null, condition(mix, controls)] added to every input frame (`style_rows`).

    The controls are the prompt's features and, for a model trained with them (`NUM_CONTROLS`), the bar clock's
    phase (`engine.generate.conditioning.phase_matrix`), so the rows change every frame.
    """

    def __init__(self, lm: TokenLM) -> None:
        if lm.config.num_controls not in (0, PROMPT_CONTROLS, NUM_CONTROLS):
            raise ValueError(
                f"the style model takes 0, {PROMPT_CONTROLS} or {NUM_CONTROLS} control features, "
                f"this one {lm.config.num_controls}"
            )
        self.lm = lm
        self._phase = lm.config.num_controls == NUM_CONTROLS
        self._last: tuple[StyleCondition, StyleCondition, float, tuple[Tensor, Tensor]] | None = None

    @property
    def start_token(self) -> int:
        return self.lm.config.card

    def condition(self, prompt: Prompt) -> StyleCondition:
        return StyleCondition.of(prompt)

    def blend(self, start: StyleCondition, end: StyleCondition, a: float) -> StyleCondition:
        w, f = start.lerp(end, a)
        return StyleCondition(end.controls, w, f)

    def batch_size(self, state: StyleCondition) -> int:
        return 2

    def rows(
        self, stream: LMStream, start: StyleCondition, end: StyleCondition, a: float, bar: float
    ) -> tuple[Tensor, Tensor]:
        last = self._last
        if not self._phase and last is not None and last[0] is start and last[1] is end and last[2] == a:
            return last[3]  # without phase features the rows only move with the glide: no rebuild every frame
        w, f = start.lerp(end, a)  # (num_styles,), (PROMPT_CONTROLS,)
        controls = None
        if self.lm.config.num_controls:
            if self._phase:
                f = torch.cat([f, torch.from_numpy(phase_matrix(np.array([bar]))[0])])  # (NUM_CONTROLS,)
            controls = f[None]  # (1, num_controls)
        rows = style_rows(self.lm, w[None], controls)  # (2, dim), (1, 1)
        self._last = (start, end, a, rows)
        return rows


class TokenSource:
    """An AudioSource over a token LM and a codec; `conditioner` defaults to the embedded model's style rows."""

    def __init__(
        self,
        lm: TokenLM,
        codec: Codec,
        prompt: Prompt,
        config: ContinuationConfig,
        conditioner: Conditioner[Any] | None = None,
    ) -> None:
        lm_cfg = lm.config
        if lm_cfg.num_codebooks != codec.num_codebooks or lm_cfg.card != codec.codebook_size:
            raise ValueError(
                f"model expects {lm_cfg.num_codebooks} codebooks of {lm_cfg.card}, "
                f"codec has {codec.num_codebooks} of {codec.codebook_size}"
            )
        if config.window > lm_cfg.max_len:
            raise ValueError(
                f"ContinuationConfig.window {config.window} exceeds the model's max_len of {lm_cfg.max_len} steps "
                "(its KV cache and position table); lower the window or build the model with a larger max_len"
            )
        self.lm = lm.eval()
        self.codec = codec
        self.config = config
        self.conditioner: Conditioner[Any] = StyleConditioner(self.lm) if conditioner is None else conditioner
        self._lock = threading.Lock()
        cond = self.conditioner.condition(prompt)
        self._steering: Steering[Any] = Steering(cond, self.conditioner.blend)  # guarded by _lock
        self._generator = torch.Generator().manual_seed(config.seed)
        self._stream_cm = self.lm.streaming(batch_size=self.conditioner.batch_size(cond))
        self._stream = self._stream_cm.__enter__()
        self._decoder = codec.streaming_decoder()
        self._special = self.conditioner.start_token  # BOS and delay-pattern pad
        K = lm_cfg.num_codebooks
        self._history = torch.full((1, K, 0), self._special, dtype=torch.long)  # (1, K, S) delayed steps
        self._cond_history: Tensor | None = None  # (R, S, dim) the rows each delayed step was fed with
        self._steps = 0  # delayed steps generated
        self._logits: Tensor | None = None  # (1, K, card) guided logits waiting to be sampled
        self._bar_pos = 0.0  # bar clock at the next frame to generate (bars)
        self._next_bar = 0  # first bar whose start is not yet generated
        self._bar_starts: list[tuple[int, int]] = []  # (absolute sample, bar) not yet handed out
        self._samples_out = 0
        self._now = self._now_playing()

    # ----- AudioSource -----------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    @property
    def next_bar(self) -> int:
        with self._lock:
            return self._next_bar

    def set_prompt(self, prompt: Prompt, at_bar: int | None = None) -> int:
        target = self.conditioner.condition(prompt)  # raises on a bad prompt: nothing changes
        with self._lock:
            land = self._next_bar if at_bar is None else max(at_bar, self._next_bar)
            self._steering.schedule(target, land, prompt.ramp_bars)
            return land

    def next_chunk(self) -> Chunk:
        frames = self._generate(self.config.chunk_frames)  # (1, K, n)
        pcm = self._decoder.push(frames)[0].numpy().astype(np.float32)  # (m,)
        start = self._samples_out
        self._samples_out += len(pcm)
        with self._lock:
            inside = [(s, b) for s, b in self._bar_starts if s < self._samples_out]
            self._bar_starts = [(s, b) for s, b in self._bar_starts if s >= self._samples_out]
        bars = tuple((max(0, s - start), b) for s, b in inside)
        now, self._now = self._now, self._now_playing()
        return Chunk(np.clip(pcm, -1.0, 1.0), self.sample_rate, start, bars, now)

    # ----- the loop ----------------------------------------------------------------------------
    def _conditioning(self) -> tuple[Tensor | None, Tensor]:
        """Guidance rows and their weights at the current bar (see `Conditioner.rows`), landing pending changes."""
        with self._lock:
            self._steering.advance(self._bar_pos)
            glide = self._steering.glide
        a = glide.fraction(self._bar_pos)
        K = self.lm.config.num_codebooks
        clocked = max(0, self._steps - K + 1)  # frames the bar clock has already moved past
        bar = self._bar_pos + (self._steps + 0.5 - clocked) * self._bars_per_frame()  # centre of frame `steps`
        return self.conditioner.rows(self._stream, glide.start, glide.end, a, bar)

    def _bpm(self) -> float:
        glide = self._steering.glide
        a = glide.fraction(self._bar_pos)
        return (1 - a) * glide.start.controls.bpm + a * glide.end.controls.bpm

    def _bars_per_frame(self) -> float:
        """Bars one codec frame lasts at the current tempo."""
        return self._bpm() / 60.0 / BEATS_PER_BAR / self.codec.frame_rate

    def _generate(self, frames: int) -> Tensor:
        """Run the model until `frames` more original frames are complete; returns them (1, K, frames)."""
        K = self.lm.config.num_codebooks
        stream, cfg = self._stream, self.config
        hop = self.codec.hop_length
        target = complete_frames(self._steps, K) + frames
        with torch.inference_mode():
            while complete_frames(self._steps, K) < target:
                cond, weights = self._conditioning()  # (R, dim) or None, (n,) or (1, n)
                if self._logits is None:  # the very first step: all codebooks special (MusicGen's BOS)
                    bos = torch.full((1, K, 1), self._special, dtype=torch.long)  # (1, K, 1)
                    self._logits = guided_prefill(stream, bos, weights, cfg.cfg_scale, cond)
                tok = sample(
                    self._logits,
                    generator=self._generator,
                    temperature=cfg.temperature,
                    top_k=cfg.top_k,
                    top_p=cfg.top_p,
                )  # (1, K)
                if self._steps < K - 1:  # the delay pattern's leading gap: codebooks k > step are padding
                    real = delayed_step_mask(self._steps, K)  # (K,)
                    tok = torch.where(real[None], tok, torch.full_like(tok, self._special))  # (1, K)
                self._history = torch.cat([self._history, tok[:, :, None]], dim=2)[:, :, -cfg.window :]  # (1, K, S)
                if cond is not None:  # (R, S, dim): re-priming feeds each kept step the rows it had
                    rows = cond[:, None, :]
                    past = rows if self._cond_history is None else torch.cat([self._cond_history, rows], dim=1)
                    self._cond_history = past[:, -cfg.window :]
                self._steps += 1
                if self._steps >= K:  # frame steps - K is complete: the bar clock moves one frame
                    self._advance_clock(hop)
                if stream.length + 1 > cfg.window:  # re-prime from the last window - stride steps
                    keep = self._history[:, :, -(cfg.window - cfg.stride) :]  # (1, K, window - stride)
                    kept = None if self._cond_history is None else self._cond_history[:, -keep.shape[2] :]
                    stream.reset()
                    self._logits = guided_prefill(stream, keep, weights, cfg.cfg_scale, kept)
                else:
                    self._logits = guided_step(stream, tok[:, :, None], weights, cfg.cfg_scale, cond)
        # the last `frames` complete frames: codebook k of frame t sits at delayed step t + k
        return revert_delay_pattern(self._history[:, :, -(frames + K - 1) :])  # (1, K, frames)

    def _advance_clock(self, hop: int) -> None:
        """Move the bar clock over the frame just completed, noting every bar that starts inside it."""
        frame_index = self._steps - self.lm.config.num_codebooks  # original frame just completed
        bars_per_frame = self._bars_per_frame()
        before = self._bar_pos
        self._bar_pos += bars_per_frame
        with self._lock:
            while self._next_bar <= self._bar_pos and self._next_bar >= before:
                frac = (self._next_bar - before) / bars_per_frame  # frames into this frame
                self._bar_starts.append((round((frame_index + frac) * hop), self._next_bar))
                self._next_bar += 1

    def _now_playing(self) -> NowPlaying:
        glide = self._steering.glide
        a = glide.fraction(self._bar_pos)
        weights = torch.lerp(glide.start.weights, glide.end.weights, a).numpy()  # (num_genres,)
        mix = tuple((GENRE_IDS[i], float(v)) for i, v in enumerate(weights) if v > 0.01)
        target = glide.end.controls
        energy = (1 - a) * glide.start.controls.energy + a * target.energy
        section = target.section if a > 0 or glide.ramp == 0 else glide.start.controls.section
        return NowPlaying(GENRE_IDS[int(np.argmax(weights))], self._bpm(), section, float(energy), mix)

    def close(self) -> None:
        self._stream_cm.__exit__(None, None, None)
