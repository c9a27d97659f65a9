"""What one genre plays in one bar: drum hits and notes, by section and energy (pure).

The rules per section:
  intro      kick and hats only (sparser with lower energy), sparse bass, pads; no lead.
  build      the groove without snares or claps, a snare roll that thickens with the
             build's progress, pads and arps; no lead (the riser lives in fx.py).
  drop       every line and part whose `min_energy` the energy reaches.
  breakdown  no drums, no bass: pads, chords (where no pad), melody, arps, bells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.synth.harmony import Chord, chord_for
from engine.synth.melody import arp_order, bells, melody
from engine.synth.specs import GenreSpec, PartSpec

HAT_VOICES = ("hat", "open_hat", "shaker", "ride")
INTRO_VOICES = ("kick", "hat", "open_hat", "shaker")


@dataclass(frozen=True)
class Hit:
    voice: str  # drum voice in the genre's kit
    beat: float  # onset within the bar, beats (swing applied)
    gain: float  # linear


@dataclass(frozen=True)
class Note:
    bus: str  # "bass" or "music"
    timbre: str  # a name in instruments.TIMBRES
    midi: int
    beat: float  # onset within the bar, beats (may exceed the bar for echoes)
    beats: float  # held length, beats
    gain: float  # linear


@dataclass(frozen=True)
class BarContext:
    bar: int  # absolute bar index
    energy: float  # 0..1, at mid-bar
    brightness: float  # 0..1, at mid-bar
    section: str  # "intro", "build", "drop" or "breakdown"
    build: float  # build progress 0..1 at the downbeat (0 outside builds)
    key: int  # tonic pitch class
    mode: str  # "major" or "minor"
    degree: int  # scale degree of this bar's chord (from the dominant genre's progression)
    chord_start: bool  # a new chord starts on this bar
    chord_bars_left: int  # bars from this one to the next chord change (>= 1)
    fresh: bool  # first bar of a section or of this genre playing: held notes start even mid-chord
    seed: int
    genre_index: int


def step_beat(step: int, swing: float, unit: int) -> float:
    beat = step / 4.0
    if swing and step % unit == 0 and (step // unit) % 2 == 1:
        beat += swing * unit / 4.0
    return beat


def _steps(pattern: str, bar: int) -> str:
    bars = len(pattern) // 16
    i = bar % bars
    return pattern[16 * i : 16 * (i + 1)]


def _part_notes(steps: str) -> list[tuple[int, str, int]]:
    """(step, letter, length in steps) for each note in a one-bar pattern."""
    out = []
    for s, ch in enumerate(steps):
        if ch not in ".-":
            n = 1
            while s + n < len(steps) and steps[s + n] == "-":
                n += 1
            out.append((s, ch, n))
    return out


def _drums(spec: GenreSpec, ctx: BarContext, rng: np.random.Generator) -> list[Hit]:
    e, sec = ctx.energy, ctx.section
    if sec == "breakdown":
        return []
    hits = []
    hat_gain = 1.0 + 2.0 * ctx.brightness
    for line in spec.drums:
        if sec == "intro" and (line.voice not in INTRO_VOICES or line.min_energy > e - 0.15):
            continue
        if sec == "build" and line.voice in ("snare", "clap"):
            continue
        if line.min_energy > e:
            continue
        level = line.level * (hat_gain if line.voice in HAT_VOICES else 1.0)
        ghost = line.ghost * e if sec == "drop" else 0.0
        thin = line.voice in HAT_VOICES and e < 0.3  # low energy: no sixteenth hats
        for s, ch in enumerate(_steps(line.steps, ctx.bar)):
            if thin and s % 2 == 1:
                continue
            vel = 1.0 if ch == "x" else 0.3 + 0.4 * e if ch == "o" else 0.0
            if vel == 0.0 and ghost > 0 and s % 4 != 0 and rng.random() < ghost:
                vel = 0.3
            if vel > 0:
                vel *= 1.0 - 0.12 * rng.random()
                hits.append(Hit(line.voice, step_beat(s, spec.swing, spec.swing_unit), level * vel))
    if sec == "build":
        hits += _roll(ctx)
    return hits


def _roll(ctx: BarContext) -> list[Hit]:
    """Snare roll: quarters, then eighths, then sixteenths, 32nds at the peak; louder as it goes."""
    p = ctx.build
    div = 1 if p < 0.25 else 2 if p < 0.5 else 4
    hits = []
    for i in range(4 * div):
        beat = i / div
        gain = 0.2 + 0.6 * min(1.0, p + beat / 16.0)
        hits.append(Hit("snare", beat, gain))
    if p >= 0.75:
        hits += [Hit("snare", 3.0 + i / 8.0 + 1 / 16.0, 0.7) for i in range(8)]
    return hits


def _chord(spec: GenreSpec, ctx: BarContext) -> Chord:
    return chord_for(ctx.key, ctx.mode, ctx.degree, spec.chord_size)


def _held(part: PartSpec) -> bool:
    return part.steps.startswith("x") and set(part.steps[1:]) == {"-"}


def _part(part: PartSpec, bus: str, ctx: BarContext, chord: Chord, gain: float, kind: str) -> list[Note]:
    notes = []
    if _held(part):
        if not (ctx.chord_start or ctx.fresh):
            return []
        beats = 4.0 * ctx.chord_bars_left * part.gate
        pitches = [chord.bass(part.low)] if kind == "bass" else list(chord.voicing(part.low))
        return [Note(bus, part.timbre, m, 0.0, beats, gain * part.level / len(pitches) ** 0.5) for m in pitches]
    for s, ch, n in _part_notes(_steps(part.steps, ctx.bar)):
        beat = step_beat(s, 0.0, 1)
        beats = n / 4.0 * part.gate
        if kind == "bass":
            root = chord.bass(part.low)
            midi = {"o": root + 12, "5": chord.tone(2, root), "3": chord.tone(1, root)}.get(ch, root)
            notes.append(Note(bus, part.timbre, midi, beat, beats, gain * part.level))
        else:
            v = chord.voicing(part.low)
            notes += [Note(bus, part.timbre, m, beat, beats, gain * part.level / len(v) ** 0.5) for m in v]
    return notes


def arrange(spec: GenreSpec, ctx: BarContext, rng: np.random.Generator) -> tuple[list[Hit], list[Note]]:
    """The hits and notes of genre `spec` in the bar described by `ctx`."""
    e, sec = ctx.energy, ctx.section
    chord = _chord(spec, ctx)
    hits = _drums(spec, ctx, rng)
    notes: list[Note] = []
    if spec.bass is not None and sec != "breakdown":
        bass = _part(spec.bass, "bass", ctx, chord, 1.0, "bass")
        if sec == "intro":
            bass = [n for n in bass if n.beat in (0.0, 2.0)] if e >= 0.3 else []
        notes += bass
    pad_plays = spec.pad is not None and (sec != "drop" or e >= spec.pad.min_energy)
    if spec.pad is not None and pad_plays:
        notes += _part(spec.pad, "music", ctx, chord, 1.8 if sec == "breakdown" else 1.0, "chords")
    if spec.chords is not None and e >= spec.chords.min_energy and (sec != "breakdown" or spec.pad is None):
        notes += _part(spec.chords, "music", ctx, chord, 0.7 if sec == "intro" else 1.0, "chords")
    lead_plays = spec.lead is not None and ((sec == "drop" and e >= spec.lead.min_energy) or sec == "breakdown")
    if spec.lead is not None and lead_plays:
        for m in melody(ctx.seed, ctx.genre_index, ctx.bar, chord, spec.lead.low, spec.lead_density):
            gain = spec.lead.level * (0.9 if sec == "breakdown" else 1.0)
            notes.append(Note("music", spec.lead.timbre, m.midi, m.beat, m.beats * 0.9, gain))
            for k in (1, 2):
                if spec.lead_echo > 0:
                    g = gain * spec.lead_echo**k
                    notes.append(Note("music", spec.lead.timbre, m.midi, m.beat + 0.75 * k, m.beats * 0.6, g))
    arp = spec.arp
    arp_plays = arp is not None and (
        (sec in ("drop", "build") and e >= arp.min_energy) or (sec == "breakdown" and spec.lead is None)
    )
    if arp is not None and arp_plays:
        order = arp_order(ctx.seed, ctx.genre_index, ctx.bar)
        for k, (s, _, n) in enumerate(_part_notes(_steps(arp.steps, ctx.bar))):
            midi = chord.tone(order[k % len(order)], arp.low)
            notes.append(Note("music", arp.timbre, midi, s / 4.0, n / 4.0 * arp.gate, arp.level))
    if spec.bells > 0:
        amount = spec.bells * (0.5 + e) * (1.5 if sec == "breakdown" else 1.0)
        for m in bells(rng, chord, 74, min(1.0, amount)):
            notes.append(Note("music", "bell", m.midi, m.beat, m.beats, 0.24 * spec.bells))
    return hits, notes
