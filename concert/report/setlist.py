"""Pure: a set's `setlist.jsonl` (as `concert.outputs.recorder` writes it) read into its timeline, its tracks,
the booth's actions and the crowd's figures; and the setlist as one JSON document (`setlist.json`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Point:
    t: float  # seconds into the set
    mix: dict[str, float]  # genre id -> weight of the prompt
    bpm: float
    energy: float
    votes: int  # first votes so far
    clients: int  # phones connected


@dataclass
class SetRecord:
    points: list[Point] = field(default_factory=list)  # the "sample" events, in order
    tracks: list[dict[str, Any]] = field(default_factory=list)  # the "landed" events: what was heard from when
    rounds: list[dict[str, Any]] = field(default_factory=list)
    booth: list[dict[str, Any]] = field(default_factory=list)  # what the booth did, who and when
    started: str | None = None  # wall time (ISO UTC) of the first record
    duration_s: float = 0.0  # seconds into the set of the last record
    bad_lines: int = 0  # lines that were not JSON objects (a crash mid-line leaves at most one)
    last: dict[str, Any] = field(default_factory=dict)  # the last "sample" event

    def stats(self) -> dict[str, Any]:
        votes = int(self.last.get("votes", sum(int(r.get("votes", 0)) for r in self.rounds)))
        return {
            "duration_s": round(self.duration_s, 1),
            "changes": len(self.tracks),
            "crowd_changes": sum(1 for t in self.tracks if t.get("by") == "crowd"),
            "dj_changes": sum(1 for t in self.tracks if t.get("by") == "dj"),
            "rounds": len(self.rounds),
            "votes": votes,
            "vote_changes": int(self.last.get("vote_changes", 0)),
            "peak_phones": max((p.clients for p in self.points), default=0),
            "suggestions_accepted": int(self.last.get("suggestions", 0)),
            "suggestions_refused": int(self.last.get("suggestions_refused", 0)),
            "booth_actions": len(self.booth),
            "bad_lines": self.bad_lines,
        }


def read_setlist(lines: Iterable[str]) -> SetRecord:
    rec = SetRecord()
    for line in lines:
        if not line.strip():
            continue
        try:
            e = json.loads(line)
        except ValueError:
            rec.bad_lines += 1
            continue
        if not isinstance(e, dict) or not isinstance(e.get("t"), int | float):
            rec.bad_lines += 1
            continue
        t = float(e["t"])
        rec.duration_s = max(rec.duration_s, t)
        if rec.started is None and isinstance(e.get("wall"), str):
            rec.started = e["wall"]
        kind = e.get("event")
        if kind == "sample":
            mix = e["mix"] if isinstance(e.get("mix"), dict) else {}
            rec.points.append(
                Point(
                    t,
                    {str(k): float(v) for k, v in mix.items()},
                    float(e.get("bpm", 0.0)),
                    float(e.get("energy", 0.0)),
                    int(e.get("votes", 0)),
                    int(e.get("clients", 0)),
                )
            )
            rec.last = e
        elif kind == "landed":
            rec.tracks.append(e)
        elif kind == "round":
            rec.rounds.append(e)
        elif kind == "booth":
            rec.booth.append(e)
    return rec


def setlist_document(name: str, rec: SetRecord) -> dict[str, Any]:
    """The set as one JSON document: its changes in order (seconds into the set, wall time, what, who chose it)."""
    keep = ("t", "wall", "bar", "label", "winner", "by", "votes")
    return {
        "set": name,
        "started": rec.started,
        "tracks": [{k: t[k] for k in keep if k in t} for t in rec.tracks],
        "booth": rec.booth,
        "stats": rec.stats(),
    }
