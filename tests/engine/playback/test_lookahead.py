from __future__ import annotations

import threading

import numpy as np
import pytest

from engine.music.prompt import Prompt
from engine.playback.lookahead import Lookahead, LookaheadConfig
from engine.source import Chunk, NowPlaying


class RampSource:
    """Chunks of varying length whose samples count up, so re-chunking errors show."""

    sample_rate = 1000

    def __init__(self, lengths: list[int], fail_after: int | None = None, gate: threading.Event | None = None) -> None:
        self.lengths = lengths
        self.next_bar = 0
        self.pos = 0
        self.fail_after = fail_after
        self.gate = gate

    def set_prompt(self, prompt: Prompt, at_bar: int | None = None) -> int:
        return self.next_bar

    def next_chunk(self) -> Chunk:
        if self.gate is not None:
            self.gate.wait()
        if self.fail_after is not None and self.next_bar >= self.fail_after:
            raise RuntimeError("model exploded")
        n = self.lengths[self.next_bar % len(self.lengths)]
        pcm = np.arange(self.pos, self.pos + n, dtype=np.float32)  # (n,)
        chunk = Chunk(pcm, self.sample_rate, self.pos, ((0, self.next_bar),), NowPlaying("house", 120, "drop", 0.5, ()))
        self.pos += n
        self.next_bar += 1
        return chunk


def test_blocks_are_contiguous_and_keep_bar_markers() -> None:
    src = RampSource([333, 120, 777])
    with Lookahead(src, LookaheadConfig(lookahead=0.5, block=0.1)) as la:
        assert la.wait_ready(10)
        blocks = []
        while len(blocks) < 40:
            b = la.read()
            if b is not None:
                blocks.append(b)
    pcm = np.concatenate([b.pcm for b in blocks])
    np.testing.assert_array_equal(pcm, np.arange(len(pcm), dtype=np.float32))
    assert all(len(b.pcm) == 100 for b in blocks)
    starts = [b.start_sample + off for b in blocks for off, _ in b.bar_starts]
    bars = [bar for b in blocks for _, bar in b.bar_starts]
    assert bars == list(range(len(bars)))
    expected = np.cumsum([0] + [[333, 120, 777][i % 3] for i in range(len(bars) - 1)])
    np.testing.assert_array_equal(starts, expected)


def test_underruns_are_counted_and_late_chunks_noticed() -> None:
    gate = threading.Event()
    src = RampSource([100], gate=gate)
    with Lookahead(src, LookaheadConfig(lookahead=0.2, block=0.1)) as la:
        assert la.read() is None
        assert la.read() is None
        assert la.stats.underruns == 2
        gate.set()
        assert la.wait_ready(10)
        assert la.read() is not None
        assert la.stats.late_chunks == 1


def test_source_failure_is_surfaced() -> None:
    src = RampSource([100], fail_after=1)
    la = Lookahead(src, LookaheadConfig(lookahead=0.5, block=0.1))
    la.start()
    with pytest.raises(RuntimeError, match="model exploded"):
        la.wait_ready(10)
    assert isinstance(la.error, RuntimeError)
    la.close()


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError, match="block"):
        LookaheadConfig(lookahead=0.1, block=0.5)
