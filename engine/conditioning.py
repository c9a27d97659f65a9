"""Prompts → conditioning tensors for the embedded token model.

The embedded model is conditioned by a weighted mix of learned style embeddings
(one per genre in engine.styles) plus a few control features. Both come from
`engine.interpret.resolve`, so free text, genre ids and weighted mixes all map
onto the same vocabulary the synth renders and the corpus is labelled with.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from engine.interpret import Controls, resolve
from engine.prompt import SECTIONS, Prompt

BPM_CENTRE = 120.0  # beats per minute mapped to feature 0
BPM_SCALE = 60.0  # beats per minute per unit of the tempo feature
NUM_CONTROLS = 4 + len(SECTIONS)  # tempo, energy, brightness, minor, one-hot section


def control_features(controls: Controls) -> Tensor:
    """(NUM_CONTROLS,) float32: tempo, energy, brightness, minor flag, one-hot section."""
    section = [1.0 if controls.section == s else 0.0 for s in SECTIONS]
    feats = [
        (controls.bpm - BPM_CENTRE) / BPM_SCALE,
        controls.energy,
        controls.brightness,
        1.0 if controls.mode == "minor" else 0.0,
        *section,
    ]
    return torch.tensor(feats, dtype=torch.float32)  # (NUM_CONTROLS,)


@dataclass(frozen=True)
class StyleCondition:
    """A resolved prompt, as the embedded model consumes it."""

    controls: Controls  # numbers the prompt resolved to (tempo, energy, …)
    weights: Tensor  # (num_styles,) float32 genre weights, sum 1
    features: Tensor  # (NUM_CONTROLS,) float32 control features

    @classmethod
    def of(cls, prompt: Prompt) -> StyleCondition:
        """Resolve and validate; raises PromptError / UnknownStyleError naming the bad value."""
        c = resolve(prompt)
        return cls(c, torch.as_tensor(c.weights, dtype=torch.float32), control_features(c))

    def lerp(self, other: StyleCondition, a: float) -> tuple[Tensor, Tensor]:
        """Weights and features a fraction `a` (0..1) of the way from self to other."""
        return (
            torch.lerp(self.weights, other.weights, a),  # (num_styles,)
            torch.lerp(self.features, other.features, a),  # (NUM_CONTROLS,)
        )
