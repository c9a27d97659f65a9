"""The booth's controls on a conductor driven bar by bar (real synth, real memory store): a lock holds the crowd's
results off the music until it runs out, build-and-drop lands on the phrase, live blocklist edits clear the board,
the lock and the words survive a hand-over, and the last hour is sampled once a bar."""

from __future__ import annotations

import pytest

from concert.crowd.booth import Booth, History, Lock, Sample, check_words
from engine.music.prompt import Prompt
from tests.concert.crowd.test_conductor import Set, run


def test_a_lock_holds_the_style_through_crowd_rounds_then_the_crowd_steers_again() -> None:
    async def main() -> None:
        s = Set()  # songs of 4 bars: the direction round closes at bar 3 and lands on bar 4
        held = s.c.lock("techno", bars=6)
        assert held.style == "techno" and held.until_bar == 0 + 6  # from the next bar to play: the set's first
        d = s.c.direction
        target = next(o for o in d.options if o.style not in (None, "techno")).id
        for i in range(3):
            await s.c.vote(f"dev{i}", d.id, target)
        await s.bars(4)
        assert s.c.mix == (("techno", 1.0),)  # the crowd's winner is recorded, the music stays
        rounds = [e for e in s.events if e["event"] == "round" and e["kind"] == "direction"]
        assert rounds[0]["winner"] == target and rounds[0]["prompt"] == [{"style": "techno", "weight": 1.0}]
        assert (await s.c.state(0))["locked"] == {"style": "techno", "until_bar": 6}
        d = s.c.direction
        target = next(o for o in d.options if o.style not in (None, "techno")).id
        for i in range(3):
            await s.c.vote(f"dev{i}", d.id, target)
        await s.bars(4)  # the round lands on bar 8, after the lock ran out at bar 6
        assert s.c.mix[0][0] == target
        assert (await s.c.state(0))["locked"] is None

    run(main)


def test_anarchy_pulls_wait_for_the_lock() -> None:
    async def main() -> None:
        s = Set(mode="anarchy")
        s.c.lock("ambient", bars=8)
        d = s.c.direction
        other = next(o for o in d.options if o.style not in (None, "ambient")).id
        for i in range(5):
            await s.c.vote(f"dev{i}", d.id, other)
        await s.bars(3)
        assert s.c.mix == (("ambient", 1.0),)
        s.c.unlock()
        await s.c.vote("late", s.c.direction.id, next(o for o in s.c.direction.options if o.style).id)
        assert len(s.c.mix) > 1  # unlocked: the pull moves the mix at once

    run(main)


def test_bad_locks_are_refused_and_change_nothing() -> None:
    async def main() -> None:
        s = Set()
        for bars in (0, -1, 1.5, True, 100_000):
            with pytest.raises(ValueError, match="bars"):
                s.c.lock("techno", bars=bars)  # type: ignore[arg-type]
        with pytest.raises(Exception, match="Drake|style"):
            s.c.lock("Drake type beat", bars=8)
        assert s.c.booth.lock is None and s.c.mix == (("house", 1.0),)

    run(main)


def test_build_and_drop_lands_the_drop_on_the_next_phrase() -> None:
    async def main() -> None:
        s = Set(song_phrases=4)  # phrases of 2 bars: intro, build, drop, breakdown
        await s.bars(6)  # the next phrase (bars 6-7) would be the breakdown, the one after (bar 8) a new intro
        when = s.c.drop()
        assert when["drop_at_bar"] == s.c.moves.lands_bar
        await s.bars(when["drop_at_bar"] - 6 + 1)
        sections = {i: p.section for i, p in enumerate(s.playing)}
        assert sections[when["build_at_bar"]] == "build"  # the build starts on the next bar
        assert sections[when["drop_at_bar"]] == "drop"  # and the drop hits the phrase

    run(main)


