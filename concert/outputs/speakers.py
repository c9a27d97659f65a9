"""Venue speakers through PortAudio (sounddevice), fed from the event loop.

    write(chunk) ─ soxr.ResampleStream ─ PcmRing.push ──▶ PcmRing.pull_into ─ PortAudio callback
      (event loop; drops + counts `overflows`)             (audio thread; silence + counts `underruns`)

The callback never blocks: it takes what the ring holds and plays silence for
the rest. sounddevice is imported in the constructor, so a machine without
PortAudio can still run the stream and the recorder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import soxr

from engine.source import Chunk

_INSTALL_HINT = "install PortAudio (Debian/Ubuntu: `apt-get install libportaudio2`)"
_OTHER_OUTPUTS = "run with `--output none` (the HTTP /stream keeps playing)"


@dataclass(frozen=True)
class SpeakersConfig:
    device: str | int | None = None  # sounddevice device name (substring) or index; None = the default output
    sample_rate: int | None = None  # Hz, None = the device's default rate
    buffer_seconds: float = 0.5  # queued audio before writes are dropped
    blocksize: int = 0  # frames per callback, 0 = whatever PortAudio finds best

    def __post_init__(self) -> None:
        if self.sample_rate is not None and self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive number of Hz or None, got {self.sample_rate!r}")
        if not (math.isfinite(self.buffer_seconds) and self.buffer_seconds > 0):
            raise ValueError(f"buffer_seconds must be a finite number > 0, got {self.buffer_seconds!r}")
        if self.blocksize < 0:
            raise ValueError(f"blocksize must be >= 0, got {self.blocksize!r}")


class SpeakersUnavailableError(RuntimeError):
    """No way to play on the venue speakers here; the message says why and what to do."""


class PcmRing:
    """A single-producer, single-consumer ring of float32 mono samples that never blocks.

    One thread pushes, one other thread pulls; each side only moves its own
    counter, and publishes it after copying, so no lock is needed.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1 sample, got {capacity!r}")
        self._data = np.zeros(capacity, np.float32)
        self._written = 0  # samples pushed, ever (moved by the producer only)
        self._read = 0  # samples pulled, ever (moved by the consumer only)

    @property
    def capacity(self) -> int:
        return len(self._data)

    @property
    def buffered(self) -> int:
        return self._written - self._read

    def push(self, pcm: np.ndarray) -> int:
        """Copy in as much of `pcm` as fits; returns the samples taken (the rest is for the caller to drop)."""
        n = min(len(pcm), self.capacity - (self._written - self._read))
        self._copy(pcm[:n], self._written)
        self._written += n
        return n

    def pull_into(self, out: np.ndarray) -> int:
        """Fill `out` from the ring as far as it holds; returns the samples copied."""
        n = min(len(out), self._written - self._read)
        start = self._read % self.capacity
        first = min(n, self.capacity - start)
        out[:first] = self._data[start : start + first]
        out[first:n] = self._data[: n - first]
        self._read += n
        return n

    def _copy(self, pcm: np.ndarray, at: int) -> None:
        start = at % self.capacity
        first = min(len(pcm), self.capacity - start)
        self._data[start : start + first] = pcm[:first]
        self._data[: len(pcm) - first] = pcm[first:]


def _import_sounddevice() -> Any:
    try:
        import sounddevice
    except (ImportError, OSError) as e:  # OSError: the module is there but libportaudio is not
        raise SpeakersUnavailableError(f"cannot use the speakers: PortAudio is missing ({e}); {_INSTALL_HINT}") from e
    return sounddevice


def _describe(devices: Any) -> str:
    lines = [f"  [{d['index']}] {d['name']} ({d['max_output_channels']} out)" for d in devices]
    return "\n".join(lines) if lines else "  (no audio devices at all)"


