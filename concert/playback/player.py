"""The real-time player: pulls blocks from the audible deck at wall-clock pace, on its own thread.

It is the set's master clock. A busy event loop (a flood of frames, a slow state build) cannot silence the
set: the player thread keeps the speakers and the recorder fed, and hands each block to the event loop for
the /stream listeners and the conductor (`loop_outputs`, `on_block`), which catch up when the loop does.

An underrun plays silence of the same length (counted by the lookahead) so the wall clock never slips; the
bar clock stands still meanwhile. Audio the listeners miss is counted in `dropped_seconds`: those silent
blocks, and any stretch the player thread itself was kept from running (it skips ahead rather than burst).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from concert.outputs.base import Output
from engine.playback.lookahead import BlockReader
from engine.source import Chunk, NowPlaying

log = logging.getLogger(__name__)

MAX_LATE_SECONDS = 1.0  # a player thread held up longer than this skips ahead (counted) instead of bursting


class Player:
    def __init__(
        self,
        reader: BlockReader,
        outputs: Sequence[Output],
        on_block: Callable[[Chunk], None],
        loop_outputs: Sequence[Output] = (),
    ) -> None:
        """`outputs` are written on the player thread (they must not block: the speakers, the recorder);
        `loop_outputs` and `on_block` run on the event loop (the MP3 stream, the conductor)."""
        self.reader = reader  # the audible deck (engine.playback.failover.Failover)
        self.outputs = list(outputs)
        self.loop_outputs = list(loop_outputs)
        self.on_block = on_block
        self.dropped_seconds = 0.0  # audio the listeners missed: silence on underrun, skips when held up
        self.late_seconds_max = 0.0  # the longest the thread was held up past a block's time, seconds
        self._last_playing: NowPlaying | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="concert-player", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        period = self.reader.block_samples / self.reader.sample_rate  # seconds per block
        next_t = time.monotonic()
        while not self._stop.is_set():
            block = self.reader.read()
            if block is None:
                block = self._silence()
                self.dropped_seconds += period
            else:
                self._last_playing = block.now_playing
            for out in list(self.outputs):
                self._write(out, block, self.outputs)
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._on_loop, block)
            next_t += period
            delay = next_t - time.monotonic()
            self.late_seconds_max = max(self.late_seconds_max, -delay)
            if delay < -MAX_LATE_SECONDS:  # held up for over a second: skip ahead, count what was missed
                self.dropped_seconds += -delay
                log.warning("the player was held up %.1f s; that audio is lost", -delay)
                next_t = time.monotonic()
                delay = 0.0
            self._stop.wait(max(0.0, delay))

    def _on_loop(self, block: Chunk) -> None:
        for out in list(self.loop_outputs):
            self._write(out, block, self.loop_outputs)
        try:
            self.on_block(block)
        except Exception:
            log.exception("the conductor failed on a block; the music goes on")

    @staticmethod
    def _write(out: Output, block: Chunk, owner: list[Output]) -> None:
        try:
            out.write(block)
        except Exception:  # one broken output must not stop the set
            log.exception("output %r failed; removing it", out)
            owner.remove(out)

    def _silence(self) -> Chunk:
        n = self.reader.block_samples
        playing = self._last_playing or NowPlaying("", 0.0, "", 0.0, ())
        return Chunk(np.zeros(n, np.float32), self.reader.sample_rate, -1, (), playing)
