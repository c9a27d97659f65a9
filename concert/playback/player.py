"""The real-time player: pulls blocks from the audible deck at wall-clock pace.

It is the set's master clock. Each block goes to every output and to the
conductor; an underrun plays silence of the same length (counted by the
lookahead) so the wall clock never slips; the bar clock stands still meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import numpy as np

from concert.outputs.base import Output
from engine.playback.lookahead import BlockReader
from engine.source import Chunk, NowPlaying

log = logging.getLogger(__name__)


class Player:
    def __init__(self, reader: BlockReader, outputs: Sequence[Output], on_block: Callable[[Chunk], None]) -> None:
        self.reader = reader  # the audible deck (engine.playback.failover.Failover)
        self.outputs = list(outputs)
        self.on_block = on_block
        self._last_playing: NowPlaying | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        period = self.reader.block_samples / self.reader.sample_rate  # seconds per block
        next_t = loop.time()
        while True:
            block = self.reader.read()
            if block is None:
                block = self._silence()
            else:
                self._last_playing = block.now_playing
            for out in self.outputs:
                try:
                    out.write(block)
                except Exception:  # one broken output must not stop the set
                    log.exception("output %r failed; removing it", out)
                    self.outputs.remove(out)
            self.on_block(block)
            next_t += period
            delay = next_t - loop.time()
            if delay < -1.0:  # the loop was stalled for over a second: resync, don't burst
                next_t = loop.time()
                delay = 0.0
            await asyncio.sleep(max(0.0, delay))

    def _silence(self) -> Chunk:
        n = self.reader.block_samples
        playing = self._last_playing or NowPlaying("", 0.0, "", 0.0, ())
        return Chunk(np.zeros(n, np.float32), self.reader.sample_rate, -1, (), playing)
