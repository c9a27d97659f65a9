"""`--record DIR`: the set's audio and its setlist, both readable after a crash.

    DIR/<UTC start, e.g. 20250614T213005Z>/
        audio-0000.flac the first `rotate_seconds` (1 h), re-encoded losslessly once the next hour has begun
        audio-0001.w64  the hour being written: 16-bit PCM at the source rate, as it plays
        audio-0000.cue  each closed file's CUE sheet: a track wherever a change landed (`concert.outputs.cue`)
        setlist.jsonl   one JSON object per event: {"t": s into the set, "wall": ISO UTC, ...}

Why Wave64 (16-bit PCM): it must survive a SIGKILL or a power cut. libsndfile
writes a FLAC file's length into its header only at close and cannot read one
that was never closed; Ogg Vorbis survives but loses the last 1.5-3 s still in
the encoder. A Wave64 (or WAV) file whose header was never finalised is read to
the end of its data, which the tests check by SIGKILLing a recording, and unlike
WAV, Wave64 has no 4 GiB limit. Once an hour is closed, an archiver thread re-encodes it to FLAC (same samples,
about half the bytes), fsyncs it under a temporary name, renames it into place and only then removes the
Wave64: a crash at any moment leaves each hour in one playable file or the other (`archive_flac=False` keeps the
Wave64 files).

The event loop only queues chunks and appends setlist lines to the file (a write into the page cache, which
survives a SIGKILL); a writer thread does the disk work, fsyncs included (power-cut safety). A full
queue drops the chunk (counted) and the writer fills the gap with silence, so
the file keeps the stream's timeline and setlist times stay true.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import soundfile as sf

from concert.outputs.cue import cue_sheet
from concert.report.setlist import SetRecord, read_setlist, setlist_document
from engine.source import Chunk
from engine.train.files import atomic_path

RECORD_FORMATS: dict[str, tuple[str, str]] = {  # name: (libsndfile format, subtype); readable after a crash
    "w64": ("W64", "PCM_16"),
}
_REFUSED = {
    "flac": "libsndfile cannot read a FLAC file that was not closed, so a crash would lose the set",
    "ogg": "Ogg Vorbis loses the last seconds still in the encoder on a crash",
    "wav": "WAV stops at 4 GiB, about a day at 24 kHz; w64 is the same PCM without that limit",
}


@dataclass(frozen=True)
class RecorderConfig:
    directory: Path  # each set is recorded into a new DIR/<UTC timestamp>/
    format: str = "w64"  # file format, a RECORD_FORMATS key; see the module docstring for why w64
    queue_chunks: int = 256  # chunks waiting for the writer thread before writes are dropped
    sync_seconds: float = 10.0  # audio between fsyncs of the audio file (power-cut safety)
    rotate_seconds: float = 3600.0  # audio per file; a new file starts every this many seconds of the set
    archive_flac: bool = True  # re-encode each closed file to FLAC (lossless, about half the size)

    def __post_init__(self) -> None:
        if self.format not in RECORD_FORMATS:
            why = f" ({_REFUSED[self.format]})" if self.format in _REFUSED else ""
            raise ValueError(f"record format must be one of {sorted(RECORD_FORMATS)}, got {self.format!r}{why}")
        if self.queue_chunks < 1:
            raise ValueError(f"queue_chunks must be >= 1, got {self.queue_chunks!r}")
        if not (math.isfinite(self.rotate_seconds) and self.rotate_seconds >= 1):
            raise ValueError(f"rotate_seconds must be >= 1, got {self.rotate_seconds!r}")
        if not (math.isfinite(self.sync_seconds) and self.sync_seconds > 0):
            raise ValueError(f"sync_seconds must be a finite number > 0, got {self.sync_seconds!r}")


def _new_set_directory(parent: Path) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for n in range(1, 1000):
        path = parent / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"cannot create a new set directory under {parent} for {stamp}")


def _fsync_path(path: Path) -> None:
    """fsync a file, or a directory (so the names in it are durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


SETLIST_SYNC_SECONDS = 0.5  # longest wait before the writer thread fsyncs a new setlist line, seconds


class Recorder:
    """Records the set. `write` and `log` are called on the event loop; `write` never blocks."""

    def __init__(self, config: RecorderConfig) -> None:
        self.config = config
        self.path = _new_set_directory(config.directory)  # this set's folder
        self.audio_paths: list[Path] = []  # the set's audio files so far, in order
        self.setlist_path = self.path / "setlist.jsonl"
        self.dropped_chunks = 0  # chunks the writer thread had no room for (replaced by silence)
        self.dropped_frames = 0  # samples in those chunks
        self.frames_written = 0  # samples the writer thread has written to the audio file
        self._rate: int | None = None  # Hz, the first chunk's
        self._origin = 0  # start_sample of the first chunk: the set's t = 0
        self._position = 0  # samples into the set at the end of the latest chunk
        self._error: BaseException | None = None
        self._closed = False
        self._setlist = os.open(self.setlist_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._setlist_unsynced = threading.Event()  # set by `log`, cleared by the writer thread's fsync
        _fsync_path(self.path)
        self._queue: queue.Queue[tuple[int, int, np.ndarray] | tuple[()] | None] = queue.Queue(config.queue_chunks)
        self.archive_errors = 0  # closed files that could not be re-encoded (their Wave64 stays)
        self._archive: queue.Queue[int | None] = queue.Queue()
        self._archiver = threading.Thread(target=self._archive_run, name="concert-archiver", daemon=True)
        self._archiver.start()
        self._thread = threading.Thread(target=self._run, name="concert-recorder", daemon=True)
        self._thread.start()

    @property
    def audio_path(self) -> Path:
        """The audio file being written now (the first one before any audio)."""
        return self.audio_paths[-1] if self.audio_paths else self._part_path(0)

    def _part_path(self, index: int) -> Path:
        return self.path / f"audio-{index:04d}.{self.config.format}"

    @property
    def position_seconds(self) -> float:
        """Seconds into the set, by audio sample position (the end of the latest chunk)."""
        return self._position / self._rate if self._rate else 0.0

    @property
    def error(self) -> BaseException | None:
        """What stopped the writer thread, if anything (later chunks are discarded)."""
        return self._error

    def write(self, chunk: Chunk) -> None:
        """Queue the chunk for the writer thread; a full queue drops it (counted)."""
        if self._closed:
            raise RuntimeError("the recorder is closed")
        pcm = np.asarray(chunk.pcm, dtype=np.float32)
        if pcm.ndim != 1:
            raise ValueError(f"chunk.pcm must be mono (samples,), got shape {pcm.shape}")
        if self._rate is None:
            self._rate, self._origin = chunk.sample_rate, chunk.start_sample
        elif chunk.sample_rate != self._rate:
            raise ValueError(f"chunk sample rate changed from {self._rate} Hz to {chunk.sample_rate} Hz")
        offset = chunk.start_sample - self._origin
        self._position = max(self._position, offset + len(pcm))
        try:
            self._queue.put_nowait((chunk.sample_rate, offset, pcm))
        except queue.Full:
            self.dropped_chunks += 1
            self.dropped_frames += len(pcm)

    def log(self, event: Mapping[str, object]) -> dict[str, object]:
        """Append one setlist line (plus "t" and "wall"); the writer thread fsyncs it. Returns the record."""
        if self._closed:
            raise RuntimeError("the recorder is closed")
        reserved = {"t", "wall"} & set(event)
        if reserved:
            raise ValueError(f"setlist events must not set {sorted(reserved)}: the recorder adds them")
        record: dict[str, object] = {
            "t": round(self.position_seconds, 3),
            "wall": datetime.now(UTC).isoformat(timespec="milliseconds"),
            **event,
        }
        try:
            line = json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n"
        except (TypeError, ValueError) as e:
            raise ValueError(f"setlist event is not plain JSON ({e}): {event!r}") from e
        data = line.encode()
        while data:  # one write in practice, so a crash leaves whole lines only
            data = data[os.write(self._setlist, data) :]
        self._setlist_unsynced.set()
        return record

    def _sync_setlist(self) -> None:
        if self._setlist_unsynced.is_set():
            self._setlist_unsynced.clear()
            os.fsync(self._setlist)

    def _run(self) -> None:
        audio: sf.SoundFile | None = None
        synced = 0
        while True:
            try:
                item = self._queue.get(timeout=SETLIST_SYNC_SECONDS)
            except queue.Empty:
                item = ()
            try:
                self._sync_setlist()
            except OSError as e:
                self._error = self._error or e
            if item is None:
                break
            if self._error is not None or not item:
                continue  # keep draining so close() can always finish
            rate, offset, pcm = item
            try:
                while self.frames_written < offset:  # a dropped chunk or a jump in the stream: silence
                    gap = min(offset - self.frames_written, rate)
                    audio = self._write(audio, rate, np.zeros(gap, np.float32))
                pcm = pcm[self.frames_written - offset :]  # skip anything already written
                if len(pcm):
                    audio = self._write(audio, rate, pcm)
                if audio is not None and self.frames_written - synced >= self.config.sync_seconds * rate:
                    audio.flush()  # sf_write_sync: fsync
                    synced = self.frames_written
            except Exception as e:  # a full or failing disk must not take the show down
                self._error = e
        if audio is not None:
            try:
                audio.close()  # finalises the header
                self._closed_file(len(self.audio_paths) - 1)
            except Exception as e:
                self._error = self._error or e
        self._archive.put(None)

    def _closed_file(self, index: int) -> None:
        if self.config.archive_flac:
            self._archive.put(index)  # the archiver marks the hour once the FLAC is in place
        else:
            self._mark_hour(index)

    def _archive_run(self) -> None:
        while (index := self._archive.get()) is not None:
            source = self.audio_paths[index]
            target = source.with_suffix(".flac")
            part = source.with_suffix(".flac.part")
            try:
                with (
                    sf.SoundFile(source) as src,
                    sf.SoundFile(
                        part, "w", samplerate=src.samplerate, channels=1, format="FLAC", subtype="PCM_16"
                    ) as dst,
                ):
                    for block in src.blocks(blocksize=1 << 18, dtype="int16"):  # (frames,) 16-bit, bit exact
                        dst.write(block)
                _fsync_path(part)
                os.replace(part, target)
                _fsync_path(self.path)
                self.audio_paths[index] = target
                source.unlink()
            except Exception:
                self.archive_errors += 1  # the Wave64 stays: the hour is kept, only bigger
                part.unlink(missing_ok=True)
            self._mark_hour(index)

    def _mark_hour(self, index: int) -> None:
        """Closed file `index`'s CUE sheet and setlist.json, from one reading of the setlist so far (writer or
        archiver thread; each file renamed into place whole). A failure leaves the setlist with every change."""
        try:
            record = self._read_setlist()
            audio = self.audio_paths[index]
            with atomic_path(audio.with_suffix(".cue")) as tmp:
                tmp.write_text(cue_sheet(record.tracks, audio.name, index, self.config.rotate_seconds, "the set"))
            self._write_setlist_json(record)
        except OSError:
            pass

    def _read_setlist(self) -> SetRecord:
        """The setlist so far (a line cut by a crash is skipped: the rest still mark the hour)."""
        return read_setlist(self.setlist_path.read_text(errors="replace").splitlines())

    def _write_setlist_json(self, record: SetRecord) -> None:
        """setlist.json: the set so far as one JSON document (`concert.report.setlist`), rewritten whole at
        every hour's close and at the end."""
        with atomic_path(self.path / "setlist.json") as tmp:
            tmp.write_text(json.dumps(setlist_document(self.path.name, record), indent=1))

    def _write(self, audio: sf.SoundFile | None, rate: int, pcm: np.ndarray) -> sf.SoundFile | None:
        """Write `pcm` at the set's end, starting a new file at every `rotate_seconds` boundary; returns the
        file written last (the one to keep writing to)."""
        per_file = max(1, round(self.config.rotate_seconds * rate))
        while len(pcm):
            index, into = divmod(self.frames_written, per_file)
            if audio is None or (into == 0 and len(self.audio_paths) <= index):
                if audio is not None:
                    audio.close()  # finalised: this hour plays in any player now
                    self._closed_file(len(self.audio_paths) - 1)
                kind, subtype = RECORD_FORMATS[self.config.format]
                path = self._part_path(index)
                audio = sf.SoundFile(path, "w", samplerate=rate, channels=1, format=kind, subtype=subtype)
                self.audio_paths.append(path)
                _fsync_path(self.path)
            take = min(len(pcm), per_file - into)
            audio.write(pcm[:take])
            self.frames_written += take
            pcm = pcm[take:]
        return audio

    def close(self) -> None:
        """Finish writing the queued audio and finalise both files. Raises if recording failed."""
        if self._closed:
            return
        self._closed = True
        if self._rate is not None:  # pad with silence up to the set's end if its last chunks were dropped
            self._queue.put((self._rate, self._position, np.zeros(0, np.float32)))  # may wait: fine at shutdown
        self._queue.put(None)
        self._thread.join()
        self._archiver.join()
        os.fsync(self._setlist)
        os.close(self._setlist)
        with contextlib.suppress(OSError):
            self._write_setlist_json(self._read_setlist())
        if self._error is not None:
            raise RuntimeError(f"recording to {self.audio_path} failed: {self._error}") from self._error
