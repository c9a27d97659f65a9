"""The conductor: rounds on the bar clock, the crowd's result handed to the source.

It listens to the player (what is audible now), closes ballots a few bars before
phrase and song boundaries so the generator — which runs ahead of playback — can
land the change exactly on the boundary, and keeps the state every client sees.
All musical decisions are delegated to the pure modules (aggregator, rounds,
moderation); this class only sequences them and does the I/O.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from prometheus_client import Histogram

from concert.crowd import aggregator as agg
from concert.crowd.ballots import Ballot, Cast, OpenBallots, Refused
from concert.crowd.booth import Booth, Sample
from concert.crowd.desk import Pinned
from concert.crowd.handover import Handover
from concert.crowd.moderation import Moderator, SuggestionRefused
from concert.crowd.rounds import Schedule, seconds_until
from concert.crowd.words import Understand, Words
from concert.store.base import RoundClosedError, Store, StoreUnavailableError, UnknownSuggestionError
from engine.music.interpret import resolve
from engine.music.meter import clamp_bpm
from engine.music.prompt import Prompt, PromptError, StyleWeight
from engine.music.styles import GENRES, UnknownStyleError, genre
from engine.source import Chunk, NowPlaying, Steerable

log = logging.getLogger(__name__)

SAMPLE_EVERY_S = 30.0  # seconds of the set between "sample" setlist events (the report's timeline)
SetlistLog = Callable[[Mapping[str, object]], object]


@dataclass(frozen=True)
class ConductorConfig:
    schedule: Schedule = field(default_factory=Schedule)
    aggregator: agg.AggregatorConfig = field(default_factory=agg.AggregatorConfig)
    moves: agg.MoveConfig = field(default_factory=agg.MoveConfig)
    start_style: str = "house"  # genre id the set opens with
    style_options: int = 3  # genres offered per direction round besides "stay"
    suggestion_options: int = 2  # top crowd suggestions promoted into each direction round
    suggestions_per_device: int = 2  # suggestions one device may make per direction round
    board_size: int = 100  # suggestions open at once; the board empties when the direction round closes
    ramp_bars: int = 4  # bars over which a direction change glides in


LATENCY_BUCKETS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)  # steering latency histogram bounds, seconds


def _latency_histogram() -> Histogram:
    return Histogram(
        "concert_steering_latency_seconds",
        "Seconds from a round's decision to its change becoming audible",
        buckets=LATENCY_BUCKETS,
        registry=None,  # exported by the runtime's collector; fixed memory however long the set runs
    )


@dataclass
class Counters:
    votes: int = 0  # devices' first votes in a round (acknowledged)
    vote_changes: int = 0  # re-votes: a device moving its vote within a round (acknowledged, counted once)
    rounds: int = 0  # rounds closed
    late_landings: int = 0  # changes that landed after the bar they were meant for
    suggestions: int = 0  # suggestions the board took
    suggestions_refused: int = 0  # suggestions refused (artist names, abuse, no style in them, over a budget)
    steering_latency: Histogram = field(default_factory=_latency_histogram)  # seconds, decision to audible


class Conductor(Handover):
    def __init__(
        self,
        config: ConductorConfig,
        store: Store,
        source: Steerable,
        *,
        moderator: Moderator,
        setlist: SetlistLog | None = None,
        understand: Understand | None = None,
        clock: Callable[[], float] = time.time,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        """`on_change` is called (on the event loop) whenever the state clients see has changed."""
        genre(config.start_style)  # validate early, naming the bad id
        self.config = config
        self.store = store
        self.source = source
        self.moderator = moderator
        self._base_moderator = moderator  # the shipped lists; the booth's words go on top (`block`)
        self.booth = Booth()
        self.words = Words(understand)  # which style a suggestion plays; the text model's readings
        self._clients = 0  # phones connected, as the last state build saw them
        self.setlist = setlist
        self.clock = clock
        self.mode = config.aggregator.mode
        self.voting = "open"
        self.mix: agg.Mix = ((config.start_style, 1.0),)
        self.home: agg.Mix = self.mix
        self.live = agg.Live()
        self.pinned = Pinned()
        self.counters = Counters()
        self.bar = 0.0  # playback position in bars
        self.now_playing: NowPlaying | None = None
        self.last_result: dict[str, object] | None = None
        self.notice: str | None = None  # news for every phone (the store lost votes), until a round closes cleanly
        self._on_change = on_change
        self._tasks: set[asyncio.Task[None]] = set()  # round closes in flight, kept until done
        self._suggested: dict[str, int] = {}  # device -> suggestions made this direction round
        self._board: set[str] = set()  # ids of the suggestions open on the board
        self._next_id = int(clock()) * 100  # round ids stay unique across restarts on a shared store
        self._closing = False
        self._prompt_dirty = False
        self._heard_s = 0.0  # seconds of the set heard so far (the audible block's start)
        self._last_logged_sample = -math.inf  # set time of the last "sample" setlist event
        self._pending_landings: list[tuple[int, float]] = []  # (landing bar, wall time decided)
        self._landing_notes: dict[int, dict[str, object]] = {  # landing bar -> what the setlist says landed there
            0: {"label": genre(config.start_style).label, "winner": config.start_style, "by": "opening"}
        }
        sched = config.schedule
        self.direction = self._new_direction(0)
        self.moves = self._new_moves(0)
        self.prompt = self._build_prompt(sched.section_for(0), ramp_bars=0)
        self.source.set_prompt(self.prompt, at_bar=0)

    # ----- ballots -------------------------------------------------------
    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _new_direction(self, bar: int, suggestions: tuple[agg.Option, ...] = ()) -> Ballot:
        rid = self._take_id()
        current = max(self.mix, key=lambda sw: sw[1])[0]
        ranked = sorted(
            (g for g in GENRES if g.id != current),
            key=lambda g: hashlib.sha256(f"{rid}:{g.id}".encode()).digest(),
        )
        styles = [agg.Option(g.id, g.label, g.id) for g in ranked[: self.config.style_options]]
        options = agg.direction_ballot(self.mix, [*styles, *suggestions])
        sched = self.config.schedule
        close = sched.direction_close_bar(bar)
        return Ballot("direction", rid, options, close, sched.landing_bar(close))

    def _new_moves(self, bar: int) -> Ballot:
        sched = self.config.schedule
        close = sched.moves_close_bar(bar)
        return Ballot("moves", self._take_id(), agg.MOVE_BALLOT, close, sched.landing_bar(close))

    def _ballot(self, round_id: int) -> Ballot | None:
        for b in (self.direction, self.moves):
            if b.id == round_id:
                return b
        return None

    # ----- prompt ----------------------------------------------------------
    def _build_prompt(self, section: str, ramp_bars: int) -> Prompt:
        """The mix with the DJ's pinned controls (else the mix's defaults), the crowd's moves on top."""
        pinned = self.pinned
        base = Prompt(mix=tuple(StyleWeight(s, w) for s, w in self.mix), brightness=pinned.brightness, mode=pinned.mode)
        ctl = resolve(base)
        energy = min(1.0, max(0.0, (ctl.energy if pinned.energy is None else pinned.energy) + self.live.energy_offset))
        bpm = clamp_bpm((ctl.bpm if pinned.bpm is None else pinned.bpm) + self.live.bpm_offset)
        return replace(base, bpm=bpm, energy=energy, section=section, ramp_bars=ramp_bars)  # type: ignore[arg-type]

    def _schedule(self, prompt: Prompt, at_bar: int | None) -> int:
        landing = self.source.set_prompt(prompt, at_bar=at_bar)
        self.prompt = prompt
        self._pending_landings.append((landing, self.clock()))
        if at_bar is not None and landing > at_bar:
            self.counters.late_landings += 1
        return landing

    # ----- the clock -------------------------------------------------------
    def on_block(self, chunk: Chunk) -> None:
        """Called by the player for every block as it becomes audible (event loop, never blocks).

        The bars and `chunk.bar` come stamped by the set's bar clock (engine.playback.clock, kept by the audible deck).
        """
        if chunk.start_sample < 0:  # silence on underrun: the bar clock stands still
            return
        self.now_playing = chunk.now_playing
        self._heard_s = chunk.start_sample / chunk.sample_rate  # set time: what the recording's clock reads
        for off, bar in chunk.bar_starts:
            self._on_bar(bar, landed_at=self.clock() + off / chunk.sample_rate)
        if chunk.bar is not None:
            self.bar = chunk.bar

    def _on_bar(self, bar: int, landed_at: float) -> None:
        for at in [b for b in self._landing_notes if b <= bar]:  # heard now: the setlist (and CUE) marks it here
            entry = self.booth.land(landed_at, bar, self._landing_notes.pop(at))
            if self.setlist is not None:
                self.setlist({"event": "landed", **{k: v for k, v in entry.items() if k != "at"}})
        for landing, decided in list(self._pending_landings):
            if bar >= landing:
                self.counters.steering_latency.observe(max(0.0, landed_at - decided))
                self._pending_landings.remove((landing, decided))
        lock = self.booth.locked(bar)
        self._sample(bar)
        if self.mode == "anarchy" and bar > 0 and lock is None:
            self.mix = agg.anarchy_decay(self.mix, self.home, 1.0, self.config.aggregator)
            self._prompt_dirty = True
        if bar >= self.moves.close_bar and not self._closing:
            self._closing = True
            task = asyncio.get_running_loop().create_task(self._close(bar), name=f"close rounds at bar {bar}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif self._prompt_dirty and not self._closing:
            self._prompt_dirty = False
            section = self.config.schedule.section_for(bar + 1)
            self._schedule(self._build_prompt(section, ramp_bars=1), at_bar=None)
        self._on_change()

    async def aclose(self) -> None:
        """Cancel and await the round closes still in flight (the set is stopping)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _close(self, bar: int) -> None:
        try:
            await self._close_rounds(bar, force_direction=False)
        except StoreUnavailableError as e:
            log.error("closing rounds at bar %d: %s; the music goes on, the rounds close when it is back", bar, e)
        except Exception:
            log.exception("closing rounds at bar %d failed; the music goes on", bar)
        finally:
            self._closing = False

    async def _close_rounds(self, bar: int, force_direction: bool) -> None:
        sched = self.config.schedule
        moves, direction = self.moves, self.direction
        if not await self.store.intact():
            self._store_lost(moves, direction)
        elif self.notice is not None:
            self.notice = None  # a round closed normally since: the news is old
        lands = moves.lands_bar
        m_tallies = self._live_tallies(moves, await self.store.close_round(moves.id))
        winner_move, self.live = agg.close_moves(
            moves.id, m_tallies, self.live, self.config.moves, self.config.aggregator.quorum
        )
        close_direction = force_direction or bar >= direction.close_bar
        promoted: tuple[agg.Option, ...] = ()
        d_result: agg.RoundResult | None = None
        d_tallies: dict[str, int] = {}
        if close_direction:
            d_tallies = self._live_tallies(direction, await self.store.close_round(direction.id))
            d_result = agg.close_round(
                direction.id, direction.live_options(), d_tallies, self.mix, self.config.aggregator
            )
            if self.booth.locked(lands) is not None:
                pass  # the booth holds the mix: the result is recorded, the music stays
            elif self.mode != "anarchy":
                self.mix = d_result.mix
                if d_result.changed:  # the crowd took the set somewhere new: the DJ's pins were for the old mix
                    self.pinned = Pinned()
            self.home = self.mix
            for o in direction.options:
                if o.id.startswith("s:"):
                    await self.store.remove_suggestion(o.id[2:])
            promoted = await self._promoted_suggestions()
            await self._clear_board(keep={o.id[2:] for o in promoted})
            self.words.keep(o.label for o in promoted)  # their styles are on the new ballot; the rest are gone
        section = sched.section_for(lands)
        if self.live.drop or self.booth.drop_pending:  # the crowd's "drop it" or the booth's build-and-drop
            section = "drop"
            self.live = replace(self.live, drop=False)
            self.booth.drop_pending = False
        ramp = self.config.ramp_bars if close_direction else 1
        landing = self._schedule(self._build_prompt(section, ramp_bars=ramp), at_bar=lands)
        if m_tallies:  # a phrase nobody voted on is no news
            self._record(moves, winner_move, m_tallies, landing)
        if d_result is not None:
            self._record(direction, d_result.winner, d_tallies, landing)
        self.counters.rounds += 1
        self.moves = self._new_moves(bar + 1)
        if close_direction:
            self.direction = self._new_direction(bar + 1, promoted)
        self._on_change()

    def _store_lost(self, moves: Ballot, direction: Ballot) -> None:
        """The store lost its data (a Redis restart without persistence): say so, never close on nothing quietly."""
        self.notice = "The vote store restarted and lost the votes of this round. Please vote again."
        log.error("the vote store lost its data: rounds %d and %d lost their votes", moves.id, direction.id)
        if self.setlist is not None:
            self.setlist({"event": "store_lost", "rounds": [moves.id, direction.id], "message": self.notice})
        self._on_change()

    def _live_tallies(self, ballot: Ballot, tallies: Mapping[str, int]) -> dict[str, int]:
        return {k: v for k, v in tallies.items() if ballot.option(k) is not None}

    def _record(self, ballot: Ballot, winner: str, tallies: Mapping[str, int], lands: int) -> None:
        option = ballot.option(winner)
        label = option.label if option is not None else winner
        if ballot.kind == "direction" and winner != agg.STAY and self.booth.locked(lands) is None:
            votes = sum(tallies.values())
            self._landing_notes[lands] = {"label": label, "winner": winner, "by": "crowd", "votes": votes}
        self.last_result = {
            "round": ballot.id,
            "kind": ballot.kind,
            "winner": winner,
            "label": label,
            "lands_at_bar": lands,
        }
        if self.setlist is not None:
            self.setlist(
                {
                    "event": "round",
                    **self.last_result,
                    "votes": sum(tallies.values()),
                    "tallies": dict(tallies),
                    "mode": self.mode,
                    "prompt": [{"style": s, "weight": round(w, 4)} for s, w in self.mix],
                    "live": {"energy_offset": self.live.energy_offset, "bpm_offset": self.live.bpm_offset},
                }
            )

    async def _clear_board(self, keep: set[str]) -> None:
        """Suggestions expire with their round: all but the promoted ones leave the board, budgets reset."""
        for sid in self._board - keep:
            await self.store.remove_suggestion(sid)
        self._board = set(keep)
        self._suggested = {}

    async def _promoted_suggestions(self) -> tuple[agg.Option, ...]:
        top = await self.store.top_suggestions(self.config.suggestion_options)
        return tuple(agg.Option(f"s:{s.id}", s.text, self.words.style(s.text)) for s in top if s.upvotes > 0)

    # ----- crowd input -----------------------------------------------------
    def open_ballots(self) -> OpenBallots:
        """The ballots open now: what `vote` (here, or on a web worker) checks a vote against."""
        return OpenBallots.of(self.voting, (self.direction, self.moves))

    async def vote(self, device: str, round_id: int, option_id: str) -> None:
        cast_ = self.open_ballots().check(round_id, option_id)
        try:
            result = await self.store.vote(round_id, device, option_id)
        except RoundClosedError:
            raise Refused("wrong_round", f"round {round_id} just closed; vote in the next one") from None
        self.counted(cast_, first=result.previous is None)

    def counted(self, cast_: Cast, first: bool) -> None:
        """A vote the store accepted (here or on a web worker): counters, and anarchy's immediate pull."""
        if not first:  # a phone changing its mind: one vote per device per round, counted once
            self.counters.vote_changes += 1
            self._on_change()
            return
        self.counters.votes += 1
        if cast_.kind == "direction" and cast_.style is not None:
            self.pull(cast_.style)
        self._on_change()

    def pull(self, style: str) -> None:
        """A device's first direction vote for `style` in this round: in anarchy mode it moves the mix now."""
        if self.mode == "anarchy" and self.booth.locked(int(self.bar)) is None:
            self.mix = agg.anarchy_vote(self.mix, style, self.config.aggregator)
            self._prompt_dirty = True
            self._on_change()

    async def suggest(self, device: str, text: str) -> dict[str, object]:
        try:
            taken = await self._suggest(device, text)
        except Refused:
            self.counters.suggestions_refused += 1
            raise
        self.counters.suggestions += 1
        return taken

    async def _suggest(self, device: str, text: str) -> dict[str, object]:
        try:
            clean = self.moderator.moderate(text)
            reading = await self.words.read(clean)
        except SuggestionRefused as e:
            raise Refused("refused", str(e)) from None
        except (UnknownStyleError, PromptError) as e:
            raise Refused("refused", str(e)) from None
        if self._suggested.get(device, 0) >= self.config.suggestions_per_device:
            n = self.config.suggestions_per_device
            raise Refused("too_many_suggestions", f"you have made {n} suggestions this song; upvote others instead")
        if len(self._board) >= self.config.board_size:
            raise Refused("board_full", "the board is full for this song; upvote a suggestion instead")
        s = await self.store.add_suggestion(clean, device, self.clock())
        self._suggested[device] = self._suggested.get(device, 0) + 1
        self._board.add(s.id)
        self._on_change()
        return {
            "id": s.id,
            "text": s.text,
            "upvotes": s.upvotes,
            "understood": None if reading is None else reading.label,
        }

    async def upvote(self, device: str, suggestion_id: str) -> dict[str, object]:
        try:
            s = await self.store.upvote(suggestion_id, device)
        except UnknownSuggestionError:
            raise Refused("unknown_suggestion", f"suggestion {suggestion_id!r} is gone or never was") from None
        self._on_change()
        return {"id": s.id, "text": s.text, "upvotes": s.upvotes}

    def _sample(self, bar: int) -> None:
        bpm = self.now_playing.bpm if self.now_playing is not None else self.prompt.bpm or 0.0
        energy = self.prompt.energy if self.prompt.energy is not None else 0.0
        sample = Sample(self.clock(), bar, self.mix, float(bpm), float(energy), self.counters.votes, self._clients)
        self.booth.history.add(sample)
        if self.setlist is not None and self._heard_s - self._last_logged_sample >= SAMPLE_EVERY_S:
            self._last_logged_sample = self._heard_s
            c = self.counters
            counts = {"suggestions": c.suggestions, "suggestions_refused": c.suggestions_refused}
            self.setlist({"event": "sample", **sample.as_json(), **counts, "vote_changes": c.vote_changes})

    # ----- state -------------------------------------------------------------
    def seconds_until(self, bar: int) -> float:
        bpm = self.now_playing.bpm if self.now_playing and self.now_playing.bpm > 0 else 120.0
        return seconds_until(self.bar, bar, bpm)

    async def played(self) -> dict[str, Any]:
        """The set's recent changes as heard, newest first (`/api/setlist`, the listener page)."""
        return {"landed": self.booth.landed, "recent": list(reversed(self.booth.played))}

    async def state(self, clients: int) -> dict[str, Any]:
        d, m = self.direction, self.moves
        self._clients = clients
        lock = self.booth.locked(int(self.bar))
        d_t = self._live_tallies(d, await self.store.tallies(d.id))
        m_t = self._live_tallies(m, await self.store.tallies(m.id))
        suggestions = await self.store.top_suggestions(10)
        on_ballot = {o.id for o in d.options}
        return {
            "ts": self.clock(),
            "round": d.id,
            "options": [{"id": o.id, "label": o.label, "kind": _kind(o), "style": o.style} for o in d.live_options()],
            "tallies": d_t,
            "votes": sum(d_t.values()),
            "closes_in": round(self.seconds_until(d.close_bar), 2),
            "moves": {
                "round": m.id,
                "options": [{"id": o.id, "label": o.label} for o in m.live_options()],
                "tallies": m_t,
                "votes": sum(m_t.values()),
                "closes_in": round(self.seconds_until(m.close_bar), 2),
            },
            "prompt": [{"style": s, "weight": round(w, 4)} for s, w in self.mix],
            "now_playing": self.now_playing.as_json() if self.now_playing else None,
            "mode": self.mode,
            "voting": self.voting,
            "suggestions": [
                {"id": s.id, "text": s.text, "upvotes": s.upvotes, "understood": self.words.label(s.text)}
                for s in suggestions
                if f"s:{s.id}" not in on_ballot
            ],
            "bar": int(self.bar),
            "round_bars": self.config.schedule.round_bars,
            "clients": clients,
            "last_result": self.last_result,
            "notice": self.notice,
            "locked": None if lock is None else lock.as_json(),
            "landed": self.booth.landed,
        }


def _kind(option: agg.Option) -> str:
    if option.style is None:
        return "stay"
    return "suggestion" if option.id.startswith("s:") else "style"
