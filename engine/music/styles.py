"""The genre vocabulary: stable ids, labels and tempo ranges.

Ids are stable: scripts, the web API and (later) the embedded model use them.
"""

from __future__ import annotations

from dataclasses import dataclass


class UnknownStyleError(ValueError):
    """A style id that is not in the vocabulary."""


@dataclass(frozen=True)
class Genre:
    id: str  # stable id used in scripts and the API, e.g. "drum-and-bass"
    label: str  # human label shown on phones
    bpm: float  # default tempo, beats per minute
    bpm_min: float  # lowest tempo typical of the genre, beats per minute
    bpm_max: float  # highest tempo typical of the genre, beats per minute
    mode: str  # default mode, "major" or "minor"
    energy: float  # default energy, 0..1
    brightness: float  # default brightness, 0..1
    keywords: tuple[str, ...]  # free-text words that point at this genre


GENRES: tuple[Genre, ...] = (
    Genre("house", "House", 124, 118, 130, "minor", 0.65, 0.55, ("house", "deep", "disco", "garage")),
    Genre("techno", "Techno", 130, 125, 140, "minor", 0.75, 0.4, ("techno", "industrial", "warehouse", "minimal")),
    Genre("trance", "Trance", 138, 132, 145, "minor", 0.75, 0.7, ("trance", "euphoric", "uplifting", "psy")),
    Genre(
        "drum-and-bass",
        "Drum & Bass",
        174,
        165,
        180,
        "minor",
        0.8,
        0.55,
        ("dnb", "drum", "bass", "jungle", "liquid", "neuro"),
    ),
    Genre(
        "hip-hop", "Hip-Hop", 90, 80, 100, "minor", 0.55, 0.45, ("hip", "hop", "hiphop", "rap", "boom", "bap", "trap")
    ),
    Genre("lofi", "Lo-fi", 80, 70, 90, "major", 0.35, 0.3, ("lofi", "lo-fi", "chill", "study", "jazzy", "mellow")),
    Genre("ambient", "Ambient", 70, 60, 80, "major", 0.15, 0.4, ("ambient", "drone", "calm", "space", "pads", "relax")),
    Genre(
        "synthwave",
        "Synthwave",
        100,
        85,
        118,
        "minor",
        0.6,
        0.7,
        ("synthwave", "retro", "80s", "outrun", "neon", "synth"),
    ),
)

GENRE_IDS: tuple[str, ...] = tuple(g.id for g in GENRES)


def genre(style_id: str) -> Genre:
    """The genre with this id; raises UnknownStyleError naming the id otherwise."""
    for g in GENRES:
        if g.id == style_id:
            return g
    raise UnknownStyleError(f"unknown style {style_id!r}; known styles: {', '.join(GENRE_IDS)}")


def genre_index(style_id: str) -> int:
    """Position of the genre in GENRES (a stable index for vectors and embeddings)."""
    return GENRE_IDS.index(genre(style_id).id)
