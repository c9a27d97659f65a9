"""Melodies, arpeggios and bell figures that repeat in phrases and follow the chords (pure).

A motif is written as chord-tone indices (plus an occasional scale step), not
pitches, so when it repeats over the next chord it bends to fit that chord.
Motifs are drawn from a generator seeded by (seed, genre, phrase), so a phrase
repeats exactly and the whole stream is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.synth.harmony import Chord

PHRASE_BARS = 8  # bars a motif family lasts


@dataclass(frozen=True)
class MelodyNote:
    beat: float  # onset within the bar, beats
    beats: float  # written length, beats
    midi: int


@dataclass(frozen=True)
class _MotifNote:
    step: int  # sixteenth step within the bar
    steps: int  # length in sixteenths
    tone: int  # chord-tone index (0 root, 1 third, 2 fifth, ... wrapping up by octaves)
    passing: int  # scale steps added after picking the chord tone (-1, 0, +1)


def _motif(rng: np.random.Generator, density: float) -> list[_MotifNote]:
    """One bar of melody: onsets favour strong sixteenths; pitch walks over chord tones."""
    weight = np.array([1.0 if s % 4 == 0 else 0.65 if s % 2 == 0 else 0.3 for s in range(16)])  # (16,)
    onsets = [s for s in range(16) if rng.random() < min(1.0, weight[s] * density * 1.4)]
    if len(onsets) < 2:
        onsets = sorted({0, int(rng.choice([6, 8, 10]))})
    tone = int(rng.integers(2, 5))
    notes = []
    for i, s in enumerate(onsets):
        nxt = onsets[i + 1] if i + 1 < len(onsets) else 16
        tone = int(np.clip(tone + rng.choice([-2, -1, -1, 0, 1, 1, 2]), 0, 6))
        passing = int(rng.choice([-1, 1])) if s % 4 != 0 and rng.random() < 0.25 else 0
        notes.append(_MotifNote(s, max(1, min(nxt - s, 8)), tone, passing))
    return notes


def melody(seed: int, genre_index: int, bar: int, chord: Chord, low: int, density: float) -> list[MelodyNote]:
    """The lead line for `bar`: an A-B-A-B-A-B-A-C shape inside each phrase of PHRASE_BARS bars."""
    phrase, pos = divmod(bar, PHRASE_BARS)
    a_rng = np.random.default_rng([seed, 101, genre_index, phrase])
    motifs = [_motif(a_rng, density), _motif(a_rng, density * 0.7)]
    if pos == PHRASE_BARS - 1:
        motif = _motif(np.random.default_rng([seed, 102, genre_index, phrase]), density * 1.2)
    else:
        motif = motifs[pos % 2]
    out = []
    for m in motif:
        midi = chord.tone(m.tone, low)
        if m.passing:
            midi = chord.scale_step(midi, m.passing)
        out.append(MelodyNote(m.step / 4.0, m.steps / 4.0, midi))
    return out


def arp_order(seed: int, genre_index: int, bar: int) -> tuple[int, ...]:
    """Chord-tone indices an arpeggio cycles through, fixed for a phrase."""
    rng = np.random.default_rng([seed, 103, genre_index, bar // PHRASE_BARS])
    shapes = ((0, 1, 2, 3), (0, 2, 1, 3), (0, 1, 2, 4, 3, 2), (0, 2, 4, 2), (0, 1, 2, 3, 4, 3, 2, 1))
    return shapes[int(rng.integers(0, len(shapes)))]


def bells(rng: np.random.Generator, chord: Chord, low: int, amount: float) -> list[MelodyNote]:
    """Sparse bell tones on eighth notes, more of them with larger `amount` (0..1)."""
    out = []
    for step in range(0, 16, 2):
        if rng.random() < 0.35 * amount + (0.25 if step == 0 else 0.0):
            out.append(MelodyNote(step / 4.0, 2.0, chord.tone(int(rng.integers(0, 6)), low)))
    return out
