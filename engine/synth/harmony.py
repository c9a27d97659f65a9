"""Keys, scales and chord progressions (pure).

Chords are built by stacking diatonic thirds on a scale degree, so the same
degree list gives a major- or minor-mode progression. Voicings are "closed near
a centre": every chord tone sits within one octave above `low`, which keeps
successive chords close together (cheap voice leading).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

SCALES: MappingProxyType[str, tuple[int, ...]] = MappingProxyType(
    {
        "major": (0, 2, 4, 5, 7, 9, 11),
        "minor": (0, 2, 3, 5, 7, 8, 10),
    }
)


def midi_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


@dataclass(frozen=True)
class Chord:
    root: int  # pitch class 0..11 of the chord root
    tones: tuple[int, ...]  # pitch classes, root first, stacked thirds
    scale: tuple[int, ...]  # pitch classes of the key's scale, tonic first

    def voicing(self, low: int) -> tuple[int, ...]:
        """MIDI notes of the chord for keys and pads, sorted.

        Triads: each tone placed in [low, low + 12) (closed, smooth voice leading).
        Sevenths: stacked in thirds up from the root in [low, low + 12), so no
        seconds cluster. Ninths: the same, rootless (the bass has the root).
        """
        if len(self.tones) < 4:
            return tuple(sorted(low + (pc - low) % 12 for pc in self.tones))
        tones = self.tones[1:] if len(self.tones) >= 5 else self.tones
        notes = [low + (tones[0] - low) % 12]
        for pc in tones[1:]:
            notes.append(notes[-1] + (pc - notes[-1]) % 12)
        return tuple(notes)

    def bass(self, low: int) -> int:
        """MIDI note of the root in [low, low + 12)."""
        return low + (self.root - low) % 12

    def tone(self, index: int, low: int) -> int:
        """The `index`-th chord tone (wrapping upward by octaves) at or above `low`."""
        n = len(self.tones)
        base = low + (self.tones[index % n] - low) % 12
        return base + 12 * (index // n)

    def scale_step(self, midi: int, steps: int) -> int:
        """Move `midi` by `steps` scale degrees (the note is snapped into the scale first)."""
        pcs = sorted(self.scale)
        octave, pc = divmod(midi, 12)
        idx = max(i for i, s in enumerate(pcs) if s <= pc) if pc >= pcs[0] else -1
        if idx < 0:
            octave, idx = octave - 1, len(pcs) - 1
        pos = octave * len(pcs) + idx + steps
        o, i = divmod(pos, len(pcs))
        return o * 12 + pcs[i]


def chord_for(key: int, mode: str, degree: int, size: int) -> Chord:
    """The diatonic chord of `size` tones (3 = triad, 4 = seventh, 5 = ninth) on scale `degree` (0-based)."""
    if mode not in SCALES:
        raise ValueError(f"mode must be one of {tuple(SCALES)}, got {mode!r}")
    steps = SCALES[mode]
    tones = tuple((key + steps[(degree + 2 * i) % 7]) % 12 for i in range(size))
    scale = tuple((key + s) % 12 for s in steps)
    return Chord(root=tones[0], tones=tones, scale=scale)
