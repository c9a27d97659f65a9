"""A lookahead buffer kept full by a producer thread, read in fixed blocks.

The producer runs the source (model or synth) off the event loop and keeps
`lookahead` seconds of audio ahead of playback. The consumer (the real-time
player) reads fixed-size blocks without blocking; when the buffer cannot supply a
whole block it is an underrun, which is counted, never hidden.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from engine.music.prompt import Prompt
from engine.source import AudioSource, Chunk

RECENT_CHUNKS = 4  # per-chunk real-time factors kept in LookaheadStats.recent_rtf


class BlockReader(Protocol):
    """What the player reads: fixed-size blocks, never blocking (a Lookahead, or a Failover of two)."""

    sample_rate: int  # Hz
    block_samples: int  # samples per block

    def read(self) -> Chunk | None: ...  # the next block, or None on underrun


@dataclass(frozen=True)
class LookaheadConfig:
    lookahead: float = 0.6  # seconds of audio kept rendered ahead of playback
    block: float = 0.1  # seconds per block handed to the player

    def __post_init__(self) -> None:
        if not 0 < self.block <= self.lookahead:
            raise ValueError(f"need 0 < block <= lookahead, got block={self.block}, lookahead={self.lookahead}")


@dataclass
class LookaheadStats:
    underruns: int = 0  # reads that found less than one block buffered
    late_chunks: int = 0  # source chunks that arrived while the player was starved
    chunks: int = 0  # source chunks rendered
    compute_seconds: float = 0.0  # wall time spent in source.next_chunk
    audio_seconds: float = 0.0  # audio rendered
    rtf: float = 0.0  # recent compute seconds per audio second (exponential average)
    recent_rtf: tuple[float, ...] = ()  # compute seconds per audio second of the last few chunks, oldest first


class Lookahead:
    """Owns a producer thread that renders `source` ahead; `read()` returns blocks.

    Use as a context manager, or call start() and close().
    """

    def __init__(self, source: AudioSource, config: LookaheadConfig) -> None:
        self.source = source
        self.config = config
        self.sample_rate = source.sample_rate
        self.block_samples = max(1, round(config.block * self.sample_rate))
        self._target = max(self.block_samples, round(config.lookahead * self.sample_rate))
        self._chunks: deque[Chunk] = deque()
        self._offset = 0  # samples of _chunks[0] already handed out
        self._buffered = 0  # samples available to read
        self._starved = False
        self._cond = threading.Condition()
        self._closed = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="concert-producer", daemon=True)
        self.stats = LookaheadStats()

    def __enter__(self) -> Lookahead:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    # ----- Steerable: the source's render clock and prompts, so nobody reaches past the lookahead -----
    @property
    def next_bar(self) -> int:
        """The first bar the source has not rendered yet (its own count)."""
        return self.source.next_bar

    def set_prompt(self, prompt: Prompt, at_bar: int | None = None) -> int:
        """Schedule `prompt` on the source; see `engine.source.Steerable`."""
        return self.source.set_prompt(prompt, at_bar=at_bar)

    @property
    def buffered_seconds(self) -> float:
        return self._buffered / self.sample_rate

    @property
    def buffered_samples(self) -> int:
        """Samples rendered and not yet read."""
        return self._buffered

    @property
    def target_samples(self) -> int:
        """Samples the producer keeps rendered ahead; it waits when the buffer holds this many."""
        return self._target

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """Block (off the event loop) until the lookahead is full; True when ready."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._buffered < self._target and self._error is None and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        self._raise_if_failed()
        return True

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"audio source failed: {self._error!r}") from self._error

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while self._buffered >= self._target and not self._closed:
                        self._cond.wait()
                    if self._closed:
                        return
                t0 = time.perf_counter()
                chunk = self.source.next_chunk()
                dt = time.perf_counter() - t0
                with self._cond:
                    s = self.stats
                    s.chunks += 1
                    s.compute_seconds += dt
                    s.audio_seconds += chunk.seconds
                    inst = dt / max(chunk.seconds, 1e-9)
                    s.rtf = inst if s.chunks == 1 else 0.9 * s.rtf + 0.1 * inst
                    s.recent_rtf = (*s.recent_rtf[-(RECENT_CHUNKS - 1) :], inst)
                    if self._starved:
                        s.late_chunks += 1
                        self._starved = False
                    self._chunks.append(chunk)
                    self._buffered += len(chunk.pcm)
                    self._cond.notify_all()
        except BaseException as e:  # surfaced to the reader; the player falls back
            with self._cond:
                self._error = e
                self._cond.notify_all()

    def read(self) -> Chunk | None:
        """The next block, or None on underrun (counted). Never blocks on rendering."""
        with self._cond:
            if self._buffered < self.block_samples:
                self.stats.underruns += 1
                self._starved = True
                self._cond.notify_all()
                return None
            need = self.block_samples
            parts: list[np.ndarray] = []
            bars: list[tuple[int, int]] = []
            first = self._chunks[0]
            start_sample = first.start_sample + self._offset
            now_playing = first.now_playing
            got = 0
            while got < need:
                c = self._chunks[0]
                take = min(need - got, len(c.pcm) - self._offset)
                for off, bar in c.bar_starts:
                    if self._offset <= off < self._offset + take:
                        bars.append((got + off - self._offset, bar))
                parts.append(c.pcm[self._offset : self._offset + take])
                got += take
                self._offset += take
                if self._offset == len(c.pcm):
                    self._chunks.popleft()
                    self._offset = 0
            self._buffered -= need
            self._cond.notify_all()
        pcm = np.concatenate(parts) if len(parts) > 1 else parts[0]  # (block_samples,)
        return Chunk(pcm, self.sample_rate, start_sample, tuple(bars), now_playing)

    @property
    def error(self) -> BaseException | None:
        """The exception that stopped the producer, if any."""
        return self._error
