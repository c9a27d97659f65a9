"""The streaming interface every audio source implements (synth now, token model next).

A source renders forward in time on a bar clock. `set_prompt` may be called from
any thread; the change lands on a bar boundary (the given one, or the next bar not
yet rendered) and glides over `prompt.ramp_bars` bars. `next_chunk` is called by
one producer thread (see engine.playback.lookahead) and never by the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from engine.music.prompt import Prompt


@dataclass(frozen=True)
class NowPlaying:
    genre: str  # dominant genre id
    bpm: float  # tempo at the chunk start, beats per minute
    section: str  # "intro", "build", "drop" or "breakdown"
    energy: float  # 0..1
    mix: tuple[tuple[str, float], ...]  # (genre id, weight) actually rendered, weights sum to 1

    def as_json(self) -> dict[str, object]:
        return {
            "genre": self.genre,
            "bpm": round(self.bpm, 1),
            "section": self.section,
            "energy": round(self.energy, 3),
            "mix": [{"style": s, "weight": round(w, 3)} for s, w in self.mix],
        }


@dataclass(frozen=True)
class Chunk:
    pcm: np.ndarray  # (samples,) float32 mono in [-1, 1]
    sample_rate: int  # Hz
    start_sample: int  # absolute index of pcm[0] since the stream started
    bar_starts: tuple[tuple[int, int], ...]  # (offset into pcm in samples, absolute bar index) per bar starting here
    now_playing: NowPlaying  # what is playing at pcm[0]
    bar: float | None = None  # the set's bar clock at pcm[0] (engine.playback.clock, stamped by the audible deck);
    # None on a source's own chunks and before the first bar start was heard

    @property
    def seconds(self) -> float:
        return len(self.pcm) / self.sample_rate


@runtime_checkable
class Steerable(Protocol):
    """What the conductor needs: a bar clock and prompts scheduled on it."""

    @property
    def sample_rate(self) -> int: ...  # Hz, fixed for the source's life

    @property
    def next_bar(self) -> int: ...  # index of the first bar not yet rendered

    def set_prompt(self, prompt: Prompt, at_bar: int | None = None) -> int:
        """Schedule `prompt` from bar `at_bar` (None: the next bar not yet rendered).

        Returns the bar the change actually lands on (later than asked if that bar
        was already rendered). Raises engine.music.prompt.PromptError or
        engine.music.styles.UnknownStyleError for a prompt it cannot play; the current
        prompt then stays in force.
        """
        ...


@runtime_checkable
class AudioSource(Steerable, Protocol):
    """A never-ending, steerable audio stream."""

    def next_chunk(self) -> Chunk:
        """Render the next piece of audio (typically one bar)."""
        ...
