"""One behaviour suite for both stores (memory and a real redis-server), plus Redis-only checks."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from concert.store import (
    MemoryStore,
    RedisStore,
    RoundClosedError,
    Store,
    StoreConfig,
    StoreUnavailableError,
    Suggestion,
    UnknownSuggestionError,
    VoteResult,
    open_store,
)

T = TypeVar("T")


def run_with(url: str, body: Callable[[Store], Awaitable[T]], config: StoreConfig | None = None) -> T:
    """Open a store, run `body` on it in a fresh event loop, close the store."""

    async def main() -> T:
        store = open_store(url, config)
        try:
            return await body(store)
        finally:
            await store.aclose()

    return asyncio.run(main())


@pytest.fixture(params=["memory", "redis"])
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    return str(request.getfixturevalue("redis_url"))


# ----- votes -----------------------------------------------------------------


def test_one_vote_per_device_last_wins(store_url: str) -> None:
    async def body(store: Store) -> None:
        assert await store.vote(1, "d1", "techno") == VoteResult(1, "techno", None, True)
        assert await store.vote(1, "d2", "techno") == VoteResult(1, "techno", None, True)
        assert await store.vote(1, "d1", "jazz") == VoteResult(1, "jazz", "techno", True)
        assert await store.tallies(1) == {"techno": 1, "jazz": 1}
        assert await store.vote(1, "d2", "jazz") == VoteResult(1, "jazz", "techno", True)
        assert await store.tallies(1) == {"jazz": 2}  # techno fell to 0 and is omitted
        assert await store.device_vote(1, "d1") == "jazz"
        assert await store.device_vote(1, "d3") is None
        assert await store.tallies(2) == {}
        assert await store.device_vote(2, "d1") is None

    run_with(store_url, body)


def test_repeated_vote_is_an_idempotent_retry(store_url: str) -> None:
    async def body(store: Store) -> None:
        await store.vote(7, "d1", "house")
        for _ in range(3):
            assert await store.vote(7, "d1", "house") == VoteResult(7, "house", "house", False)
        assert await store.tallies(7) == {"house": 1}

    run_with(store_url, body)


def test_rounds_are_independent(store_url: str) -> None:
    async def body(store: Store) -> None:
        await store.vote(1, "d1", "a")
        await store.vote(2, "d1", "b")
        assert await store.tallies(1) == {"a": 1}
        assert await store.tallies(2) == {"b": 1}
        await store.close_round(1)
        assert (await store.vote(2, "d1", "c")).previous == "b"

    run_with(store_url, body)


def test_close_round_returns_final_tallies_and_refuses_later_votes(store_url: str) -> None:
    async def body(store: Store) -> None:
        await store.vote(3, "d1", "a")
        await store.vote(3, "d2", "a")
        await store.vote(3, "d3", "b")
        assert await store.close_round(3) == {"a": 2, "b": 1}
        for device, option in [("d4", "a"), ("d1", "b"), ("d1", "a")]:
            with pytest.raises(RoundClosedError, match="round 3 is closed") as info:
                await store.vote(3, device, option)
            assert info.value.round_id == 3
        assert await store.close_round(3) == {"a": 2, "b": 1}  # idempotent
        assert await store.tallies(3) == {"a": 2, "b": 1}
        assert await store.device_vote(3, "d1") == "a"
        assert await store.close_round(4) == {}  # closing an empty round works and closes it
        with pytest.raises(RoundClosedError):
            await store.vote(4, "d1", "a")

    run_with(store_url, body)


def test_many_concurrent_votes_are_all_counted(store_url: str) -> None:
    devices = [f"dev{i}" for i in range(500)]
    options = ["a", "b", "c", "d"]

    async def body(store: Store) -> None:
        results = await asyncio.gather(*(store.vote(9, d, options[i % 4]) for i, d in enumerate(devices)))
        assert all(r.changed and r.previous is None for r in results)
        tallies = await store.tallies(9)
        assert sum(tallies.values()) == len(devices)
        assert tallies == {"a": 125, "b": 125, "c": 125, "d": 125}
        # everyone changes their mind at once: still one vote each
        await asyncio.gather(*(store.vote(9, d, "a") for d in devices))
        assert await store.tallies(9) == {"a": 500}

    run_with(store_url, body)


def test_close_racing_votes_counts_exactly_the_acked_ones(store_url: str) -> None:
    async def body(store: Store) -> None:
        async def vote(i: int) -> tuple[str, str] | None:
            try:
                await store.vote(5, f"dev{i}", "ab"[i % 2])
            except RoundClosedError:
                return None
            return f"dev{i}", "ab"[i % 2]

        votes = [vote(i) for i in range(300)]
        results = await asyncio.gather(*votes[:150], store.close_round(5), *votes[150:])
        final = results.pop(150)
        acked = [r for r in results if r is not None]
        assert isinstance(final, dict) and 0 < len(acked) < 300
        assert final == dict(Counter(option for _, option in acked))
        assert await store.tallies(5) == final
        with pytest.raises(RoundClosedError):
            await store.vote(5, "late", "a")

    run_with(store_url, body)


def test_rounds_far_behind_the_newest_closed_one_expire(store_url: str) -> None:
    async def body(store: Store) -> None:
        await store.vote(1, "d1", "a")
        await store.vote(2, "d1", "a")
        await store.close_round(3)  # keep_rounds=2: round 1 is now too old, round 2 is kept
        with pytest.raises(RoundClosedError, match="round 1"):
            await store.vote(1, "d2", "a")
        assert await store.close_round(1) == {}
        assert await store.vote(2, "d2", "a") == VoteResult(2, "a", None, True)
        assert await store.tallies(2) == {"a": 2}

    run_with(store_url, body, StoreConfig(keep_rounds=2))


@pytest.mark.parametrize(
    ("round_id", "device", "option", "match"),
    [
        (-1, "d", "a", "round id"),
        (True, "d", "a", "round id"),
        (2**53, "d", "a", "round id"),
        ("1", "d", "a", "round id"),
        (1, "", "a", "device id"),
        (1, "d" * 129, "a", "device id"),
        (1, "d", "", "option"),
        (1, "d", "x" * 201, "option"),
        (1, "d", "\ud800", "option"),
        (1, "d", None, "option"),
    ],
)
def test_malformed_votes_are_refused(
    store_url: str, round_id: object, device: object, option: object, match: str
) -> None:
    async def body(store: Store) -> None:
        with pytest.raises(ValueError, match=match):
            await store.vote(round_id, device, option)  # type: ignore[arg-type]
        assert await store.tallies(1) == {}

    run_with(store_url, body)


def test_ping(store_url: str) -> None:
    assert run_with(store_url, lambda store: store.ping()) is True


# ----- suggestions -------------------------------------------------------------


def test_suggestion_dedupes_by_case_and_spacing(store_url: str) -> None:
    async def body(store: Store) -> None:
        first = await store.add_suggestion("  Dark   Techno ", "d1", 1000.25)
        assert first == Suggestion(first.id, "Dark Techno", 1, 1000.25)
        again = await store.add_suggestion("dark techno", "d2", 2000.0)
        assert again == Suggestion(first.id, "Dark Techno", 2, 1000.25)
        assert await store.add_suggestion("DARK\tTECHNO", "d2", 3000.0) == again  # d2 already upvoted
        wide = await store.add_suggestion("ＤＡＲＫ ＴＥＣＨＮＯ", "d3", 4000.0)  # fullwidth: NFKC-equal
        assert (wide.id, wide.upvotes) == (first.id, 3)
        other = await store.add_suggestion("dark techno 2", "d1", 5000.0)
        assert other.id != first.id
        assert [s.id for s in await store.top_suggestions(10)] == [first.id, other.id]

    run_with(store_url, body)


def test_upvote_is_once_per_device(store_url: str) -> None:
    async def body(store: Store) -> None:
        s = await store.add_suggestion("jazz", "author", 1.0)
        assert (await store.upvote(s.id, "d1")).upvotes == 2
        assert (await store.upvote(s.id, "d1")).upvotes == 2
        assert (await store.upvote(s.id, "author")).upvotes == 2
        assert await store.upvote(s.id, "d2") == Suggestion(s.id, "jazz", 3, 1.0)
        counts = await asyncio.gather(*(store.upvote(s.id, f"x{i % 50}") for i in range(200)))
        assert max(c.upvotes for c in counts) == 53
        assert (await store.top_suggestions(1))[0].upvotes == 53

    run_with(store_url, body)


@pytest.mark.parametrize("bad_id", ["999", "", "x", "1:up", "0", "-1", "1" * 40, "１"])
def test_upvote_unknown_suggestion(store_url: str, bad_id: str) -> None:
    async def body(store: Store) -> None:
        await store.add_suggestion("ambient", "d1", 1.0)
        with pytest.raises(UnknownSuggestionError, match="no open suggestion") as info:
            await store.upvote(bad_id, "d1")
        assert isinstance(info.value, KeyError)
        await store.remove_suggestion(bad_id)  # unknown ids are ignored
        assert len(await store.top_suggestions(5)) == 1

    run_with(store_url, body)


def test_top_suggestions_most_upvoted_first_then_oldest(store_url: str) -> None:
    async def body(store: Store) -> None:
        a = await store.add_suggestion("a", "d0", 10.0)
        c = await store.add_suggestion("c", "d0", 30.0)
        b = await store.add_suggestion("b", "d0", 20.0)  # created earlier than c, inserted later
        d = await store.add_suggestion("d", "d0", 40.0)
        e = await store.add_suggestion("e", "d0", 40.0)  # same instant as d: insertion order decides
        for device in ["d1", "d2"]:
            await store.upvote(c.id, device)
        await store.upvote(d.id, "d1")
        await store.upvote(b.id, "d1")
        ranked = await store.top_suggestions(10)
        assert [s.text for s in ranked] == ["c", "b", "d", "a", "e"]
        assert [s.upvotes for s in ranked] == [3, 2, 2, 1, 1]
        assert [s.id for s in await store.top_suggestions(2)] == [c.id, b.id]
        assert await store.top_suggestions(0) == []
        with pytest.raises(ValueError, match="non-negative"):
            await store.top_suggestions(-1)
        assert {a.id, e.id} <= {s.id for s in ranked}

    run_with(store_url, body)


def test_remove_suggestion(store_url: str) -> None:
    async def body(store: Store) -> None:
        s = await store.add_suggestion("Drum and Bass", "d1", 1.0)
        keep = await store.add_suggestion("garage", "d1", 2.0)
        await store.remove_suggestion(s.id)
        await store.remove_suggestion(s.id)  # idempotent
        assert await store.top_suggestions(10) == [keep]
        with pytest.raises(UnknownSuggestionError):
            await store.upvote(s.id, "d2")
        fresh = await store.add_suggestion("drum and bass", "d2", 3.0)  # no longer open: a new one
        assert fresh.id not in (s.id, keep.id)
        assert (fresh.text, fresh.upvotes) == ("drum and bass", 1)

    run_with(store_url, body)


@pytest.mark.parametrize(
    ("text", "now", "match"),
    [
        ("", 1.0, "suggestion text"),
        ("   \n\t ", 1.0, "suggestion text"),
        ("x" * 401, 1.0, "limit is 400"),
        (None, 1.0, "must be a string"),
        ("ok", float("nan"), "unix seconds"),
        ("ok", -1.0, "unix seconds"),
        ("ok", float("inf"), "unix seconds"),
    ],
)
def test_malformed_suggestions_are_refused(store_url: str, text: object, now: float, match: str) -> None:
    async def body(store: Store) -> None:
        with pytest.raises(ValueError, match=match):
            await store.add_suggestion(text, "d1", now)  # type: ignore[arg-type]
        assert await store.top_suggestions(5) == []

    run_with(store_url, body)


# ----- open_store ----------------------------------------------------------------


def test_open_store_picks_the_backend_by_url(redis_url: str) -> None:
    async def body() -> None:
        for url, kind in [
            ("memory://", MemoryStore),
            ("MEMORY://", MemoryStore),
            (redis_url, RedisStore),
            ("redis://localhost", RedisStore),
            ("rediss://user:pw@cache.example:6380/2", RedisStore),
        ]:
            store = open_store(url)
            assert isinstance(store, kind), url
            await store.aclose()

    asyncio.run(body())


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("postgres://db/1", "accepted schemes: memory://, redis://, rediss://"),
        ("", "unsupported store URL ''"),
        ("localhost:6379", "unsupported store URL"),
        ("memory://somewhere", "just 'memory://'"),
        ("memory:", "just 'memory://'"),
        ("redis://", "names no host"),
        ("redis://host:notaport/0", "invalid port"),
        ("redis://host:6379/zero", "database must be a number"),
        ("redis://:hunter2@host:6379/zero", "database must be a number"),
        ("http://u:hunter2@host/", "unsupported store URL 'http://u:\\*\\*\\*@host/'"),
    ],
)
def test_open_store_refuses_bad_urls(url: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        open_store(url)
    assert "hunter2" not in str(info.value)


# ----- Redis only ------------------------------------------------------------------


def test_two_redis_workers_stay_consistent(redis_url: str) -> None:
    """Two stores = two server processes' clients: votes race on the same round and the same devices."""
    devices = [f"dev{i}" for i in range(200)]

    async def body() -> None:
        one, two = RedisStore(redis_url), RedisStore(redis_url)
        try:
            await asyncio.gather(
                *(one.vote(11, d, "a") for d in devices),
                *(two.vote(11, d, "b") for d in devices[::2]),  # half the crowd also votes b, racing
                *(two.vote(11, f"solo{i}", "c") for i in range(50)),
            )
            tallies = await one.tallies(11)
            assert tallies == await two.tallies(11)
            assert sum(tallies.values()) == len(devices) + 50
            last = await asyncio.gather(*(two.device_vote(11, d) for d in devices))
            assert Counter(last) == Counter({k: v for k, v in tallies.items() if k != "c"})
            assert tallies["c"] == 50
            final, _ = await asyncio.gather(one.close_round(11), two.close_round(11))
            assert final == tallies
            with pytest.raises(RoundClosedError):
                await two.vote(11, "late", "a")
        finally:
            await one.aclose()
            await two.aclose()

    asyncio.run(body())


