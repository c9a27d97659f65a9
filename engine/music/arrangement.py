"""The song arrangement on the bar clock: bars into phrases, phrases into songs, a section per phrase (pure).

    bar      0       8       16      24      32      40 ...     (round_bars=8, song_phrases=4)
    phrase   |  0    |  1    |  2    |  3    |  4    |
    song     |  0                            |  1
    section  intro   build   drop    breakdown intro ...

What the set plays by default where: the live conductor (`concert.crowd`) lands crowd rounds on these
boundaries, the training corpus (`engine.train.corpus`) renders the same arrangement.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.music.prompt import Section


@dataclass(frozen=True)
class Arrangement:
    round_bars: int = 8  # bars per phrase, >= 1
    song_phrases: int = 4  # phrases per song, >= 1

    def __post_init__(self) -> None:
        check_int("round_bars", self.round_bars, 1)
        check_int("song_phrases", self.song_phrases, 1)

    @property
    def song_bars(self) -> int:
        """Bars per song."""
        return self.round_bars * self.song_phrases

    def phrase_of(self, bar: int) -> int:
        """Index of the phrase holding `bar`, counted from the start of the set."""
        return check_bar(bar) // self.round_bars

    def song_of(self, bar: int) -> int:
        """Index of the song holding `bar`, counted from the start of the set."""
        return check_bar(bar) // self.song_bars

    def phrase_in_song(self, bar: int) -> int:
        """Index of `bar`'s phrase within its song, 0..song_phrases-1."""
        return self.phrase_of(bar) % self.song_phrases

    def next_phrase_start(self, bar: int) -> int:
        """First bar of the phrase after `bar`'s (a multiple of round_bars, > bar)."""
        return (self.phrase_of(bar) + 1) * self.round_bars

    def next_song_start(self, bar: int) -> int:
        """First bar of the song after `bar`'s (a multiple of song_bars, > bar)."""
        return (self.song_of(bar) + 1) * self.song_bars

    def arrangement(self) -> tuple[Section, ...]:
        """The default section of each phrase of a song, by phrase index.

        1 phrase: drop. 2: intro, drop. 3: intro, drop, breakdown. 4 or more:
        the first phrase is the intro, the last the breakdown (the outro the
        segue starts over), the middle drop is phrase song_phrases // 2 and the
        phrase before it the build; every other phrase is a drop. So 4 phrases
        are intro, build, drop, breakdown and 6 are intro, drop, build, drop,
        drop, breakdown.
        """
        n = self.song_phrases
        if n == 1:
            return ("drop",)
        if n == 2:
            return ("intro", "drop")
        if n == 3:
            return ("intro", "drop", "breakdown")
        sections: list[Section] = ["drop"] * n
        sections[0], sections[n // 2 - 1], sections[-1] = "intro", "build", "breakdown"
        return tuple(sections)

    def section_for(self, bar: int) -> Section:
        """The default arrangement section ("intro", "build", "drop", "breakdown") of `bar`."""
        return self.arrangement()[self.phrase_in_song(bar)]


def check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_bar(bar: object) -> int:
    check_int("bar", bar, 0)
    return bar  # type: ignore[return-value]
