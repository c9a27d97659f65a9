"""The conductor driven bar by bar with the real synth and the real memory store (no wall clock)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace

import pytest

from concert.crowd import aggregator as agg
from concert.crowd.conductor import Conductor, ConductorConfig, Refused
from concert.crowd.moderation import ModerationConfig, Moderator, load_wordlist
from concert.crowd.rounds import Schedule
from concert.crowd.words import Understand, load_understanding
from concert.store.memory import MemoryStore
from engine.music.prompt import Prompt, PromptError
from engine.playback.clock import BarClock
from engine.source import NowPlaying
from engine.synth.source import StyleSynth, SynthConfig


class Set:
    """A conductor over a synth, played as fast as it renders."""

    def __init__(
        self,
        mode: str = "democracy",
        round_bars: int = 2,
        song_phrases: int = 2,
        lead: int = 1,
        understand: Understand | None = None,
    ) -> None:
        self.events: list[dict[str, object]] = []
        self.source = StyleSynth(SynthConfig(sample_rate=12000, seed=1), Prompt.of("house"))
        schedule = Schedule(round_bars=round_bars, song_phrases=song_phrases, close_lead_bars=lead)
        config = ConductorConfig(schedule=schedule, aggregator=agg.AggregatorConfig(mode=mode))  # type: ignore[arg-type]
        self.store = MemoryStore()
        moderator = Moderator(ModerationConfig(), load_wordlist("artists"), load_wordlist("blocked_words"))
        self.news = 0  # on_change calls
        self.c = Conductor(
            config,
            self.store,
            self.source,
            moderator=moderator,
            setlist=self._log,
            understand=understand,
            clock=lambda: 1e9,
            on_change=self._news,
        )
        self.playing: list[NowPlaying] = []
        self.clock = BarClock()

    def _news(self) -> None:
        self.news += 1

    def _log(self, event: Mapping[str, object]) -> None:
        self.events.append(dict(event))

    async def bars(self, n: int) -> None:
        for _ in range(n):
            chunk = self.clock.stamp(self.source.next_chunk())  # the deck's job in a live set
            self.playing.append(chunk.now_playing)
            self.c.on_block(chunk)
            for _ in range(5):  # let a round close (store awaits) finish before the next bar
                await asyncio.sleep(0)


def run(coro_fn):  # type: ignore[no-untyped-def]
    return asyncio.run(coro_fn())


def test_democracy_winner_lands_on_the_song_boundary() -> None:
    async def main() -> None:
        s = Set()
        d = s.c.direction
        target = next(o for o in d.options if o.style is not None).id
        for i in range(3):
            await s.c.vote(f"dev{i}", d.id, target)
        await s.c.vote("dev9", d.id, "stay")
        assert d.close_bar == 3 and d.lands_bar == 4  # song = 2 phrases of 2 bars, lead 1
        await s.bars(4)
        assert s.c.direction.id != d.id
        assert s.c.mix[0][0] == target and s.c.mix[0][1] == pytest.approx(0.75)
        assert [p.genre for p in s.playing] == ["house"] * 4
        await s.bars(4)
        # bar 4, the first bar of the next song, starts the segue: a 4-bar glide into the target
        assert dict(s.playing[3].mix).get(target, 0) == 0
        shares = [dict(p.mix).get(target, 0) for p in s.playing[4:8]]
        assert shares == sorted(shares) and shares[-1] > 0.5
        assert s.playing[7].genre == target
        rounds = [e for e in s.events if e["event"] == "round" and e["kind"] == "direction"]
        assert rounds[0]["winner"] == target and rounds[0]["votes"] == 4
        assert rounds[0]["lands_at_bar"] == 4
        assert _latency_count(s.c) == 3  # the landings on bars 2, 4 and 6, each observed once
        assert _latency_count(s.c) == _latency_count(s.c)  # reading the histogram does not drain it

    run(main)


def _latency_count(c: Conductor) -> float:
    (family,) = c.counters.steering_latency.collect()
    return next(x.value for x in family.samples if x.name.endswith("_count"))


def test_live_moves_land_on_the_next_phrase() -> None:
    async def main() -> None:
        s = Set(song_phrases=4)  # phrases of 2 bars: intro, build, drop, breakdown
        assert s.c.config.schedule.section_for(2) == "build"
        await s.c.vote("a", s.c.moves.id, "drop")
        await s.c.vote("b", s.c.moves.id, "drop")
        await s.bars(2)  # closes at bar 1, lands at bar 2
        await s.c.vote("a", s.c.moves.id, "faster")
        await s.bars(6)  # closes at bar 3, lands at bar 4
        assert [p.section for p in s.playing[:4]] == ["intro", "intro", "drop", "drop"]  # dropped early
        assert s.c.live.bpm_offset == 4.0
        assert s.playing[5].bpm > s.playing[3].bpm  # bar 4 ramps up from the old tempo
        assert s.playing[6].section == "breakdown"  # a drop is not sticky

    run(main)


def test_anarchy_votes_nudge_the_mix_at_once_and_decay() -> None:
    async def main() -> None:
        s = Set(mode="anarchy", round_bars=8, song_phrases=4, lead=2)
        target = next(o for o in s.c.direction.options if o.style is not None)
        await s.bars(1)
        for i in range(5):
            await s.c.vote(f"d{i}", s.c.direction.id, target.id)
        nudged = dict(s.c.mix)[target.id]
        assert 0 < nudged < 1
        await s.bars(4)  # applied from the next unrendered bar (3), gliding over that bar
        assert dict(s.playing[4].mix).get(target.id, 0) > 0
        await s.bars(4)
        assert dict(s.c.mix).get(target.id, 0) < nudged  # pressure decays toward home

    run(main)


def test_suggestions_are_moderated_then_promoted_into_the_ballot() -> None:
    async def main() -> None:
        s = Set()
        with pytest.raises(Refused) as e:
            await s.c.suggest("a", "in the style of Daft Punk")
        assert e.value.code == "refused"
        with pytest.raises(Refused) as e:
            await s.c.suggest("a", "something nice")  # names nothing playable
        assert e.value.code == "refused" and "genre" in e.value.message
        sug = await s.c.suggest("a", "dark  rolling <b>techno</b>")
        await s.c.upvote("b", str(sug["id"]))
        await s.bars(4)
        opts = {o.id: o for o in s.c.direction.options}
        assert f"s:{sug['id']}" in opts
        assert opts[f"s:{sug['id']}"].style == sug["text"]
        state = await s.c.state(clients=1)
        assert f"s:{sug['id']}" in [o["id"] for o in state["options"]]
        assert all(x["id"] != sug["id"] for x in state["suggestions"])  # shown once, on the ballot

    run(main)


def test_words_without_a_genre_are_understood_by_the_text_model_and_played() -> None:
    async def main() -> None:
        understand, stop = load_understanding()  # the real shipped MiniLM
        try:
            s = Set(understand=understand)
            with pytest.raises(Refused) as e:
                await s.c.suggest("a", "my tax return")  # nothing musical in it
            assert e.value.code == "refused" and "sounds like no style" in e.value.message
            with pytest.raises(Refused):
                await s.c.suggest("a", "rainy piano like Daft Punk")  # artist names are refused before any reading
            sug = await s.c.suggest("a", "rainy day piano")
            assert sug["understood"] == "Lo-fi"
            plain = await s.c.suggest("b", "dark techno")  # a genre word: plays as written, nothing to show
            assert plain["understood"] is None
            state = await s.c.state(clients=1)
            assert {x["text"]: x["understood"] for x in state["suggestions"]} == {
                "rainy day piano": "Lo-fi",
                "dark techno": None,
            }
            assert (s.c.counters.suggestions, s.c.counters.suggestions_refused) == (2, 2)
            await s.c.upvote("c", str(sug["id"]))
            await s.bars(4)
            option = next(o for o in s.c.direction.options if o.id == f"s:{sug['id']}")
            assert option.label == "rainy day piano" and option.style == "lofi"  # the crowd's words, the model's style
            # a conductor that takes over plays the same reading, with no model of its own
            t = Set()
            t.c.restore(s.c.snapshot())
            assert t.c.words.style("rainy day piano") == "lofi"
            for _ in range(3):
                await s.c.vote(f"v{_}", s.c.direction.id, option.id)
            await s.bars(12)
            won = [e for e in s.events if e["event"] == "round" and e["winner"] == option.id]
            assert won and won[0]["label"] == "rainy day piano"
            assert dict(s.c.mix).get("lofi", 0) > 0.5 and s.playing[-1].genre == "lofi"  # the words won: lo-fi plays
        finally:
            stop()

    run(main)


def test_veto_pause_and_bad_prompts_never_stop_the_music() -> None:
    async def main() -> None:
        s = Set()
        d = s.c.direction
        victim = next(o for o in d.options if o.style is not None).id
        await s.c.vote("a", d.id, victim)
        await s.c.veto(victim)
        with pytest.raises(Refused) as e:
            await s.c.vote("b", d.id, victim)
        assert e.value.code == "unknown_option"
        state = await s.c.state(clients=0)
        assert victim not in state["tallies"] and victim not in [o["id"] for o in state["options"]]
        with pytest.raises(ValueError):
            await s.c.veto("stay")
        s.c.set_voting("paused")
        with pytest.raises(Refused) as e:
            await s.c.vote("b", d.id, "stay")
        assert e.value.code == "voting_paused"
        s.c.set_voting("open")
        before = s.c.prompt
        with pytest.raises(PromptError):
            s.c.override(Prompt.of("techno in the style of Aphex Twin"))
        assert s.c.prompt == before
        await s.bars(4)
        assert s.c.mix[0][0] == "house"  # the vetoed option's vote did not count
        assert all(p.genre == "house" for p in s.playing)

    run(main)


def test_blend_mode_weights_follow_vote_shares() -> None:
    async def main() -> None:
        s = Set(mode="blend")
        d = s.c.direction
        a, b = [o.id for o in d.options if o.style is not None][:2]
        for i in range(3):
            await s.c.vote(f"a{i}", d.id, a)
        await s.c.vote("b0", d.id, b)
        await s.bars(4)
        mix = dict(s.c.mix)
        assert mix[a] > mix[b] > 0
        assert mix[a] / mix[b] == pytest.approx(3.0, rel=0.05)

    run(main)


def test_a_round_close_in_flight_is_kept_and_cancelled_on_close() -> None:
    async def main() -> None:
        s = Set()
        started, cancelled = asyncio.Event(), asyncio.Event()

        async def stuck_close(round_id: int) -> dict[str, int]:  # a store that never answers
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return {}

        s.store.close_round = stuck_close  # type: ignore[method-assign]
        await s.bars(2)  # the moves round closes at bar 1
        assert started.is_set() and not cancelled.is_set()
        assert s.news >= 2  # every bar is news for the clients
        await asyncio.wait_for(s.c.aclose(), 5)
        assert cancelled.is_set()

    run(main)


def test_the_djs_tempo_holds_across_rounds_until_the_crowd_segues() -> None:
    async def main() -> None:
        s = Set()
        await s.bars(1)
        s.c.override(Prompt.of("techno", bpm=150.0, ramp_bars=0))
        await s.bars(5)  # two moves rounds and a direction round close with no votes: "stay"
        assert s.c.prompt.bpm == 150.0 and s.playing[-1].bpm == pytest.approx(150.0)
        await s.c.vote("a", s.c.moves.id, "faster")  # the crowd still moves the tempo from there
        await s.bars(2)
        assert s.c.prompt.bpm == 150.0 + s.c.live.bpm_offset and s.c.live.bpm_offset > 0
        d = s.c.direction
        target = next(o for o in d.options if o.style is not None)
        for i in range(3):
            await s.c.vote(f"d{i}", d.id, target.id)
        await s.bars(4)  # the crowd takes the set to a new genre: its own tempo, the pin is gone
        assert s.c.pinned.bpm is None and s.c.mix[0][0] == target.id
        assert s.c.prompt.bpm != pytest.approx(150.0 + s.c.live.bpm_offset)

    run(main)


def test_anarchy_counts_a_device_once_per_round_however_often_it_revotes() -> None:
    async def main() -> None:
        s = Set(mode="anarchy", round_bars=8, song_phrases=4, lead=2)
        target = next(o for o in s.c.direction.options if o.style is not None)
        await s.c.vote("troll", s.c.direction.id, target.id)
        once = dict(s.c.mix)[target.id]
        for _ in range(24):  # 25 votes from one device moved house 1.0 to techno 0.84 before
            await s.c.vote("troll", s.c.direction.id, "stay")
            await s.c.vote("troll", s.c.direction.id, target.id)
        assert dict(s.c.mix)[target.id] == once
        assert s.c.counters.votes == 1 and s.c.counters.vote_changes == 48
        await s.c.vote("fan", s.c.direction.id, target.id)  # another device still counts
        assert dict(s.c.mix)[target.id] > once and s.c.counters.votes == 2

    run(main)


def test_suggestions_are_bounded_per_device_and_board_and_expire_with_their_round() -> None:
    async def main() -> None:
        s = Set()
        s.c = Conductor(
            replace(s.c.config, suggestions_per_device=2, board_size=3, suggestion_options=1),
            s.store,
            s.source,
            moderator=s.c.moderator,
            clock=lambda: 1e9,
        )
        await s.c.suggest("a", "dark techno")
        await s.c.suggest("a", "deep house")
        with pytest.raises(Refused) as e:
            await s.c.suggest("a", "warm lofi")  # a third from the same phone this song
        assert e.value.code == "too_many_suggestions"
        top = await s.c.suggest("b", "rolling drum and bass")
        await s.c.upvote("c", str(top["id"]))
        with pytest.raises(Refused) as e:
            await s.c.suggest("d", "sunny trance")  # three open: the board is full
        assert e.value.code == "board_full"
        await s.bars(4)  # the direction round closes: the top one is promoted, the rest expire
        assert [o.id for o in s.c.direction.options if o.id.startswith("s:")] == [f"s:{top['id']}"]
        assert [x.id for x in await s.store.top_suggestions(10)] == [str(top["id"])]
        await s.c.suggest("a", "warm lofi")  # a new song: budgets are fresh
        await s.c.suggest("d", "sunny trance")

    run(main)