def test_redis_round_keys_expire(redis_url: str) -> None:
    async def body() -> None:
        config = StoreConfig(round_ttl_s=120, key_prefix="ttl:")
        store = RedisStore(redis_url, config)
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            await store.vote(1, "d1", "a")
            await store.close_round(1)
            keys = sorted(await client.keys("ttl:*"))
            assert keys == ["ttl:round:1:closed", "ttl:round:1:tally", "ttl:round:1:votes", "ttl:rounds:closed_max"]
            for key in keys:
                assert 0 < await client.ttl(key) <= 120, key
        finally:
            await client.aclose()
            await store.aclose()

    asyncio.run(body())


def test_redis_key_prefix_isolates_events(redis_url: str) -> None:
    async def body() -> None:
        club = RedisStore(redis_url, StoreConfig(key_prefix="club:"))
        park = RedisStore(redis_url, StoreConfig(key_prefix="park:"))
        try:
            await club.vote(1, "d1", "a")
            await club.close_round(1)
            await club.add_suggestion("jazz", "d1", 1.0)
            assert await park.tallies(1) == {}
            assert (await park.vote(1, "d1", "b")).previous is None
            assert await park.top_suggestions(5) == []
        finally:
            await club.aclose()
            await park.aclose()

    asyncio.run(body())


