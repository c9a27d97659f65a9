"""Ballots and the one rule that says whether a vote may be cast: shared by the conductor and every web worker.

The conductor owns the open ballots. A web worker in another process sees them only through the state frames
the conductor publishes (`OpenBallots.from_state`), and checks each vote against them with the same `check`
before writing it to the shared store; the store itself refuses votes for rounds the conductor has closed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from concert.crowd import aggregator as agg


class Refused(Exception):
    """A crowd request the set turns down; `code` names why (the socket layer sends it back as an error frame)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Ballot:
    kind: str  # "direction" or "moves"
    id: int  # round id, unique across both kinds
    options: agg.Ballot  # the options on offer
    close_bar: int  # playback bar at which the round closes
    lands_bar: int  # bar on which its result lands
    vetoed: set[str] = field(default_factory=set)

    def option(self, option_id: str) -> agg.Option | None:
        for o in self.options:
            if o.id == option_id and o.id not in self.vetoed:
                return o
        return None

    def live_options(self) -> agg.Ballot:
        return tuple(o for o in self.options if o.id not in self.vetoed)

    def as_json(self) -> dict[str, Any]:
        """Everything needed to rebuild the ballot (`from_json`)."""
        return {
            "kind": self.kind,
            "id": self.id,
            "options": [[o.id, o.label, o.style] for o in self.options],
            "close_bar": self.close_bar,
            "lands_bar": self.lands_bar,
            "vetoed": sorted(self.vetoed),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Ballot:
        options = tuple(agg.Option(str(i), str(lab), None if s is None else str(s)) for i, lab, s in data["options"])
        return cls(
            kind=str(data["kind"]),
            id=int(data["id"]),
            options=options,
            close_bar=int(data["close_bar"]),
            lands_bar=int(data["lands_bar"]),
            vetoed={str(v) for v in data.get("vetoed", ())},
        )


@dataclass(frozen=True)
class Cast:
    """What an accepted vote is for: the ballot's kind and the style its option steers toward."""

    kind: str  # "direction" or "moves"
    style: str | None  # None for "stay" and for moves


@dataclass(frozen=True)
class OpenBallots:
    """The ballots open right now, and whether the DJ lets the crowd vote."""

    voting: str  # "open" or "paused"
    rounds: dict[int, tuple[str, dict[str, str | None]]]  # round id -> (kind, live option id -> style)

    @classmethod
    def of(cls, voting: str, ballots: tuple[Ballot, ...]) -> OpenBallots:
        return cls(voting, {b.id: (b.kind, {o.id: o.style for o in b.live_options()}) for b in ballots})

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> OpenBallots:
        """The ballots as a published state frame shows them (options listed there are the live ones)."""
        direction = {str(o["id"]): o.get("style") for o in state["options"]}
        moves = {str(o["id"]): None for o in state["moves"]["options"]}
        rounds = {int(state["round"]): ("direction", direction), int(state["moves"]["round"]): ("moves", moves)}
        return cls(str(state["voting"]), rounds)

    def check(self, round_id: int, option_id: str) -> Cast:
        """The vote's `Cast`, or Refused saying why it cannot be cast."""
        if self.voting != "open":
            raise Refused("voting_paused", "voting is paused by the DJ; hold that thought")
        entry = self.rounds.get(round_id)
        if entry is None:
            current = ", ".join(f"{kind} round {rid}" for rid, (kind, _) in sorted(self.rounds.items()))
            raise Refused("wrong_round", f"round {round_id} is not open (open: {current})")
        kind, options = entry
        if option_id not in options:
            ids = ", ".join(options)
            raise Refused("unknown_option", f"option {option_id!r} is not on round {round_id} (options: {ids})")
        return Cast(kind, options[option_id])
