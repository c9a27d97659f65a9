"""Where the paced audio goes: the live MP3 stream, the venue speakers, the recorder."""

from concert.outputs.base import Output
from concert.outputs.speakers import PcmRing, Speakers, SpeakersConfig, SpeakersUnavailableError
from concert.outputs.stream import Listener, Mp3Stream, StreamClosedError, StreamConfig, TooManyListenersError

__all__ = [
    "Listener",
    "Mp3Stream",
    "Output",
    "PcmRing",
    "Speakers",
    "SpeakersConfig",
    "SpeakersUnavailableError",
    "StreamClosedError",
    "StreamConfig",
    "TooManyListenersError",
]
