"""A description ("rainy day piano") → a place in the style space: genre weights and the controls' leanings.

    text ─ SentenceEncoder ─ cosine similarity to ─┬─ each genre's anchor sentences   → genre weights
                                                   └─ each axis's two poles           → soft/energetic, dark/bright,
                                                                                        sad/happy, slow/fast
`reading(...)` is pure (similarities in, `Understood` out) and property-tested; `Understander` adds the model.
What it understood is written as a style the keyword interpreter plays (`Understood.style`, e.g.
"lofi lofi lofi ambient ambient soft dark"): every process and backend resolves it the same way, with no
model of its own.
Text close to no genre (nothing musical in it) is refused, saying so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from engine.music.styles import GENRES, UnknownStyleError
from engine.text.encoder import SentenceEncoder

GENRE_ANCHORS: dict[str, tuple[str, ...]] = {
    "house": (
        "house music: four-on-the-floor groove, soulful, disco, club dancing",
        "deep house with warm chords and a steady kick",
    ),
    "techno": (
        "techno: hypnotic, dark, driving machine rhythms in a warehouse",
        "relentless industrial techno at a rave",
    ),
    "trance": (
        "trance: euphoric, uplifting, soaring melodies, hands in the air",
        "epic festival anthem with arpeggios and big build-ups",
    ),
    "drum-and-bass": (
        "drum and bass: very fast breakbeats, jungle, rolling heavy bass",
        "frantic, high-speed energetic breaks",
    ),
    "hip-hop": ("hip hop: boom bap beats, rap, head-nodding groove", "trap beat with 808s for rapping"),
    "lofi": (
        "lo-fi: mellow, jazzy piano beats, chill music to study and relax to",
        "cozy, nostalgic, rainy afternoon beats",
    ),
    "ambient": (
        "ambient: calm, floating drones and pads, peaceful, meditative",
        "slow, spacious soundscape, quiet and serene",
    ),
    "synthwave": (
        "synthwave: retro 80s synthesizers, neon lights, night drive",
        "nostalgic outrun with analog synths, cinematic",
    ),
}
# axis → ((low pole's sentences, its word), (high pole's sentences, its word)); the words are ones
# `engine.music.interpret` knows as modifiers and that name no genre
AXES: dict[str, tuple[tuple[tuple[str, ...], str], tuple[tuple[str, ...], str]]] = {
    "energy": (
        (("calm, quiet, gentle, relaxed", "soft and sleepy"), "soft"),  # "calm" would also name ambient
        (("energetic, intense, powerful, loud", "wild, pounding, hard-hitting"), "energetic"),
    ),
    "brightness": (
        (("dark, gloomy, murky, night", "moody and shadowy"), "dark"),
        (("bright, sparkling, sunny, shiny", "light and airy, daytime"), "bright"),
    ),
    "mood": (
        (("sad, melancholic, sorrowful", "lonely and heartbroken"), "sad"),
        (("happy, joyful, cheerful", "uplifting and optimistic"), "happy"),
    ),
    "tempo": (
        (("slow, unhurried, laid back", "a slow pace"), "slow"),
        (("fast, quick, rapid, racing", "a fast pace"), "fast"),
    ),
}


@dataclass(frozen=True)
class ReadingConfig:
    sure_similarity: float = 0.3  # a genre this close (cosine) is understood outright
    min_similarity: float = 0.2  # below this, nothing is; in between, the closest genre must stand out:
    min_margin: float = 0.12  # … this much closer than the genres' median (a musical text, not just any text)
    temperature: float = 0.04  # softmax temperature over the genre similarities
    min_ratio: float = 0.5  # a second genre joins the mix with at least this fraction of the first's share
    axis_threshold: float = 0.08  # an axis leans when one pole is this much closer than the other
    mood_threshold: float = 0.1  # mood words are common in any text: a higher bar


@dataclass(frozen=True)
class Understood:
    text: str  # the crowd's words
    mix: tuple[tuple[str, float], ...]  # (genre id, share), largest first, shares sum to 1
    leanings: tuple[str, ...]  # modifier words, e.g. ("soft", "dark")
    closeness: float  # cosine similarity of the closest genre

    @property
    def style(self) -> str:
        """The keyword style that plays it: genre ids repeated in proportion (in fifths, the first always ahead:
        3:2 or 4:1), then the leanings."""
        if len(self.mix) == 1:
            ids = [self.mix[0][0]]
        else:
            (a, wa), (b, _) = self.mix[:2]
            first = min(4, max(3, round(wa * 5)))
            ids = [a] * first + [b] * (5 - first)
        return " ".join([*ids, *self.leanings])

    @property
    def label(self) -> str:
        """What phones are shown: "Lo-fi + Ambient · soft, dark"."""
        labels = {g.id: g.label for g in GENRES}
        genres = " + ".join(labels[g] for g, _ in self.mix)
        return genres + (" · " + ", ".join(self.leanings) if self.leanings else "")


def reading(
    text: str,
    genre_similarity: Mapping[str, float],
    axis_lean: Mapping[str, float],
    config: ReadingConfig | None = None,
) -> Understood:
    """Pure: similarities to each genre and each axis's lean (high pole minus low pole) → what was understood.
    UnknownStyleError when the text is close to no genre."""
    config = config or ReadingConfig()
    ids = [g.id for g in GENRES]
    sims = np.array([float(genre_similarity[g]) for g in ids])
    top = float(sims.max())
    stands_out = top >= config.min_similarity and top - float(np.median(sims)) >= config.min_margin
    if top < config.sure_similarity and not stands_out:
        raise UnknownStyleError(
            f"{text!r} sounds like no style this set can play; describe a sound or a mood "
            "(for example 'rainy day piano' or 'dark rolling techno')"
        )
    shares = np.exp((sims - top) / config.temperature)
    shares /= shares.sum()
    order = np.argsort(-shares)
    keep = [int(order[0])] + [int(i) for i in order[1:2] if shares[i] >= config.min_ratio * shares[order[0]]]
    total = float(shares[keep].sum())
    mix = tuple((ids[i], float(shares[i]) / total) for i in keep)
    leanings = []
    for axis, ((_, low), (_, high)) in AXES.items():
        lean = float(axis_lean[axis])
        bar = config.mood_threshold if axis == "mood" else config.axis_threshold
        if abs(lean) >= bar:
            leanings.append(high if lean > 0 else low)
    return Understood(text, mix, tuple(leanings), top)


class Understander:
    """The encoder and its anchors: `understand(text)` → `Understood` (or UnknownStyleError). Not thread-safe."""

    def __init__(self, encoder: SentenceEncoder, config: ReadingConfig | None = None) -> None:
        self.encoder = encoder
        self.config = config or ReadingConfig()
        self._genres = {g: self._centre(list(sentences)) for g, sentences in GENRE_ANCHORS.items()}
        self._axes = {a: (self._centre(list(lo)), self._centre(list(hi))) for a, ((lo, _), (hi, _)) in AXES.items()}

    def _centre(self, sentences: list[str]) -> np.ndarray:
        v = self.encoder.embed(sentences).mean(axis=0)  # (DIM,)
        return v / np.linalg.norm(v)

    def understand(self, text: str) -> Understood:
        e = self.encoder.embed([text])[0]  # (DIM,)
        sims = {g: float(e @ v) for g, v in self._genres.items()}
        lean = {a: float(e @ hi - e @ lo) for a, (lo, hi) in self._axes.items()}
        return reading(text, sims, lean, self.config)
