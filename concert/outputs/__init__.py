"""Where the paced audio goes: the live MP3 stream, the venue speakers, the recorder."""

from concert.outputs.base import Output
from concert.outputs.recorder import RECORD_FORMATS, Recorder, RecorderConfig
from concert.outputs.speakers import PcmRing, Speakers, SpeakersConfig, SpeakersUnavailableError
from concert.outputs.stream import Listener, Mp3Stream, StreamClosedError, StreamConfig, TooManyListenersError

__all__ = [
    "Listener",
    "Mp3Stream",
    "Output",
    "PcmRing",
    "RECORD_FORMATS",
    "Recorder",
    "RecorderConfig",
    "Speakers",
    "SpeakersConfig",
    "SpeakersUnavailableError",
    "StreamClosedError",
    "StreamConfig",
    "TooManyListenersError",
]