def test_unreachable_redis_is_a_clear_error(free_port: int) -> None:
    url = f"redis://admin:hunter2@127.0.0.1:{free_port}/0"

    async def body() -> None:
        store = open_store(url, StoreConfig(retries=1, socket_timeout_s=1.0))
        try:
            assert await store.ping() is False
            calls = [
                store.vote(1, "d1", "a"),
                store.tallies(1),
                store.close_round(1),
                store.add_suggestion("jazz", "d1", 1.0),
                store.top_suggestions(3),
            ]
            for call in calls:
                with pytest.raises(StoreUnavailableError) as info:
                    await call
                message = str(info.value)
                assert isinstance(info.value, ConnectionError)
                assert f"redis://admin:***@127.0.0.1:{free_port}/0" in message
                assert "hunter2" not in message and "hunter2" not in repr(info.value.__cause__)
        finally:
            await store.aclose()

    asyncio.run(body())


# ----- properties ----------------------------------------------------------------------

DEVICES = [f"d{i}" for i in range(5)]
Op = tuple[str, int, str, str]  # (kind, round or now, device, option or text or suggestion id)

vote_ops = st.tuples(st.just("vote"), st.integers(0, 2), st.sampled_from(DEVICES), st.sampled_from("abc"))
close_ops = st.tuples(st.just("close"), st.integers(0, 2), st.just(""), st.just(""))
suggestion_ops = st.tuples(
    st.sampled_from(["suggest", "upvote", "remove"]),
    st.integers(0, 3),
    st.sampled_from(DEVICES),
    st.sampled_from(["1", "2", "3", "jazz", "Jazz ", "techno", "lo fi", "LO  FI"]),
)


