"""The booth's side of the conductor: what the DJ can do to the set (a mixin of `Conductor`).

Override the prompt, pause voting, change the crowd's mode, veto an option, skip to the next phrase, lock a style
for some bars, build and drop, edit the blocklist live. Each method changes the conductor's state the way its
own rounds do (`_schedule`, `_build_prompt`, `_on_change`); the attributes it uses are declared below and set by
`Conductor.__init__`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, cast

from concert.crowd import aggregator as agg
from concert.crowd.booth import MAX_BLOCKED, MAX_LOCK_BARS, Booth, Lock, check_words
from concert.crowd.moderation import Moderator, SuggestionRefused
from engine.music.interpret import resolve
from engine.music.prompt import Mode, Prompt, PromptError
from engine.music.styles import GENRES, genre

if TYPE_CHECKING:
    from concert.crowd.ballots import Ballot
    from concert.crowd.conductor import ConductorConfig, SetlistLog
    from concert.store.base import Store


@dataclass(frozen=True)
class Pinned:
    """Controls the DJ set explicitly; they hold across rounds until the next override or a crowd segue."""

    bpm: float | None = None  # beats per minute; None = the mix's default
    energy: float | None = None  # 0..1; None = the mix's default
    brightness: float | None = None  # 0..1; None = the mix's interpretation
    mode: Mode | None = None  # "major" | "minor"; None = the mix's default


class Desk:
    """The DJ's actions on the set; `Conductor` is the only class that mixes it in."""

    config: ConductorConfig
    store: Store
    moderator: Moderator
    _base_moderator: Moderator
    booth: Booth
    setlist: SetlistLog | None
    mode: agg.CrowdMode
    voting: str
    mix: agg.Mix
    home: agg.Mix
    live: agg.Live
    pinned: Pinned
    bar: float
    direction: Ballot
    moves: Ballot
    _board: set[str]
    _closing: bool
    _landing_notes: dict[int, dict[str, object]]
    _on_change: Callable[[], None]  # the state clients see has changed

    def _schedule(self, prompt: Prompt, at_bar: int | None) -> int:
        raise NotImplementedError

    def _build_prompt(self, section: str, ramp_bars: int) -> Prompt:
        raise NotImplementedError

    async def _close_rounds(self, bar: int, force_direction: bool) -> None:
        raise NotImplementedError

    def override(self, prompt: Prompt) -> int:
        """Play `prompt` from the next bar, bypassing the crowd (it becomes the new home)."""
        for sw in prompt.mix:  # no impersonation, even from the booth
            try:
                self.moderator.moderate(sw.style)
            except SuggestionRefused as e:
                raise PromptError(f"style {sw.style!r} refused: {e}") from None
        resolve(prompt)  # refuse before touching state
        self.mix = agg.normalize({sw.style: sw.weight for sw in prompt.mix}, 0.0)
        self.home = self.mix
        self.pinned = Pinned(prompt.bpm, prompt.energy, prompt.brightness, prompt.mode)
        self.live = replace(self.live, energy_offset=0.0, bpm_offset=0.0)  # the crowd moves on from the DJ's tempo
        section = prompt.section or self.config.schedule.section_for(int(self.bar) + 1)
        built = self._build_prompt(section, ramp_bars=prompt.ramp_bars)
        landing = self._schedule(built, at_bar=None)
        label = " + ".join(_label(s) for s, _ in self.mix)
        self._landing_notes[landing] = {"label": label, "winner": self.mix[0][0], "by": "dj"}
        if self.setlist is not None:
            self.setlist({"event": "override", "prompt": built.as_json(), "lands_at_bar": landing})
        self._on_change()
        return landing

    def set_voting(self, voting: str) -> None:
        if voting not in ("open", "paused"):
            raise ValueError(f"voting must be 'open' or 'paused', got {voting!r}")
        self.voting = voting
        self._on_change()

    def set_mode(self, mode: str) -> None:
        if mode not in agg.CROWD_MODES:
            raise ValueError(f"mode must be one of {', '.join(agg.CROWD_MODES)}, got {mode!r}")
        self.mode = cast(agg.CrowdMode, mode)
        self.home = self.mix
        self._on_change()

    async def veto(self, option_id: str) -> None:
        if option_id == agg.STAY:
            raise ValueError("'stay' is always on the ballot and cannot be vetoed")
        on_ballot = self.direction.option(option_id) is not None
        if on_ballot:
            self.direction.vetoed.add(option_id)
        if option_id.startswith("s:") or not on_ballot:  # a suggestion, on the ballot ("s:<id>") or the board
            await self.store.remove_suggestion(option_id.removeprefix("s:"))
            self._board.discard(option_id.removeprefix("s:"))
        self._on_change()

    async def skip(self) -> None:
        """Close the direction round now; its result lands on the next phrase."""
        if self._closing:
            return
        self._closing = True
        try:
            sched = self.config.schedule
            lands = sched.next_phrase_start(int(self.bar) + 1)
            self.moves.lands_bar = lands
            await self._close_rounds(int(self.bar), force_direction=True)
        finally:
            self._closing = False

    def lock(self, style: str, bars: int) -> Lock:
        """Play `style` from the next bar and hold it for `bars` bars: the crowd's rounds go on and are recorded,
        but their results do not move the music until the lock runs out (or `unlock`)."""
        if not isinstance(bars, int) or isinstance(bars, bool) or not 1 <= bars <= MAX_LOCK_BARS:
            raise ValueError(f"lock 'bars' must be a whole number from 1 to {MAX_LOCK_BARS}, got {bars!r}")
        landing = self.override(Prompt.of(style))
        self.booth.lock = Lock(genre(style).id, landing + bars)
        self._on_change()
        return self.booth.lock

    def unlock(self) -> None:
        self.booth.lock = None
        self._on_change()

    def drop(self) -> dict[str, int]:
        """A build from the next bar and the drop on the next phrase (where the crowd's "drop it" lands)."""
        build = self._schedule(self._build_prompt("build", ramp_bars=1), at_bar=None)
        self.booth.drop_pending = True
        self._on_change()
        return {"build_at_bar": build, "drop_at_bar": self.moves.lands_bar}

    async def set_blocked(self, words: list[str], blocked: bool) -> list[str]:
        """Add (or take back) words and phrases on the booth's blocklist; suggestions on the board that the new
        list refuses leave it at once. The shipped list cannot be shrunk from the booth."""
        words = check_words(words)
        booth = self.booth
        new = booth.blocked | set(words) if blocked else booth.blocked - set(words)
        if len(new) > MAX_BLOCKED:
            raise ValueError(f"the booth's blocklist holds at most {MAX_BLOCKED} entries")
        booth.blocked = frozenset(new)
        self._apply_blocked()
        if blocked:
            for s in await self.store.top_suggestions(len(self._board)):
                try:
                    self.moderator.moderate(s.text)
                except SuggestionRefused:
                    await self.store.remove_suggestion(s.id)
                    self._board.discard(s.id)
        self._on_change()
        return sorted(booth.blocked)

    def _apply_blocked(self) -> None:
        """The moderator: the shipped lists with the booth's words on top."""
        base = self._base_moderator
        self.moderator = replace(base, blocked=base.blocked | self.booth.blocked)


def _label(style: str) -> str:
    """A genre's label, or the DJ's own words for a free-text style."""
    return next((g.label for g in GENRES if g.id == style), style)
