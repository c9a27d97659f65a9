"""A second conductor carries the set on from the first's snapshot, and a web worker checks votes with the
conductor's own rule from nothing but the state frame it publishes."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from concert.crowd.ballots import OpenBallots, Refused
from engine.music.prompt import Prompt
from tests.concert.crowd.test_conductor import Set


def test_a_snapshot_carries_rounds_mix_pins_and_board_to_a_new_conductor() -> None:
    async def main() -> None:
        old = Set(mode="blend")
        await old.bars(3)
        old.c.override(Prompt.of("techno", bpm=131.0))
        await old.c.suggest("dev1", "deep warehouse techno")
        d = old.c.direction
        target = next(o for o in d.options if o.style is not None).id
        await old.c.vote("dev1", d.id, target)
        old.c.set_voting("paused")
        snap = json.loads(json.dumps(old.c.snapshot()))  # it travels as JSON through Redis

        new = Set(mode="democracy")
        new.store = old.store  # the shared store: the votes are there
        new.c.store = old.store
        new.c.restore(snap)
        assert new.c.mode == "blend" and new.c.voting == "paused"
        assert new.c.mix == old.c.mix and new.c.pinned.bpm == 131.0
        assert new.c.direction.id == d.id and new.c.moves.id == old.c.moves.id
        assert [o.id for o in new.c.direction.options] == [o.id for o in d.options]
        state = await new.c.state(0)
        assert state["tallies"] == {target: 1}  # the vote cast before the hand-over counts
        assert [s["text"] for s in state["suggestions"]] == ["deep warehouse techno"]
        assert new.c.prompt.bpm == 131.0  # the new engine plays the carried-on prompt
        new.c.set_voting("open")
        await new.bars(8)  # and its rounds close on its own bar clock
        assert new.c.direction.id != d.id and new.c.direction.id > snap["next_id"] - 1

    asyncio.run(main())


def test_a_snapshot_of_another_version_is_refused() -> None:
    s = Set()
    snap = s.c.snapshot()
    with pytest.raises(ValueError, match="version"):
        s.c.restore({**snap, "version": 99})
    with pytest.raises(ValueError, match="malformed"):
        s.c.restore({k: v for k, v in snap.items() if k != "mix"})


@settings(max_examples=40, deadline=None)
@given(
    st.integers(min_value=-2, max_value=2),
    st.sampled_from(["stay", "techno", "house", "lofi", "s:1", "energy_up", "drop", "nope"]),
    st.booleans(),
)
def test_a_worker_checks_votes_exactly_as_the_conductor_does(round_shift: int, option: str, paused: bool) -> None:
    async def main() -> None:
        s = Set()
        if paused:
            s.c.set_voting("paused")
        state = json.loads(json.dumps(await s.c.state(0)))
        worker = OpenBallots.from_state(state)
        rounds = [s.c.direction.id, s.c.moves.id]
        round_id = rounds[round_shift % 2] + (0 if abs(round_shift) < 2 else 1000)
        try:
            expected = s.c.open_ballots().check(round_id, option)
        except Refused as e:
            with pytest.raises(Refused) as got:
                worker.check(round_id, option)
            assert got.value.code == e.code
            return
        assert worker.check(round_id, option) == expected

    asyncio.run(main())