async def replay(store: Store, ops: list[Op]) -> tuple[list[object], list[dict[str, int]], list[Suggestion]]:
    """Apply ops in order; every outcome (or error type), then each round's tallies and the board."""
    outcomes: list[object] = []
    for kind, n, device, arg in ops:
        try:
            if kind == "vote":
                outcomes.append(await store.vote(n, device, arg))
            elif kind == "close":
                outcomes.append(await store.close_round(n))
            elif kind == "suggest":
                outcomes.append(await store.add_suggestion(arg, device, float(n)))
            elif kind == "upvote":
                outcomes.append(await store.upvote(arg, device))
            else:
                await store.remove_suggestion(arg)
                outcomes.append(None)
        except (RoundClosedError, UnknownSuggestionError) as e:
            outcomes.append(type(e).__name__)
    return outcomes, [await store.tallies(r) for r in range(3)], await store.top_suggestions(100)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(vote_ops, close_ops), max_size=60))
def test_memory_store_matches_a_model(ops: list[Op]) -> None:
    """Tallies are the counts of each device's last vote cast before its round closed."""
    last: dict[tuple[int, str], str] = {}
    closed: set[int] = set()
    expected: list[object] = []
    for kind, round_id, device, option in ops:
        if kind == "close":
            closed.add(round_id)
            expected.append(dict(Counter(o for (r, _), o in last.items() if r == round_id)))
        elif round_id in closed:
            expected.append("RoundClosedError")
        else:
            previous = last.get((round_id, device))
            last[round_id, device] = option
            expected.append(VoteResult(round_id, option, previous, previous != option))

    outcomes, tallies, _ = asyncio.run(replay(MemoryStore(), ops))
    assert outcomes == expected
    for round_id in range(3):
        assert tallies[round_id] == dict(Counter(o for (r, _), o in last.items() if r == round_id))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(vote_ops, close_ops, suggestion_ops), max_size=40))
