from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from concert.outputs import PcmRing, Speakers, SpeakersConfig, SpeakersUnavailableError


def test_ring_wraps_around_and_never_overfills() -> None:
    ring = PcmRing(5)
    assert ring.push(np.arange(3, dtype=np.float32)) == 3
    out = np.full(2, -1, np.float32)
    assert ring.pull_into(out) == 2 and out.tolist() == [0, 1]
    assert ring.push(np.arange(10, 16, dtype=np.float32)) == 4  # only 4 free: the rest is the caller's to drop
    assert ring.buffered == 5
    out = np.full(7, -1, np.float32)
    assert ring.pull_into(out) == 5
    assert out.tolist() == [2, 10, 11, 12, 13, -1, -1]
    assert ring.pull_into(out) == 0 and ring.buffered == 0


def test_ring_fills_a_strided_device_buffer() -> None:
    ring = PcmRing(8)
    ring.push(np.arange(1, 5, dtype=np.float32))
    device = np.zeros((4, 2), np.float32)  # (frames, channels), as PortAudio hands it over
    assert ring.pull_into(device[:, 0]) == 4
    assert device[:, 0].tolist() == [1, 2, 3, 4]


def test_missing_portaudio_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # makes `import sounddevice` fail
    with pytest.raises(SpeakersUnavailableError, match="apt-get install libportaudio2"):
        Speakers()


def test_no_output_device_is_explained() -> None:
    sd = pytest.importorskip("sounddevice")
    if any(d["max_output_channels"] > 0 for d in sd.query_devices()):
        pytest.skip("this machine has an audio output device")
    with pytest.raises(SpeakersUnavailableError, match="no audio output device") as info:
        Speakers()
    assert "--output none" in str(info.value) and "/stream" in str(info.value)
    assert "(no audio devices at all)" in str(info.value)


def test_config_refuses_bad_values() -> None:
    with pytest.raises(ValueError, match="buffer_seconds"):
        SpeakersConfig(buffer_seconds=0)
    with pytest.raises(ValueError, match="sample_rate"):
        SpeakersConfig(sample_rate=-1)


_CHILD = r"""
import json, sys, time
import numpy as np
from concert.outputs import Output, Speakers, SpeakersConfig, SpeakersUnavailableError
from engine.source import Chunk, NowPlaying

def wait(what, condition):  # a guard against hanging, not a timing assertion
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"gave up waiting for {what}")
        time.sleep(0.001)

try:
    Speakers(SpeakersConfig(device="no such card"))
    bad_device = ""
except SpeakersUnavailableError as e:
    bad_device = str(e)

speakers = Speakers(SpeakersConfig(buffer_seconds=0.5))
assert isinstance(speakers, Output)
now = NowPlaying(genre="house", bpm=120.0, section="intro", energy=0.5, mix=(("house", 1.0),))
rate, block = 24000, 2400  # a 24 kHz source, 0.1 s chunks
signal = (0.3 * np.sin(2 * np.pi * 440 * np.arange(3 * rate) / rate)).astype(np.float32)
for start in range(0, len(signal), block):
    wait("room in the ring", lambda: speakers.buffered_seconds < 0.3)
    speakers.write(Chunk(signal[start : start + block], rate, start, (), now))
wait("the ring to drain", lambda: speakers.buffered_seconds == 0)
before_stall = speakers.underruns
wait("an underrun", lambda: speakers.underruns > before_stall)  # the writes have stalled
stats = {k: getattr(speakers, k) for k in
         ("frames_played", "underruns", "startup_silence", "overflows", "frames_dropped", "sample_rate", "channels")}
speakers.close()
speakers.close()
print(json.dumps({"stats": stats, "before_stall": before_stall, "bad_device": bad_device}))
"""


def test_plays_on_alsa_null_device_and_counts_underruns(tmp_path: Path) -> None:
    (tmp_path / ".asoundrc").write_text("pcm.!default { type null }\n")
    env = {**os.environ, "HOME": str(tmp_path)}  # PortAudio reads ~/.asoundrc once, at init
    done = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    stats = report["stats"]
    rate = stats["sample_rate"]
    assert rate == 44100  # the null device's default
    assert stats["overflows"] == 0 and stats["frames_dropped"] == 0
    # Everything written was played, less what soxr still holds back for its filter (a few ms).
    assert 3 * rate - 0.05 * rate <= stats["frames_played"] <= 3 * rate
    assert stats["underruns"] > report["before_stall"]
    assert "no such card" in report["bad_device"] and "[0] default" in report["bad_device"]
