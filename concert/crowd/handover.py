"""Hand-over: a conductor's snapshot, and another conductor carrying the set on from it (a mixin of `Conductor`).

A standby that takes the lease, or a restarted process, restores the last snapshot: the same rounds stay open
(their votes are in the shared store), timed on its own bar clock; the mix and all that steers it, the board,
the booth's lock and words, and what the text model read each suggestion as carry on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, cast

from concert.crowd import aggregator as agg
from concert.crowd.ballots import Ballot
from concert.crowd.desk import Desk, Pinned

if TYPE_CHECKING:
    from concert.crowd.words import Words

log = logging.getLogger(__name__)

SNAPSHOT_VERSION = 1  # of `snapshot()`; a conductor refuses snapshots of another version


class Handover(Desk):
    """`snapshot` and `restore`; the attributes they use beyond the desk's are declared here."""

    last_result: dict[str, object] | None
    notice: str | None
    words: Words
    _next_id: int
    _suggested: dict[str, int]

    def snapshot(self) -> dict[str, Any]:
        """What a conductor in another process needs to carry the set on: the mix and everything that steers
        it, the open rounds (their votes are in the shared store) and the board. JSON-serialisable."""
        return {
            "version": SNAPSHOT_VERSION,
            "mode": self.mode,
            "voting": self.voting,
            "mix": [list(sw) for sw in self.mix],
            "home": [list(sw) for sw in self.home],
            "live": asdict(self.live),
            "pinned": asdict(self.pinned),
            "last_result": self.last_result,
            "notice": self.notice,
            "next_id": self._next_id,
            "direction": self.direction.as_json(),
            "moves": self.moves.as_json(),
            "board": sorted(self._board),
            "suggested": dict(self._suggested),
            "booth": self.booth.snapshot(int(self.bar)),
            "words": self.words.snapshot(),
        }

    def restore(self, snap: Mapping[str, Any]) -> None:
        """Carry on from `snapshot()` of another conductor; the same rounds stay open (their votes count), timed
        on this conductor's bar clock. ValueError for a snapshot this version cannot read."""
        if not isinstance(snap, Mapping) or snap.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"not a conductor snapshot of version {SNAPSHOT_VERSION}")
        try:
            mode = str(snap["mode"])
            if mode not in agg.CROWD_MODES:
                raise ValueError(f"unknown mode {mode!r}")
            mix = agg.normalize({str(s): float(w) for s, w in snap["mix"]}, 0.0)
            home = agg.normalize({str(s): float(w) for s, w in snap["home"]}, 0.0)
            live = agg.Live(**snap["live"])
            pinned = Pinned(**snap["pinned"])
            direction = Ballot.from_json(snap["direction"])
            moves = Ballot.from_json(snap["moves"])
        except (KeyError, TypeError) as e:
            raise ValueError(f"conductor snapshot is malformed: {e!r}") from None
        sched = self.config.schedule
        bar = int(self.bar)
        direction.close_bar = sched.direction_close_bar(bar)
        direction.lands_bar = sched.landing_bar(direction.close_bar)
        moves.close_bar = sched.moves_close_bar(bar)
        moves.lands_bar = sched.landing_bar(moves.close_bar)
        self.mode, self.mix, self.home, self.live, self.pinned = cast(agg.CrowdMode, mode), mix, home, live, pinned
        self.voting = "paused" if snap.get("voting") == "paused" else "open"
        self.last_result = snap.get("last_result")
        self.notice = snap.get("notice")
        self._next_id = max(self._next_id, int(snap.get("next_id", 0)))
        self.direction, self.moves = direction, moves
        self._board = {str(b) for b in snap.get("board", ())}
        self._suggested = {str(d): int(n) for d, n in dict(snap.get("suggested", {})).items()}
        try:
            self.booth.restore(dict(snap.get("booth") or {}), bar)
        except (KeyError, TypeError, ValueError) as e:
            log.warning("the booth's lock and blocklist could not be carried on (%r)", e)
        self.words.restore(dict(snap.get("words") or {}))
        self._apply_blocked()
        self._schedule(self._build_prompt(sched.section_for(bar + 1), ramp_bars=0), at_bar=None)
        self._on_change()
