"""The interface every audio output implements: the stream, the speakers, the recorder."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from engine.source import Chunk


@runtime_checkable
class Output(Protocol):
    """A sink for the paced audio.

    `write` is called at real-time pace, one chunk after another in stream order, on the player's thread
    (the speakers, the recorder) or, for outputs that talk to the event loop's clients (the MP3 stream), on
    the event loop; it must never block for long (no waiting on clients, devices or disks).
    `close` finalises the output; it is idempotent and may block briefly.
    """

    def write(self, chunk: Chunk) -> None: ...

    def close(self) -> None: ...
