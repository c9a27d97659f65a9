"""The booth's side of the set, beside the conductor: a style the DJ locked for some bars, the words blocked live,
what the booth did (who, when), and the last hour of the set sampled once a bar for the console's plot.

Pure state with no I/O; the conductor consults it (a lock holds the crowd's results off the mix) and carries
the lasting parts (lock, blocked words) in its snapshot, so a conductor that takes the set over keeps them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

HISTORY_S = 3600.0  # seconds of the set the console's plot can show
MAX_SAMPLES = 4096  # samples kept at most: an hour of bars at 240 bpm and more
ACTIONS_KEPT = 200  # booth actions the console can list (all of them go to the setlist)
MAX_LOCK_BARS = 1024  # the longest lock, bars (about half an hour at 140 bpm)
MAX_WORD_CHARS = 40  # the longest word or phrase the booth may block, characters
MAX_BLOCKED = 500  # words and phrases the booth may add during a set
PLAYED_KEPT = 50  # changes of the set the listener page can list (all of them go to the setlist)


@dataclass(frozen=True)
class Lock:
    style: str  # genre id held
    until_bar: int  # the crowd steers again from this bar

    def as_json(self) -> dict[str, object]:
        return {"style": self.style, "until_bar": self.until_bar}


@dataclass(frozen=True)
class Sample:
    at: float  # wall time, seconds since the epoch
    bar: int  # the set's bar
    mix: tuple[tuple[str, float], ...]  # (genre id, weight) of the prompt
    bpm: float  # tempo heard, beats per minute
    energy: float  # 0..1 of the prompt
    votes: int  # first votes acknowledged since the set started (the plot shows its rate)
    clients: int  # phones connected

    def as_json(self) -> dict[str, object]:
        return {
            "at": round(self.at, 3),
            "bar": self.bar,
            "mix": {s: round(w, 4) for s, w in self.mix},
            "bpm": round(self.bpm, 2),
            "energy": round(self.energy, 3),
            "votes": self.votes,
            "clients": self.clients,
        }


class History:
    """Samples of the last `seconds` of the set, oldest first."""

    def __init__(self, seconds: float = HISTORY_S) -> None:
        if not seconds > 0:
            raise ValueError(f"history seconds must be > 0, got {seconds!r}")
        self.seconds = seconds
        self._samples: deque[Sample] = deque(maxlen=MAX_SAMPLES)  # bounded when the clock runs fast too (a soak)

    def add(self, sample: Sample) -> None:
        self._samples.append(sample)
        while self._samples and self._samples[0].at < sample.at - self.seconds:
            self._samples.popleft()

    def since(self, at: float) -> list[dict[str, object]]:
        return [s.as_json() for s in self._samples if s.at >= at]

    def __len__(self) -> int:
        return len(self._samples)


def check_words(words: object) -> list[str]:
    """The booth's blocklist edit: a list of 1..50 words or phrases, each 1..MAX_WORD_CHARS printable characters
    ("word*" also blocks its endings). ValueError naming what is wrong."""
    if not isinstance(words, list) or not 0 < len(words) <= 50:
        raise ValueError("'words' must be a list of 1 to 50 words or phrases")
    out = []
    for w in words:
        if not isinstance(w, str) or not w.strip() or len(w.strip()) > MAX_WORD_CHARS or not w.isprintable():
            raise ValueError(f"each word must be 1 to {MAX_WORD_CHARS} printable characters, got {w!r}")
        out.append(" ".join(w.strip().lower().split()))
    return out


@dataclass
class Booth:
    lock: Lock | None = None
    blocked: frozenset[str] = frozenset()  # words and phrases the booth added to the blocklist during the set
    drop_pending: bool = False  # the booth asked for a drop: it lands when the phrase's moves round closes
    actions: deque[dict[str, object]] = field(default_factory=lambda: deque(maxlen=ACTIONS_KEPT))
    history: History = field(default_factory=History)
    played: deque[dict[str, object]] = field(default_factory=lambda: deque(maxlen=PLAYED_KEPT))  # newest last
    landed: int = 0  # changes heard since the set began (the state carries it: pages refetch when it moves)

    def land(self, at: float, bar: int, note: Mapping[str, object]) -> dict[str, object]:
        """A change became audible at wall time `at`, on `bar`: what the setlist and the listener page show."""
        entry: dict[str, object] = {"at": round(at, 3), "bar": bar, **note}
        self.played.append(entry)
        self.landed += 1
        return entry

    def locked(self, bar: int) -> Lock | None:
        """The lock holding at `bar`; a lock that has run out is dropped."""
        if self.lock is not None and bar >= self.lock.until_bar:
            self.lock = None
        return self.lock

    def record(self, at: float, who: str, action: str, detail: Mapping[str, Any]) -> dict[str, object]:
        entry: dict[str, object] = {"event": "booth", "at": round(at, 3), "who": who, "action": action, **detail}
        self.actions.append(entry)
        return entry

    def snapshot(self, bar: int) -> dict[str, object]:
        """The lasting parts; the lock as bars left, since another conductor counts bars on its own clock."""
        lock = self.locked(bar)
        left = None if lock is None else {"style": lock.style, "bars_left": lock.until_bar - bar}
        return {"lock": left, "blocked": sorted(self.blocked), "played": list(self.played), "landed": self.landed}

    def restore(self, snap: Mapping[str, Any], bar: int) -> None:
        lock = snap.get("lock")
        self.lock = None if not lock else Lock(str(lock["style"]), bar + int(lock["bars_left"]))
        self.blocked = frozenset(str(w) for w in snap.get("blocked", ()))
        played = [dict(p) for p in snap.get("played", ()) if isinstance(p, Mapping)]
        self.played = deque(played, maxlen=PLAYED_KEPT)
        self.landed = max(int(snap.get("landed", 0)), len(played))
