"""Speed benchmark of the style synth: a fixed program through all genres with prompt changes."""

from __future__ import annotations

import time

from engine.music.prompt import Prompt, StyleWeight
from engine.music.styles import GENRE_IDS
from engine.synth.source import StyleSynth, SynthConfig


def bench_synth(seconds: float = 60.0, seed: int = 0) -> dict[str, float | int]:
    """Render about `seconds` of audio through every genre (with blends, section and tempo changes).

    Returns {"x_realtime": audio seconds per compute second of next_chunk,
    "seconds_rendered": audio seconds, "genres": genres visited}. Construction is
    not timed (it happens once, before serving).
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= 3600:
        raise ValueError(f"seconds must be within (0, 3600], got {seconds!r}")
    synth = StyleSynth(SynthConfig(seed=seed), Prompt.of(GENRE_IDS[0]))
    per_genre = seconds / len(GENRE_IDS)
    rendered = compute = 0.0
    for i, g in enumerate(GENRE_IDS):
        other = GENRE_IDS[(i + 1) % len(GENRE_IDS)]
        program = {
            0: Prompt.of(g, ramp_bars=2),
            2: Prompt(mix=(StyleWeight(g, 0.6), StyleWeight(other, 0.4)), ramp_bars=2),
            4: Prompt.of(g, section="breakdown", energy=0.3, ramp_bars=1),
            5: Prompt.of(g, section="build", ramp_bars=1),
            7: Prompt.of(g, section="drop", energy=0.9, bpm=None, ramp_bars=0),
        }
        step = 0
        while rendered < per_genre * (i + 1):
            if step in program:
                synth.set_prompt(program[step])
            t0 = time.perf_counter()
            chunk = synth.next_chunk()
            compute += time.perf_counter() - t0
            rendered += chunk.seconds
            step += 1
    return {"x_realtime": rendered / compute, "seconds_rendered": rendered, "genres": len(GENRE_IDS)}
