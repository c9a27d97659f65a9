"""CUE sheets for a recorded set: one per hour file, a track wherever a change landed on the music.

Pure: the setlist's records (as `concert.outputs.recorder` writes them, `t` seconds into the set) in, the text
of `audio-NNNN.cue` out. A track starts at each `landed` event (a crowd's direction winner, a DJ override or
lock, as the conductor heard it land), and every file opens with the style playing at its start. CUE allows
99 tracks a file; a busier hour keeps its first 98 changes and says so in a REM line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

FRAMES_PER_S = 75  # CUE's "frames" (CD sectors) per second
MAX_TRACKS = 99  # CUE's limit per sheet


def timestamp(seconds: float) -> str:
    """mm:ss:ff, CUE's position (minutes may exceed 59 within a file)."""
    frames = max(0, int(seconds * FRAMES_PER_S + 0.5))  # half a frame rounds up (not to even)
    minutes, rest = divmod(frames, 60 * FRAMES_PER_S)
    secs, ff = divmod(rest, FRAMES_PER_S)
    return f"{minutes:02d}:{secs:02d}:{ff:02d}"


def _quote(text: object) -> str:
    return '"' + str(text).replace('"', "'").replace("\n", " ")[:80] + '"'


def cue_sheet(
    records: Iterable[Mapping[str, object]], file_name: str, index: int, file_seconds: float, opening: str
) -> str:
    """The CUE sheet of hour file `index` (`file_name`, `file_seconds` of audio per file): its tracks are the
    `landed` records inside it; `opening` names the music at the set's start (before any change)."""
    start, end = index * file_seconds, (index + 1) * file_seconds
    current = opening
    inside: list[tuple[float, str]] = []
    for r in records:
        if r.get("event") != "landed":
            continue
        t = float(r.get("t", 0.0))  # type: ignore[arg-type]
        title = _title(r)
        if t < start:
            current = title
        elif t < end:
            inside.append((t - start, title))
    tracks = [(0.0, current)] if not inside or inside[0][0] > 0 else []
    tracks += inside
    lines = [
        'REM GENERATOR "concert"',
        f"TITLE {_quote(f'concert set, hour {index + 1}')}",
        f"FILE {_quote(file_name)} WAVE",
    ]
    if len(tracks) > MAX_TRACKS:
        lines.insert(1, f"REM {len(tracks) - MAX_TRACKS} later changes of this hour are in setlist.jsonl only")
        tracks = tracks[:MAX_TRACKS]
    for n, (at, title) in enumerate(tracks, 1):
        lines += [f"  TRACK {n:02d} AUDIO", f"    TITLE {_quote(title)}", f"    INDEX 01 {timestamp(at)}"]
    return "\n".join(lines) + "\n"


def _title(record: Mapping[str, object]) -> str:
    label = str(record.get("label") or record.get("winner") or "?")
    by = record.get("by")
    votes = record.get("votes")
    if by == "crowd" and isinstance(votes, int):
        return f"{label} (the crowd, {votes} votes)"
    return f"{label} ({by})" if by else label
