"""Audio helpers the stream tests share: chunks cut from a signal as the player hands them out, and decoding."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.source import Chunk, NowPlaying

RATE = 24000  # Hz, the source rate in the stream tests
NOW = NowPlaying(genre="house", bpm=120.0, section="intro", energy=0.5, mix=(("house", 1.0),))


def chunks(signal: np.ndarray, block: int = 2400, start: int = 0) -> Iterator[Chunk]:
    """`signal` (samples,) at RATE in blocks of `block` samples, numbered from sample `start`."""
    for i in range(0, len(signal), block):
        yield Chunk(signal[i : i + block], RATE, start + i, (), NOW)


def decode(data: bytes, tmp_path: Path, name: str) -> tuple[np.ndarray, int]:
    """Encoded bytes written to `tmp_path / name` and read back by libsndfile: (pcm (samples,), rate)."""
    path = tmp_path / name
    path.write_bytes(data)
    pcm, rate = sf.read(path, dtype="float32")
    return pcm, rate
