"""Offline rendering of a set from a steering script (demos and evaluation).

The script is a JSON list of `{"at": seconds, "prompt": [{"style", "weight"}],
"bpm"?: n, "energy"?: x}`. The set is steered by the live set's own conductor (no crowd: every round closes
on "stay"), its bars stamped by the same bar clock: each event is a DJ override, landing on the next bar
after `at` and gliding in over `ramp_bars` bars, while the song arrangement (intro/build/drop/breakdown by
phrase) runs underneath exactly as it does live.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from concert.crowd.conductor import Conductor, ConductorConfig
from concert.crowd.moderation import ModerationConfig, Moderator, SuggestionRefused, load_wordlist
from concert.crowd.rounds import Schedule
from concert.store.memory import MemoryStore
from engine.backends import DEFAULT_BACKEND, DEFAULT_PRECISION, BackendConfig, build_source
from engine.music.interpret import resolve
from engine.music.prompt import Prompt, PromptError, prompt_from_json
from engine.music.styles import UnknownStyleError
from engine.playback.clock import BarClock
from engine.source import AudioSource

MAX_SECONDS = 24 * 3600.0  # longest render accepted, seconds
ROUND_CLOSE_TURNS = 8  # event-loop turns given to a round close between chunks (the memory store never waits)


class RenderError(ValueError):
    """Bad render arguments or script; the message names the offending value."""


@dataclass(frozen=True)
class ScriptEvent:
    at: float  # seconds into the set
    prompt: Prompt  # what to play from the next bar on


@dataclass(frozen=True)
class RenderInfo:
    out: Path
    seconds: float  # audio seconds written
    bars: int  # bars that started in the audio written
    events: list[dict[str, object]]  # applied events: at, bar, prompt
    x_realtime: float  # audio seconds per compute second

    def summary(self) -> str:
        return json.dumps(
            {
                "out": str(self.out),
                "seconds": round(self.seconds, 2),
                "bars": self.bars,
                "events": self.events,
                "x_realtime": round(self.x_realtime, 1),
            }
        )


def check_styles(prompt: Prompt, moderator: Moderator, where: str) -> None:
    """Refuse impersonation: no style may name an artist to imitate."""
    for sw in prompt.mix:
        try:
            moderator.moderate(sw.style)
        except SuggestionRefused as e:
            raise RenderError(f"{where}: style {sw.style!r} refused: {e}") from None


def load_script(path: Path, moderator: Moderator, ramp_bars: int = 4) -> list[ScriptEvent]:
    try:
        raw = json.loads(path.read_text())
    except OSError as e:
        raise RenderError(f"cannot read script {str(path)!r}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise RenderError(f"script {str(path)!r} is not valid JSON: {e}") from None
    if not isinstance(raw, list):
        raise RenderError(f"script must be a JSON list of events, got {type(raw).__name__}")
    events = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise RenderError(f"script event {i} must be an object, got {item!r}")
        at = item.get("at")
        if isinstance(at, bool) or not isinstance(at, (int, float)) or not np.isfinite(at) or at < 0:
            raise RenderError(f"script event {i}: 'at' must be seconds >= 0, got {at!r}")
        unknown = set(item) - {"at", "prompt", "bpm", "energy", "brightness", "mode", "section"}
        if unknown:
            raise RenderError(f"script event {i}: unknown fields {sorted(unknown)}")
        controls = {k: item[k] for k in ("bpm", "energy", "brightness", "mode", "section") if k in item}
        try:
            prompt = prompt_from_json(item.get("prompt"), ramp_bars=ramp_bars, **controls)
            check_styles(prompt, moderator, f"script event {i}")
            resolve(prompt)
        except (PromptError, UnknownStyleError) as e:
            raise RenderError(f"script event {i}: {e}") from None
        events.append(ScriptEvent(float(at), prompt))
    return sorted(events, key=lambda e: e.at)


def render_to_file(
    *,
    style: str,
    seconds: float,
    out: Path,
    script: Path | None = None,
    backend: str = DEFAULT_BACKEND,
    model_path: Path | None = None,
    precision: str = DEFAULT_PRECISION,
    seed: int = 0,
    round_bars: int = 8,
) -> RenderInfo:
    if not 0 < seconds <= MAX_SECONDS:
        raise RenderError(f"seconds must be within 0..{MAX_SECONDS:g}, got {seconds!r}")
    if out.suffix.lower() not in (".wav", ".flac", ".ogg", ".mp3"):
        raise RenderError(f"output {str(out)!r} must end in .wav, .flac, .ogg or .mp3")
    moderator = Moderator(ModerationConfig(), load_wordlist("artists"), load_wordlist("blocked_words"))
    events = load_script(script, moderator) if script is not None else []
    try:
        current = Prompt.of(style)
        check_styles(current, moderator, "--style")
        resolve(current)
    except (PromptError, UnknownStyleError) as e:
        raise RenderError(str(e)) from None
    schedule = Schedule(round_bars=round_bars, close_lead_bars=0 if round_bars == 1 else 1)
    errors: tuple[type[Exception], ...] = (ValueError, OSError)  # OSError: a missing checkpoint folder
    if backend != "synth":
        from engine.codec.model import CodecError
        from engine.embedded.weights import WeightsError

        errors += (CodecError, WeightsError)
    try:
        config = BackendConfig(name=backend, seed=seed, model_path=model_path, precision=precision)
        source = build_source(config, replace(current, section=schedule.section_for(0)))
    except errors as e:
        raise RenderError(str(e)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".mp3": "MP3", ".ogg": "OGG", ".flac": "FLAC", ".wav": "WAV"}[out.suffix.lower()]
    subtype = {"MP3": "MPEG_LAYER_III", "OGG": "VORBIS", "FLAC": "PCM_16", "WAV": "PCM_16"}[fmt]
    t0 = time.perf_counter()
    with sf.SoundFile(out, "w", samplerate=source.sample_rate, channels=1, format=fmt, subtype=subtype) as f:
        written, bars, applied = asyncio.run(_play(source, current, events, schedule, moderator, seconds, f))
    elapsed = time.perf_counter() - t0
    sr = source.sample_rate
    return RenderInfo(out, written / sr, bars, applied, (written / sr) / max(elapsed, 1e-9))


async def _play(
    source: AudioSource,
    opening: Prompt,
    events: list[ScriptEvent],
    schedule: Schedule,
    moderator: Moderator,
    seconds: float,
    f: sf.SoundFile,
) -> tuple[int, int, list[dict[str, object]]]:
    """Render `seconds` through the conductor; returns (samples written, bars started, applied events)."""
    sr = source.sample_rate
    total = int(seconds * sr)
    written = bars = 0
    applied: list[dict[str, object]] = []
    pending = list(events)
    clock = BarClock()
    config = ConductorConfig(schedule=schedule, start_style=resolve(opening).dominant())
    conductor = Conductor(config, MemoryStore(), source, moderator=moderator, clock=lambda: written / sr)
    conductor.override(replace(opening, ramp_bars=0))
    try:
        while written < total:
            while pending and pending[0].at <= written / sr:
                ev = pending.pop(0)
                landing = conductor.override(ev.prompt)
                applied.append({"at": ev.at, "bar": landing, "prompt": ev.prompt.as_json()})
            chunk = source.next_chunk()
            pcm = chunk.pcm[: total - written]  # (samples,)
            stamped = clock.stamp(
                replace(chunk, pcm=pcm, bar_starts=tuple(b for b in chunk.bar_starts if b[0] < len(pcm)))
            )
            f.write(pcm)
            written += len(pcm)
            bars += len(stamped.bar_starts)
            conductor.on_block(stamped)  # as if it were audible now: offline, rendering is playing
            for _ in range(ROUND_CLOSE_TURNS):  # let a round close (memory-store awaits) finish before rendering on
                await asyncio.sleep(0)
    finally:
        await conductor.aclose()
    return written, bars, applied