class Speakers:
    """Plays chunks on a sound card. `write` runs on the event loop and never blocks."""

    def __init__(self, config: SpeakersConfig | None = None) -> None:
        self.config = config or SpeakersConfig()
        sd = _import_sounddevice()
        self.overflows = 0  # writes that found the ring full (the excess was dropped)
        self.frames_dropped = 0  # samples dropped by those writes
        self.underruns = 0  # callbacks that ran out of audio after playback began
        self.startup_silence = 0  # callbacks before any audio arrived
        self.frames_played = 0  # samples of real audio handed to the device
        self._resampler: soxr.ResampleStream | None = None
        self._in_rate: int | None = None
        self._started = False  # set by the callback once it has played audio
        self._closed = False
        try:
            devices = sd.query_devices()
        except sd.PortAudioError as e:
            raise SpeakersUnavailableError(f"cannot list audio devices: {e}; {_INSTALL_HINT}") from e
        outputs = [d for d in devices if d["max_output_channels"] > 0]
        if not outputs:
            raise SpeakersUnavailableError(
                "no audio output device found (is a sound card connected and visible to ALSA/PulseAudio?); "
                f"{_OTHER_OUTPUTS}. Devices present:\n{_describe(devices)}"
            )
        try:
            info = sd.query_devices(self.config.device, "output")
        except (ValueError, sd.PortAudioError) as e:
            raise SpeakersUnavailableError(
                f"audio output device {self.config.device!r} is not usable ({e}); check `--device`, "
                f"or {_OTHER_OUTPUTS}. Output devices:\n{_describe(outputs)}"
            ) from e
        self.device_name = str(info["name"])
        self.sample_rate = int(self.config.sample_rate or info["default_samplerate"])  # Hz, the device's rate
        self.channels = min(2, int(info["max_output_channels"]))  # mono is copied to every channel
        self._ring = PcmRing(max(1, round(self.config.buffer_seconds * self.sample_rate)))
        try:
            self._stream = sd.OutputStream(
                samplerate=self.sample_rate,
                device=info["index"],
                channels=self.channels,
                dtype="float32",
                blocksize=self.config.blocksize,
                callback=self._callback,
            )
            self._stream.start()
        except sd.PortAudioError as e:
            raise SpeakersUnavailableError(
                f"cannot open {self.device_name!r} at {self.sample_rate} Hz ({e}); try another `--device` or "
                f"sample rate, or {_OTHER_OUTPUTS}"
            ) from e

    @property
    def buffered_seconds(self) -> float:
        return self._ring.buffered / self.sample_rate

    def write(self, chunk: Chunk) -> None:
        """Resample to the device rate and queue for playback; a full queue drops the excess."""
        if self._closed:
            raise RuntimeError("the speakers are closed")
        pcm = np.asarray(chunk.pcm, dtype=np.float32)
        if pcm.ndim != 1:
            raise ValueError(f"chunk.pcm must be mono (samples,), got shape {pcm.shape}")
        if self._in_rate is None:
            self._in_rate = chunk.sample_rate
            if chunk.sample_rate != self.sample_rate:
                self._resampler = soxr.ResampleStream(chunk.sample_rate, self.sample_rate, 1, dtype="float32")
        elif chunk.sample_rate != self._in_rate:
            raise ValueError(f"chunk sample rate changed from {self._in_rate} Hz to {chunk.sample_rate} Hz")
        if self._resampler is not None:
            pcm = self._resampler.resample_chunk(pcm)
        taken = self._ring.push(pcm)
        if taken < len(pcm):
            self.overflows += 1
            self.frames_dropped += len(pcm) - taken

    def _callback(self, outdata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        """PortAudio's audio thread: never blocks, never allocates on the hot path."""
        mono = outdata[:, 0]
        got = self._ring.pull_into(mono)
        if got < frames:
            mono[got:] = 0.0
            if self._started:
                self.underruns += 1
            else:
                self.startup_silence += 1
        if got:
            self._started = True
            self.frames_played += got
        if self.channels > 1:
            outdata[:, 1:] = outdata[:, :1]

    def close(self) -> None:
        """Stop playback at once (queued audio is discarded)."""
        if self._closed:
            return
        self._closed = True
        self._stream.close(ignore_errors=True)
