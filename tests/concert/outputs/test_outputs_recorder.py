from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from concert.outputs import Output, Recorder, RecorderConfig
from engine.source import Chunk, NowPlaying

RATE = 24000  # Hz
BLOCK = 2400  # samples per chunk: 0.1 s
NOW = NowPlaying(genre="house", bpm=120.0, section="intro", energy=0.5, mix=(("house", 1.0),))


def _expected(start: int, n: int) -> np.ndarray:
    """The test signal, a function of the absolute sample index."""
    t = np.arange(start, start + n) / RATE
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 660 * t)).astype(np.float32)


def _chunk(start: int, n: int = BLOCK) -> Chunk:
    return Chunk(_expected(start, n), RATE, start, (), NOW)


def _setlist(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_records_audio_and_setlist_and_finalises_on_close(tmp_path: Path) -> None:
    recorder = Recorder(RecorderConfig(directory=tmp_path / "sets"))
    assert isinstance(recorder, Output)
    assert recorder.path.parent == tmp_path / "sets" and recorder.path.name.endswith("Z")
    assert recorder.log({"event": "start"})["t"] == 0.0
    start = 1_000_000  # the set starts wherever the stream is: t counts from the first chunk
    for i in range(20):
        recorder.write(_chunk(start + i * BLOCK))
        if i % 5 == 4:
            recorder.log({"event": "bar", "i": i, "now_playing": NOW.as_json()})
    recorder.close()
    recorder.close()  # idempotent
    audio, rate = sf.read(recorder.audio_path, dtype="float32")
    assert rate == RATE and len(audio) == 20 * BLOCK
    np.testing.assert_allclose(audio, _expected(start, 20 * BLOCK), atol=1e-3)
    lines = _setlist(recorder.setlist_path)
    assert [line["event"] for line in lines] == ["start", "bar", "bar", "bar", "bar"]
    assert [line["t"] for line in lines] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert lines[1]["now_playing"] == NOW.as_json()
    assert str(lines[0]["wall"]).endswith("+00:00")
    with pytest.raises(RuntimeError, match="closed"):
        recorder.write(_chunk(start + 20 * BLOCK))
    with pytest.raises(RuntimeError, match="closed"):
        recorder.log({"event": "late"})


def test_two_sets_in_the_same_second_get_their_own_folders(tmp_path: Path) -> None:
    first, second = Recorder(RecorderConfig(directory=tmp_path)), Recorder(RecorderConfig(directory=tmp_path))
    first.close()
    second.close()
    assert first.path != second.path
    assert first.setlist_path.exists() and second.setlist_path.exists()


def test_a_jump_in_the_stream_is_recorded_as_silence(tmp_path: Path) -> None:
    recorder = Recorder(RecorderConfig(directory=tmp_path))
    recorder.write(_chunk(0))
    recorder.write(_chunk(3 * BLOCK))
    recorder.close()
    audio, _ = sf.read(recorder.audio_path, dtype="float32")
    assert len(audio) == 4 * BLOCK and recorder.dropped_chunks == 0
    assert not audio[BLOCK : 3 * BLOCK].any()
    np.testing.assert_allclose(audio[3 * BLOCK :], _expected(3 * BLOCK, BLOCK), atol=1e-3)


def test_chunks_dropped_for_a_slow_disk_become_silence_so_the_timeline_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer_busy, disk_free = threading.Event(), threading.Event()
    real_write = sf.SoundFile.write

    def slow_disk(self: sf.SoundFile, data: np.ndarray) -> None:
        writer_busy.set()
        disk_free.wait()
        real_write(self, data)

    monkeypatch.setattr(sf.SoundFile, "write", slow_disk)
    recorder = Recorder(RecorderConfig(directory=tmp_path, queue_chunks=2))
    recorder.write(_chunk(0))
    assert writer_busy.wait(timeout=60)  # the writer holds chunk 0 and is stuck on the disk
    for i in range(1, 8):  # 1 and 2 fit in the queue; 3..7 are dropped, never waited for
        recorder.write(_chunk(i * BLOCK))
    assert recorder.dropped_chunks == 5 and recorder.dropped_frames == 5 * BLOCK
    assert recorder.position_seconds == 8 * BLOCK / RATE
    disk_free.set()
    recorder.close()
    audio, _ = sf.read(recorder.audio_path, dtype="float32")
    assert len(audio) == 8 * BLOCK  # dropped audio is silence, so the setlist's t still lines up
    np.testing.assert_allclose(audio[: 3 * BLOCK], _expected(0, 3 * BLOCK), atol=1e-3)
    assert not audio[3 * BLOCK :].any()


def test_bad_input_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read a FLAC file that was not closed"):
        RecorderConfig(directory=tmp_path, format="flac")
    with pytest.raises(ValueError, match="record format"):
        RecorderConfig(directory=tmp_path, format="mp4")
    recorder = Recorder(RecorderConfig(directory=tmp_path))
    with pytest.raises(ValueError, match="must not set"):
        recorder.log({"t": 3})
    with pytest.raises(ValueError, match="plain JSON"):
        recorder.log({"event": object()})
    with pytest.raises(ValueError, match="plain JSON"):
        recorder.log({"energy": float("nan")})
    recorder.write(_chunk(0))
    with pytest.raises(ValueError, match="sample rate changed"):
        recorder.write(Chunk(np.zeros(10, np.float32), 48000, BLOCK, (), NOW))
    recorder.close()
    assert recorder.setlist_path.read_text() == ""


_CHILD = r"""
import json, sys, time
from pathlib import Path
from concert.outputs import Recorder, RecorderConfig
sys.path.insert(0, sys.argv[3])
from test_outputs_recorder import BLOCK, NOW, _chunk

recorder = Recorder(RecorderConfig(directory=Path(sys.argv[1]), format=sys.argv[2]))
print(json.dumps({"path": str(recorder.path)}), flush=True)
i = 0
while True:  # records until killed
    recorder.write(_chunk(i * BLOCK))
    i += 1
    if i % 5 == 0:
        recorder.log({"event": "bar", "n": i // 5 - 1, "now_playing": NOW.as_json()})
        print(json.dumps({"logged": i // 5 - 1, "frames_written": recorder.frames_written}), flush=True)
    time.sleep(0.01)
"""


def test_recording_survives_sigkill(tmp_path: Path) -> None:
    command = [sys.executable, "-c", _CHILD, str(tmp_path), "w64", str(Path(__file__).parent)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        path = Path(json.loads(child.stdout.readline())["path"])
        reports = []
        while len(reports) < 12:  # 6 s of audio, logged every 0.5 s
            line = child.stdout.readline()
            if not line:
                child.kill()
                pytest.fail("the recording child died")
            reports.append(json.loads(line))
        os.kill(child.pid, signal.SIGKILL)  # mid-write: it records until killed
    assert child.returncode == -signal.SIGKILL

    lines = _setlist(path / "setlist.jsonl")  # every line parses
    assert [line["n"] for line in lines][: len(reports)] == [r["logged"] for r in reports]
    assert [line["n"] for line in lines] == list(range(len(lines)))
    assert all(line["t"] == (line["n"] + 1) * 0.5 for line in lines)

    audio, rate = sf.read(path / "audio-0000.w64", dtype="float32")
    assert rate == RATE
    assert len(audio) >= reports[-1]["frames_written"]  # everything written before the last report is there
    np.testing.assert_allclose(audio, _expected(0, len(audio)), atol=1e-3)


def test_setlist_lines_are_fsynced_by_the_writer_thread_not_the_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    import time

    from concert.outputs import recorder as recorder_module

    synced_on: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced_on.append(threading.current_thread().name)
        real_fsync(fd)

    recorder = Recorder(RecorderConfig(directory=tmp_path))
    monkeypatch.setattr(recorder_module.os, "fsync", fsync)
    recorder.log({"event": "start"})
    assert recorder.setlist_path.read_text().count("\n") == 1  # written at once: a SIGKILL cannot lose it
    deadline = time.monotonic() + 5
    while not synced_on and time.monotonic() < deadline:
        time.sleep(0.01)
    assert synced_on and set(synced_on) == {"concert-recorder"}  # the caller (the event loop) never waits on disk
    monkeypatch.undo()
    recorder.close()


def test_a_long_set_rotates_into_files_that_each_play_and_join_seamlessly(tmp_path: Path) -> None:
    recorder = Recorder(RecorderConfig(directory=tmp_path, rotate_seconds=1.0))
    n = 35  # 3.5 s of 0.1 s chunks: files of 1 s, 1 s, 1 s and 0.5 s
    for i in range(n):
        recorder.write(_chunk(i * BLOCK))
    recorder.close()
    assert [p.name for p in recorder.audio_paths] == [f"audio-{i:04d}.flac" for i in range(4)]  # closed: archived
    assert not list(recorder.path.glob("*.w64")) and not list(recorder.path.glob("*.part"))
    assert all(sf.info(str(p)).subtype == "PCM_16" for p in recorder.audio_paths) and recorder.archive_errors == 0
    parts = [sf.read(p, dtype="float32")[0] for p in recorder.audio_paths]  # every file opens and plays
    assert [len(p) for p in parts] == [RATE, RATE, RATE, RATE // 2]
    np.testing.assert_allclose(np.concatenate(parts), _expected(0, n * BLOCK), atol=1e-3)  # no sample lost


def test_rotate_seconds_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rotate_seconds"):
        RecorderConfig(directory=tmp_path, rotate_seconds=0.0)


def test_each_closed_hour_gets_a_cue_sheet_of_what_landed_in_it(tmp_path: Path) -> None:
    recorder = Recorder(RecorderConfig(directory=tmp_path, rotate_seconds=1.0))
    recorder.log({"event": "landed", "label": "House", "winner": "house", "by": "opening"})
    for i in range(25):  # 2.5 s: files of 1 s, 1 s and 0.5 s
        recorder.write(_chunk(i * BLOCK))
        if i == 4:  # t = 0.5 s, in the first file
            recorder.log({"event": "landed", "label": "Techno", "winner": "techno", "by": "crowd", "votes": 12})
        if i == 14:  # t = 1.5 s, half way into the second
            recorder.log({"event": "landed", "label": "Ambient", "winner": "ambient", "by": "dj"})
    recorder.close()
    cues = [p.with_suffix(".cue") for p in recorder.audio_paths]
    assert all(c.is_file() for c in cues)
    first, second, third = (c.read_text() for c in cues)
    assert 'FILE "audio-0000.flac" WAVE' in first
    assert '"House (opening)"' in first and "INDEX 01 00:00:00" in first
    assert '"Techno (the crowd, 12 votes)"' in first and "INDEX 01 00:00:38" in first  # 0.5 s = 37.5 frames
    assert second.index('"Techno (the crowd, 12 votes)"') < second.index('"Ambient (dj)"')  # carried, then landed
    assert "INDEX 01 00:00:38" in second
    assert third.count("TRACK") == 1 and '"Ambient (dj)"' in third  # the hour opens on what plays
    doc = json.loads((recorder.path / "setlist.json").read_text())  # the whole set as one JSON document
    assert [(t["label"], t["by"]) for t in doc["tracks"]] == [
        ("House", "opening"),
        ("Techno", "crowd"),
        ("Ambient", "dj"),
    ]
    assert doc["set"] == recorder.path.name and doc["tracks"][1]["votes"] == 12 and 0.4 < doc["tracks"][1]["t"] < 0.6


def test_without_archiving_the_wave64_files_stay_bit_for_bit(tmp_path: Path) -> None:
    plain = Recorder(RecorderConfig(directory=tmp_path / "plain", rotate_seconds=1.0, archive_flac=False))
    packed = Recorder(RecorderConfig(directory=tmp_path / "packed", rotate_seconds=1.0))
    for i in range(15):
        plain.write(_chunk(i * BLOCK))
        packed.write(_chunk(i * BLOCK))
    plain.close()
    packed.close()
    assert [p.suffix for p in plain.audio_paths] == [".w64", ".w64"]
    assert 'FILE "audio-0000.w64" WAVE' in plain.audio_paths[0].with_suffix(".cue").read_text()
    for a, b in zip(plain.audio_paths, packed.audio_paths, strict=True):
        np.testing.assert_array_equal(sf.read(a, dtype="int16")[0], sf.read(b, dtype="int16")[0])  # lossless
        assert b.stat().st_size < a.stat().st_size
