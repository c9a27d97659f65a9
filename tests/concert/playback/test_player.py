"""The player keeps the set's clock on its own thread: a stalled event loop does not silence the outputs."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from concert.playback.player import Player
from engine.music.prompt import Prompt
from engine.playback.failover import Failover, FailoverConfig
from engine.playback.lookahead import Lookahead, LookaheadConfig
from engine.source import Chunk
from engine.synth.source import StyleSynth, SynthConfig

SR = 16000
BLOCK = 0.05  # seconds


class Tape:
    """An output that notes when each block reached it."""

    def __init__(self) -> None:
        self.blocks: list[tuple[float, Chunk]] = []

    def write(self, chunk: Chunk) -> None:
        self.blocks.append((time.monotonic(), chunk))

    def close(self) -> None:
        pass


def deck() -> Failover:
    synth = StyleSynth(SynthConfig(sample_rate=SR, seed=4), Prompt.of("techno"))
    return Failover(Lookahead(synth, LookaheadConfig(lookahead=1.0, block=BLOCK)), None, FailoverConfig())


def test_a_stalled_event_loop_does_not_silence_the_local_outputs() -> None:
    local, remote, heard = Tape(), Tape(), []
    d = deck()
    d.start()
    assert d.wait_ready(10)

    async def main() -> Player:
        player = Player(d, [local], heard.append, loop_outputs=[remote])
        player.start(asyncio.get_running_loop())
        await asyncio.sleep(0.5)
        time.sleep(1.5)  # a busy loop: nothing on it runs for 1.5 s
        await asyncio.sleep(0.5)
        player.stop()
        await asyncio.sleep(0.05)
        return player

    try:
        player = asyncio.run(main())
    finally:
        d.close()
    times = np.array([t for t, _ in local.blocks])  # (n,)
    assert len(local.blocks) >= round(2.4 / BLOCK)  # the whole 2.5 s, stall included
    assert np.diff(times).max() < 0.5  # no gap on the player's side while the loop was stuck
    assert all(c.start_sample >= 0 for _, c in local.blocks) and player.dropped_seconds == 0.0
    # the loop's side got every block too, late and in order, once the loop ran again
    assert [c.start_sample for _, c in remote.blocks] == [c.start_sample for _, c in local.blocks][: len(remote.blocks)]
    assert len(remote.blocks) >= len(local.blocks) - 2 and len(heard) == len(remote.blocks)
    remote_times = np.array([t for t, _ in remote.blocks])
    assert np.diff(remote_times).max() > 1.0  # (it was the loop that stalled, not the player)


def test_audio_the_listeners_miss_is_counted() -> None:
    class Starved:
        sample_rate, block_samples = SR, round(BLOCK * SR)

        def read(self) -> Chunk | None:
            return None  # a source that never delivers

    tape = Tape()

    async def main() -> Player:
        player = Player(Starved(), [tape], lambda c: None)
        player.start(asyncio.get_running_loop())
        await asyncio.sleep(1.0)
        player.stop()
        return player

    player = asyncio.run(main())
    assert len(tape.blocks) >= 15 and all(c.start_sample == -1 and not c.pcm.any() for _, c in tape.blocks)
    assert player.dropped_seconds == pytest.approx(len(tape.blocks) * BLOCK)
