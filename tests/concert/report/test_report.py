"""`concert report`: the setlist read back (pure), and a real recorded set (the soak's live path) made into a page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from concert.cli import main
from concert.playback.soak import SoakConfig, run_soak
from concert.report.page import ReportError, set_folder
from concert.report.setlist import read_setlist, setlist_document


def _line(**event: object) -> str:
    return json.dumps({"wall": "2026-12-02T20:00:00Z", **event})


def test_the_setlist_is_read_back_with_its_figures_and_bad_lines_counted() -> None:
    lines = [
        _line(t=0.0, event="landed", bar=0, label="House", winner="house", by="opening"),
        _line(
            t=30.0,
            event="sample",
            mix={"house": 1.0},
            bpm=124,
            energy=0.5,
            votes=10,
            clients=40,
            suggestions=2,
            suggestions_refused=1,
            vote_changes=3,
        ),
        '{"t": 31.0, "event": "land',  # a crash mid-line
        "[1, 2]",
        _line(t=40.0, event="round", kind="direction", winner="techno", votes=12),
        _line(t=48.0, event="landed", bar=24, label="Techno", winner="techno", by="crowd", votes=12),
        _line(t=50.0, event="booth", who="ana", action="panic"),
        _line(
            t=60.0,
            event="sample",
            mix={"techno": 0.8, "house": 0.2},
            bpm=130,
            energy=0.6,
            votes=25,
            clients=55,
            suggestions=4,
            suggestions_refused=2,
            vote_changes=5,
        ),
        _line(t=70.0, event="landed", bar=40, label="Ambient", winner="ambient", by="dj"),
    ]
    rec = read_setlist(lines)
    assert rec.bad_lines == 2 and rec.started == "2026-12-02T20:00:00Z"
    assert [p.bpm for p in rec.points] == [124, 130] and rec.points[1].mix == {"techno": 0.8, "house": 0.2}
    stats = rec.stats()
    assert stats == {
        "duration_s": 70.0,
        "changes": 3,
        "crowd_changes": 1,
        "dj_changes": 1,
        "rounds": 1,
        "votes": 25,
        "vote_changes": 5,
        "peak_phones": 55,
        "suggestions_accepted": 4,
        "suggestions_refused": 2,
        "booth_actions": 1,
        "bad_lines": 2,
    }
    doc = setlist_document("set-1", rec)
    assert [(t["t"], t["label"], t["by"]) for t in doc["tracks"]] == [
        (0.0, "House", "opening"),
        (48.0, "Techno", "crowd"),
        (70.0, "Ambient", "dj"),
    ]
    assert doc["tracks"][1]["votes"] == 12 and "event" not in doc["tracks"][0]


def test_a_folder_without_a_set_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="setlist.jsonl"):
        set_folder(tmp_path)
    assert main(["report", str(tmp_path)]) == 2


def test_a_recorded_set_becomes_one_self_contained_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_soak(SoakConfig(hours=0.08, record=tmp_path, rotate_seconds=150.0))  # ~5 min of set, 2 files
    assert result["files"] == 2
    assert main(["report", str(tmp_path)]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    folder = set_folder(tmp_path)
    page = (folder / "report.html").read_text()
    assert figures["page"] == str(folder / "report.html")
    assert not re.search(r"""(src|href)=['"]?(https?:|//)""", page)  # nothing fetched from elsewhere
    images = re.findall(r"<img alt='([^']+)' src='data:image/png;base64,", page)
    assert len(images) == 1 + 2  # the timeline, one strip per recorded file
    assert "Genre weights, tempo and votes" in images[0] and "Spectrogram of audio-0000" in images[1]
    landed = [json.loads(x) for x in (folder / "setlist.jsonl").read_text().splitlines() if '"landed"' in x]
    doc = json.loads((folder / "setlist.json").read_text())
    assert [t["label"] for t in doc["tracks"]] == [e["label"] for e in landed] and len(landed) >= 3
    assert page.count("<tr><td>") == len(landed)  # a row per change (no booth in a soak)
    assert figures["votes"] > 0 and figures["suggestions_accepted"] > 0 and figures["suggestions_refused"] > 0
    assert figures["rounds"] == result["rounds"]
