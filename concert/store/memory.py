"""`MemoryStore`: the `Store` interface in plain dicts, for one server process.

No method awaits, so each call runs to completion without interleaving on the event loop:
that is all the atomicity a single process needs. A vote costs O(1): tallies are counters
adjusted by the vote, never recounted.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from concert.store.base import (
    RoundClosedError,
    StoreConfig,
    Suggestion,
    UnknownSuggestionError,
    VoteResult,
    check_count,
    check_device,
    check_now,
    check_option,
    check_round_id,
    clean_suggestion,
    rank_key,
)


@dataclass
class _Round:
    votes: dict[str, str] = field(default_factory=dict)  # device -> option
    tally: dict[str, int] = field(default_factory=dict)  # option -> votes, never 0
    closed: bool = False


@dataclass
class _Suggestion:
    seq: int
    text: str
    key: str  # dedupe key
    created: float
    upvoters: set[str] = field(default_factory=set)

    def rank(self) -> tuple[int, int, int]:
        return rank_key(len(self.upvoters), self.created, self.seq)

    def public(self) -> Suggestion:
        return Suggestion(str(self.seq), self.text, len(self.upvoters), self.created)


class MemoryStore:
    def __init__(self, config: StoreConfig | None = None) -> None:
        self.config = config or StoreConfig()
        self._rounds: dict[int, _Round] = {}
        self._closed_max: int | None = None  # newest round closed so far
        self._suggestions: dict[str, _Suggestion] = {}  # id -> open suggestion
        self._by_key: dict[str, str] = {}  # dedupe key -> id
        self._seq = 0

    # ----- rounds ----------------------------------------------------------
    def _expired(self, round_id: int) -> bool:
        return self._closed_max is not None and round_id <= self._closed_max - self.config.keep_rounds

    async def vote(self, round_id: int, device: str, option: str) -> VoteResult:
        check_round_id(round_id)
        check_device(device)
        check_option(option)
        rnd = self._rounds.get(round_id)
        if rnd is None:
            if self._expired(round_id):
                raise RoundClosedError(round_id)
            rnd = self._rounds[round_id] = _Round()
        if rnd.closed:
            raise RoundClosedError(round_id)
        previous = rnd.votes.get(device)
        if previous == option:
            return VoteResult(round_id, option, previous, changed=False)
        if previous is not None:
            left = rnd.tally[previous] - 1
            if left:
                rnd.tally[previous] = left
            else:
                del rnd.tally[previous]
        rnd.tally[option] = rnd.tally.get(option, 0) + 1
        rnd.votes[device] = option
        return VoteResult(round_id, option, previous, changed=True)

    async def tallies(self, round_id: int) -> dict[str, int]:
        check_round_id(round_id)
        rnd = self._rounds.get(round_id)
        return dict(rnd.tally) if rnd is not None else {}

    async def close_round(self, round_id: int) -> dict[str, int]:
        check_round_id(round_id)
        if self._expired(round_id):
            return {}
        rnd = self._rounds.setdefault(round_id, _Round())
        rnd.closed = True
        if self._closed_max is None or round_id > self._closed_max:
            self._closed_max = round_id
            for old in [r for r in self._rounds if self._expired(r)]:
                del self._rounds[old]
        return dict(rnd.tally)

    async def device_vote(self, round_id: int, device: str) -> str | None:
        check_round_id(round_id)
        check_device(device)
        rnd = self._rounds.get(round_id)
        return rnd.votes.get(device) if rnd is not None else None

    # ----- suggestions -----------------------------------------------------
    async def add_suggestion(self, text: str, device: str, now: float) -> Suggestion:
        display, key = clean_suggestion(text)
        check_device(device)
        created = check_now(now)
        sid = self._by_key.get(key)
        if sid is None:
            self._seq += 1
            sid = str(self._seq)
            self._suggestions[sid] = _Suggestion(self._seq, display, key, created)
            self._by_key[key] = sid
        s = self._suggestions[sid]
        s.upvoters.add(device)
        return s.public()

    async def upvote(self, suggestion_id: str, device: str) -> Suggestion:
        check_device(device)
        s = self._suggestions.get(suggestion_id) if isinstance(suggestion_id, str) else None
        if s is None:
            raise UnknownSuggestionError(suggestion_id)
        s.upvoters.add(device)
        return s.public()

    async def top_suggestions(self, n: int) -> list[Suggestion]:
        check_count(n)
        return [s.public() for s in heapq.nsmallest(n, self._suggestions.values(), key=_Suggestion.rank)]

    async def remove_suggestion(self, suggestion_id: str) -> None:
        s = self._suggestions.pop(suggestion_id, None) if isinstance(suggestion_id, str) else None
        if s is not None:
            del self._by_key[s.key]

    # ----- lifecycle -------------------------------------------------------
    async def ping(self) -> bool:
        return True

    async def intact(self) -> bool:
        return True  # it lives and dies with the process

    async def aclose(self) -> None:
        return None
