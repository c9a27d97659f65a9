"""The real-time player: pulls blocks from the lookahead at wall-clock pace.

It is the set's master clock. Each block goes to every output and to the
conductor; an underrun plays silence of the same length (counted by the
lookahead) so the clock never slips.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import numpy as np

from concert.outputs.base import Output
from engine.lookahead import BlockReader
from engine.source import Chunk, NowPlaying

log = logging.getLogger(__name__)


class Player:
    def __init__(self, lookahead: BlockReader, outputs: Sequence[Output], on_block: Callable[[Chunk], None]) -> None:
        self.lookahead = lookahead
        self.outputs = list(outputs)
        self.on_block = on_block
        self.samples_played = 0  # samples handed to outputs since start
        self.silent_blocks = 0  # blocks of silence played on underrun
        self._last_playing: NowPlaying | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        period = self.lookahead.block_samples / self.lookahead.sample_rate  # seconds per block
        next_t = loop.time()
        while True:
            block = self.lookahead.read()
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
            self.samples_played += len(block.pcm)
            self.on_block(block)
            next_t += period
            delay = next_t - loop.time()
            if delay < -1.0:  # the loop was stalled for over a second: resync, don't burst
                next_t = loop.time()
                delay = 0.0
            await asyncio.sleep(max(0.0, delay))

    def _silence(self) -> Chunk:
        self.silent_blocks += 1
        n = self.lookahead.block_samples
        playing = self._last_playing or NowPlaying("", 0.0, "", 0.0, ())
        return Chunk(np.zeros(n, np.float32), self.lookahead.sample_rate, -1, (), playing)