def test_redis_replay_gives_the_same_answers_as_memory(redis_server: str, ops: list[Op]) -> None:
    async def on_redis() -> tuple[list[object], list[dict[str, int]], list[Suggestion]]:
        store = RedisStore(redis_server, StoreConfig(key_prefix=f"replay-{uuid.uuid4().hex}:"))
        try:
            return await replay(store, ops)
        finally:
            await store.aclose()

    assert asyncio.run(on_redis()) == asyncio.run(replay(MemoryStore(), ops))


def test_a_frozen_redis_gives_a_timely_error_not_a_hang(own_redis: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, proc = own_redis

    async def body() -> None:
        store = open_store(url, StoreConfig(call_deadline_s=1.0))
        try:
            assert (await store.vote(1, "d1", "a")).previous is None
            os.kill(proc.pid, signal.SIGSTOP)  # alive, connected, silent
            with pytest.raises(StoreUnavailableError, match="did not answer within 1.0 s"):
                await asyncio.wait_for(store.vote(1, "d2", "a"), 30)  # an error from the store, not a hang
            os.kill(proc.pid, signal.SIGCONT)
            assert await store.tallies(1) in ({"a": 1}, {"a": 2})  # the frozen call may have landed late
            assert (await store.vote(1, "d3", "a")).previous is None
        finally:
            os.kill(proc.pid, signal.SIGCONT)
            await store.aclose()

    asyncio.run(body())


def test_intact_reports_a_redis_that_lost_its_data_once(redis_url: str) -> None:
    async def body() -> None:
        one, two = open_store(redis_url), open_store(redis_url)  # two server processes on one Redis
        try:
            assert await one.intact() and await two.intact()  # the first look adopts the dataset
            assert await one.intact()
            client = aioredis.from_url(redis_url)
            await client.flushdb()  # what a restart without persistence leaves
            await client.aclose()
            assert await one.intact() is False  # told once ...
            assert await one.intact() is True  # ... then counting on the new dataset
            assert await two.intact() is False  # the other process notices too (the epoch changed)
            assert await two.intact() is True
        finally:
            await one.aclose()
            await two.aclose()

    asyncio.run(body())
    assert asyncio.run(MemoryStore().intact()) is True