def test_blocking_a_word_live_refuses_it_and_clears_the_board() -> None:
    async def main() -> None:
        s = Set()
        kept = await s.c.suggest("a", "dark techno")
        gone = await s.c.suggest("b", "wobbly techno")
        words = await s.c.set_blocked(["Wobbly"], blocked=True)
        assert words == ["wobbly"]
        texts = [x["text"] for x in (await s.c.state(0))["suggestions"]]
        assert "dark techno" in texts and gone["text"] not in texts and kept["text"] in texts
        with pytest.raises(Exception, match="big screen"):
            await s.c.suggest("c", "wobbly trance")
        assert await s.c.set_blocked(["wobbly"], blocked=False) == []
        assert (await s.c.suggest("c", "wobbly trance"))["text"] == "wobbly trance"
        with pytest.raises(ValueError, match="printable"):
            await s.c.set_blocked(["x" * 41], blocked=True)
        with pytest.raises(ValueError, match="list"):
            await s.c.set_blocked("wobbly", blocked=True)  # type: ignore[arg-type]

    run(main)


def test_lock_and_blocklist_carry_over_to_the_next_conductor() -> None:
    async def main() -> None:
        s = Set()
        await s.bars(2)
        s.c.lock("trance", bars=10)  # lands on bar 3, held to bar 13: 11 bars left at bar 2
        await s.c.set_blocked(["wobbly"], blocked=True)
        snap = s.c.snapshot()
        t = Set()
        await t.bars(5)  # another process, its own bar count
        t.c.restore(snap)
        lock = t.c.booth.locked(int(t.c.bar))
        assert lock is not None and lock.style == "trance" and lock.until_bar == int(t.c.bar) + 11
        assert t.c.booth.blocked == {"wobbly"}
        with pytest.raises(Exception, match="big screen"):
            await t.c.suggest("c", "wobbly trance")

    run(main)


def test_history_samples_each_bar_and_forgets_after_its_hour() -> None:
    async def main() -> None:
        s = Set()
        await s.c.vote("a", s.c.direction.id, "stay")
        await s.bars(6)
        samples = s.c.booth.history.since(0)
        assert [x["bar"] for x in samples] == list(range(6))
        assert samples[-1]["votes"] == 1 and samples[-1]["mix"] == {"house": 1.0} and samples[-1]["bpm"] > 0

    run(main)
    h = History(seconds=10)
    for t in range(30):
        h.add(Sample(float(t), t, (("house", 1.0),), 120.0, 0.5, t, 3))
    assert len(h) == 11 and h.since(0)[0]["at"] == 19.0
    assert [x["bar"] for x in h.since(27)] == [27, 28, 29]


def test_booth_pieces() -> None:
    b = Booth(lock=Lock("techno", 10))
    assert b.locked(9) is not None and b.locked(10) is None and b.lock is None  # run out: dropped
    entry = b.record(5.0, "ana@10.0.0.2", "panic", {"result": {"panic": True}})
    assert entry["event"] == "booth" and list(b.actions) == [entry]
    assert check_words(["  Big   Word ", "x*"]) == ["big word", "x*"]
    for bad in ([], ["ok", ""], [3], ["tab\there"], ["w"] * 51):
        with pytest.raises(ValueError):
            check_words(bad)


def test_the_setlist_marks_each_change_where_it_is_heard() -> None:
    async def main() -> None:
        s = Set()  # the direction round closes at bar 3 and lands on bar 4
        d = s.c.direction
        target = next(o for o in d.options if o.style is not None)
        await s.c.vote("a", d.id, target.id)
        await s.bars(6)
        s.c.override(Prompt.of("ambient"))
        await s.bars(3)
        landed = [e for e in s.events if e["event"] == "landed"]
        assert [(e["bar"], e["by"]) for e in landed[:2]] == [(0, "opening"), (4, "crowd")]
        assert landed[1]["label"] == target.label and landed[1]["votes"] == 1
        assert landed[2]["by"] == "dj" and landed[2]["label"] == "Ambient" and landed[2]["bar"] == 6
        for e in landed[1:]:  # marked on the bar its glide starts: not in the mix before, in it by the next bar
            bar, style = int(e["bar"]), str(e["winner"])
            assert style not in dict(s.playing[bar - 1].mix) and style in dict(s.playing[bar + 1].mix)
        # the listener page's list: the same changes, newest first, each with the wall time it was heard
        played = await s.c.played()
        assert played["landed"] == len(landed) == (await s.c.state(0))["landed"]
        assert [(p["bar"], p["by"]) for p in played["recent"]] == [(e["bar"], e["by"]) for e in reversed(landed)]
        assert all(isinstance(p["at"], float) for p in played["recent"])
        # and it carries over to a conductor that takes the set on
        t = Set()
        t.c.restore(s.c.snapshot())
        assert await t.c.played() == played

    run(main)
