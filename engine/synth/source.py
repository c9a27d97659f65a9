"""StyleSynth: the procedural audio source (engine.source.AudioSource), one bar per chunk.

Every genre with a weight above `blend_threshold` plays its own layer (drums,
bass, harmony) at a level that follows its weight, all on one shared tempo, key
and chord progression (the dominant genre's), so a blend is a real mix. The
shared reverb, the section fx, a rumble filter and a soft limiter finish the mix.

Threading: `set_prompt` may be called from any thread; `next_chunk` from one
producer thread. A lock guards the prompt schedule and the bar counter; a bar is
claimed under the lock before it is rendered, so a change never lands on a bar
that is already being rendered.
"""

from __future__ import annotations

import threading

import numpy as np

from engine.music.interpret import resolve
from engine.music.prompt import Prompt
from engine.music.styles import GENRE_IDS
from engine.source import Chunk, NowPlaying
from engine.synth.arrange import BarContext
from engine.synth.config import SynthConfig
from engine.synth.effects import Reverb, reverb_ir, soft_limit
from engine.synth.filters import StreamFilter, highpass
from engine.synth.fx import SectionFx
from engine.synth.genres import SPECS
from engine.synth.instruments import NoteRenderer
from engine.synth.schedule import BarPlan, PromptSchedule
from engine.synth.tempo import BarGrid
from engine.synth.voice import GenreVoice, Span

__all__ = ["StyleSynth", "SynthConfig"]


def weight_gain(w: float, threshold: float, full: float) -> float:
    """Layer level for genre weight w: 0 below `threshold`, sqrt(w) (equal power) from `full`, smooth between."""
    if w <= threshold:
        return 0.0
    a = min(1.0, (w - threshold) / (full - threshold))
    return float(np.sqrt(w)) * a * a * (3.0 - 2.0 * a)


class StyleSynth:
    """Endless procedural music following a prompt; see the module docstring."""

    def __init__(self, config: SynthConfig, prompt: Prompt) -> None:
        controls = resolve(prompt)
        self.config = config
        sr = config.sample_rate
        self._lock = threading.Lock()
        self._schedule = PromptSchedule(controls)
        self._next_bar = 0
        self._start_sample = 0
        notes = NoteRenderer(sr)
        self._voices = [GenreVoice(spec, i, config, notes) for i, spec in enumerate(SPECS)]
        declick = max(1, round(config.declick_seconds * sr))
        self._fx = SectionFx(sr, config.seed, declick)
        self._reverb = Reverb(reverb_ir(sr, config.reverb_seconds, np.random.default_rng([config.seed, 23])))
        self._rumble = StreamFilter(1)
        self._rumble_sos = highpass(28.0, sr)

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def next_bar(self) -> int:
        with self._lock:
            return self._next_bar

    def set_prompt(self, prompt: Prompt, at_bar: int | None = None) -> int:
        """Schedule `prompt` from bar `at_bar` (None or already rendered: the next bar); returns the landing bar.

        The prompt is resolved first: if that raises, nothing changes. A later call
        replaces pending changes that land on the same or a later bar.
        """
        controls = resolve(prompt)
        if at_bar is not None and (isinstance(at_bar, bool) or not isinstance(at_bar, int)):
            raise ValueError(f"at_bar must be a bar index (int) or None, got {at_bar!r}")
        with self._lock:
            land = self._next_bar if at_bar is None else max(at_bar, self._next_bar)
            self._schedule.schedule(controls, land, prompt.ramp_bars)
        return land

    def next_chunk(self) -> Chunk:
        """Render the next bar."""
        with self._lock:
            bar = self._next_bar
            plan = self._schedule.plan(bar)
            self._next_bar = bar + 1
        pcm, mix = self._render(plan)
        np_ = NowPlaying(
            genre=GENRE_IDS[int(np.argmax(plan.start.weights))],
            bpm=float(plan.start.bpm),
            section=plan.section,
            energy=float(plan.start.energy),
            mix=mix,
        )
        chunk = Chunk(pcm, self.sample_rate, self._start_sample, ((0, bar),), np_)
        self._start_sample += len(pcm)
        return chunk

    def _render(self, plan: BarPlan) -> tuple[np.ndarray, tuple[tuple[str, float], ...]]:
        cfg = self.config
        grid = BarGrid(cfg.sample_rate, plan.start.bpm, plan.end.bpm)
        n = grid.samples
        energy = Span(plan.start.energy, plan.end.energy)
        brightness = Span(plan.start.brightness, plan.end.brightness)
        build = Span(0.0, 0.0)
        if plan.section == "build":
            k = plan.bars_in_section
            build = Span(min(1.0, k / cfg.build_bars), min(1.0, (k + 1) / cfg.build_bars))
        mid_weights = 0.5 * (plan.start.weights + plan.end.weights)  # (n_genres,)
        lead = SPECS[int(np.argmax(mid_weights))]
        progression = lead.progression_major if plan.mode == "major" else lead.progression_minor
        bpc = lead.bars_per_chord
        degree = progression[(plan.bar // bpc) % len(progression)]
        out = np.zeros(n, dtype=np.float32)  # (n,)
        send = np.zeros(n, dtype=np.float32)  # (n,)
        mix = []
        for voice, w0, w1 in zip(self._voices, plan.start.weights, plan.end.weights, strict=True):
            g = Span(*(weight_gain(w, cfg.blend_threshold, cfg.blend_full) for w in (w0, w1)))
            if g.start == 0.0 and g.end == 0.0 and voice.buses["drums"].last_gain == 0.0:
                if voice.playing:
                    voice.silence()
                continue
            ctx = BarContext(
                bar=plan.bar,
                energy=energy.mid,
                brightness=brightness.mid,
                section=plan.section,
                build=build.start,
                key=cfg.key,
                mode=plan.mode,
                degree=degree,
                chord_start=plan.bar % bpc == 0,
                chord_bars_left=bpc - plan.bar % bpc,
                fresh=plan.bars_in_section == 0 or not voice.playing,
                seed=cfg.seed,
                genre_index=voice.index,
            )
            o, s = voice.render(ctx, grid, energy, brightness, g, build)
            out += o
            send += s
            if w0 > cfg.blend_threshold:
                mix.append((voice.spec.id, float(w0)))
        fx, fx_send = self._fx.render(plan.bar, n, plan.section, build, plan.impact)
        out += fx
        send += fx_send
        out += self._reverb.process(send)
        y = self._rumble.process(self._rumble_sos, out) * np.float32(cfg.master_gain)
        y = soft_limit(y)
        if not np.all(np.isfinite(y)):
            raise RuntimeError(f"synth produced non-finite samples in bar {plan.bar}")
        total = sum(w for _, w in mix) or 1.0
        return y.astype(np.float32), tuple((s, w / total) for s, w in mix)
