"""Prompts → conditioning tensors for the embedded token model.

The embedded model is conditioned by a weighted mix of learned style embeddings
(one per genre in engine.music.styles) plus a few control features. Both come from
`engine.music.interpret.resolve`, so free text, genre ids and weighted mixes all map
onto the same vocabulary the synth renders and the corpus is labelled with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from engine.music.interpret import Controls, resolve
from engine.music.meter import BEATS_PER_BAR
from engine.music.prompt import SECTIONS, Prompt

BPM_CENTRE = 120.0  # beats per minute mapped to feature 0
BPM_SCALE = 60.0  # beats per minute per unit of the tempo feature
PROMPT_CONTROLS = 4 + len(SECTIONS)  # tempo, energy, brightness, minor, one-hot section: what the prompt sets
PHASE_CONTROLS = 4  # sin and cos of the beat phase and of the bar phase: where the bar clock is
NUM_CONTROLS = PROMPT_CONTROLS + PHASE_CONTROLS  # the embedded model's control features per frame


def control_features(controls: Controls) -> Tensor:
    """(PROMPT_CONTROLS,) float32: tempo, energy, brightness, minor flag, one-hot section."""
    section = SECTIONS.index(controls.section)
    minor = 1.0 if controls.mode == "minor" else 0.0
    row = control_matrix(
        np.array([controls.bpm]),
        np.array([controls.energy]),
        np.array([controls.brightness]),
        np.array([minor]),
        np.array([section]),
    )
    return torch.from_numpy(row[0])  # (PROMPT_CONTROLS,)


def control_matrix(
    bpm: np.ndarray, energy: np.ndarray, brightness: np.ndarray, minor: np.ndarray, section: np.ndarray
) -> np.ndarray:
    """Prompt features of N frames at once, (N,) each -> (N, PROMPT_CONTROLS) float32; the one layout of them.

    bpm in beats per minute, energy and brightness 0..1, minor 0/1, section an index into SECTIONS.
    """
    n = len(bpm)
    out = np.zeros((n, PROMPT_CONTROLS), dtype=np.float32)  # (N, PROMPT_CONTROLS)
    out[:, 0] = (np.asarray(bpm, dtype=np.float64) - BPM_CENTRE) / BPM_SCALE
    out[:, 1] = energy
    out[:, 2] = brightness
    out[:, 3] = minor
    out[np.arange(n), 4 + np.asarray(section, dtype=np.int64)] = 1.0
    return out


def phase_matrix(bar: np.ndarray) -> np.ndarray:
    """(N,) bar clock (bar index + fraction, at a frame's centre) -> (N, PHASE_CONTROLS) float32.

    sin/cos of 2 pi x the beat phase and of 2 pi x the bar phase: a metronome the model plays to, so its beats
    and downbeats fall where the conductor's bar clock says they are.
    """
    bar = np.asarray(bar, dtype=np.float64)
    beat = 2 * np.pi * np.mod(bar * BEATS_PER_BAR, 1.0)  # (N,)
    whole = 2 * np.pi * np.mod(bar, 1.0)  # (N,)
    return np.stack([np.sin(beat), np.cos(beat), np.sin(whole), np.cos(whole)], axis=1).astype(np.float32)


def frame_controls(prompt_features: np.ndarray, bar: np.ndarray) -> np.ndarray:
    """(N, PROMPT_CONTROLS) prompt features and (N,) bar clock -> (N, NUM_CONTROLS) the model's control input."""
    return np.concatenate([np.asarray(prompt_features, dtype=np.float32), phase_matrix(bar)], axis=1)


@dataclass(frozen=True)
class StyleCondition:
    """A resolved prompt, as the embedded model consumes it."""

    controls: Controls  # numbers the prompt resolved to (tempo, energy, …)
    weights: Tensor  # (num_styles,) float32 genre weights, sum 1
    features: Tensor  # (PROMPT_CONTROLS,) float32 prompt features (the phase is added per frame)

    @classmethod
    def of(cls, prompt: Prompt) -> StyleCondition:
        """Resolve and validate; raises PromptError / UnknownStyleError naming the bad value."""
        c = resolve(prompt)
        return cls(c, torch.as_tensor(c.weights, dtype=torch.float32), control_features(c))

    def lerp(self, other: StyleCondition, a: float) -> tuple[Tensor, Tensor]:
        """Weights and features a fraction `a` (0..1) of the way from self to other."""
        return (
            torch.lerp(self.weights, other.weights, a),  # (num_styles,)
            torch.lerp(self.features, other.features, a),  # (PROMPT_CONTROLS,)
        )
