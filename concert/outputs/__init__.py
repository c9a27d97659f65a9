"""Where the paced audio goes: the live streams (MP3, Ogg Opus), the venue speakers, the recorder."""

from concert.outputs.base import Output
from concert.outputs.mp3 import Mp3Config, Mp3Stream
from concert.outputs.opus import OpusConfig, OpusStream
from concert.outputs.recorder import RECORD_FORMATS, Recorder, RecorderConfig
from concert.outputs.speakers import PcmRing, Speakers, SpeakersConfig, SpeakersUnavailableError
from concert.outputs.stream import Listener, LiveStream, StreamClosedError, StreamConfig, TooManyListenersError

__all__ = [
    "Listener",
    "LiveStream",
    "Mp3Config",
    "Mp3Stream",
    "OpusConfig",
    "OpusStream",
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
