"""`concert soak`: the live set's audio path for many hours, faster than real time, under a simulated crowd.

The deck (`engine.playback.failover`, producer threads and all), the conductor, the store and the recorder
are the ones `concert serve` builds; only the wall clock is sped up: a block is read every
`block / speed` seconds (speed 0: as fast as the engine renders, reads still never wait for it). A seeded
crowd acts on every bar: votes (first ones, changes of mind), new phones joining, suggestions (fine,
refused, over-long), and bad input (closed rounds, unknown options). It reports, last line one JSON object:

    audio_hours      audio played
    rss_growth_pct   resident memory late in the run vs early after the warm-up (medians: `rss_growth_pct`)
    underruns        blocks the deck could not supply (the engine's underruns and audible gaps)
    dropped_audio_s  audio played as silence because no block was there
    silence_s        blocks that came out silent (peak below -80 dBFS) though the deck supplied them
    votes_lost       acknowledged votes missing from their round's final tally
    files, files_ok  recording files written, and how many of them open and read to the end
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from concert.bench.procfs import rss_mb
from concert.config import ServeConfig
from concert.crowd import aggregator as agg
from concert.crowd.ballots import Refused
from concert.crowd.conductor import Conductor, ConductorConfig
from concert.crowd.moderation import ModerationConfig, Moderator, load_wordlist
from concert.crowd.rounds import Schedule
from concert.outputs.recorder import Recorder, RecorderConfig
from concert.server.runtime import build_deck, build_source
from concert.store import open_store
from concert.store.base import Store

CURVE_POINTS = 100  # resident memory samples over the run (20 per fifth: medians that the arenas' swings do not move)
SILENT_PEAK = 1e-4  # a block whose peak is below this (-80 dBFS) counts as silence
SUGGESTIONS = ("deep techno", "chill lofi", "warehouse", "dreamy ambient", "x" * 500, "sound like a famous artist")


@dataclass(frozen=True)
class SoakConfig:
    hours: float = 24.0  # audio hours to play
    speed: float = 0.0  # times real time; 0 = as fast as the engine renders
    backend: str = "synth"  # synth | embedded
    store: str = "memory://"  # the vote store
    record: Path | None = None  # recording folder (rotating files); None = a temporary folder
    rotate_seconds: float = 3600.0  # audio per recording file, seconds
    devices: int = 300  # phones in the simulated crowd at any time
    actions_per_bar: int = 12  # crowd actions (votes, joins, suggestions, bad input) per bar
    seed: int = 0

    def __post_init__(self) -> None:
        if self.backend != "synth" and self.speed == 0:
            raise ValueError(
                "a token backend needs --speed (e.g. 2): read as fast as possible, its deck would hand over to the "
                "synth fallback (it cannot tell a fast reader from a slow engine) and the soak would measure the synth"
            )
        if not 0 < self.hours <= 24 * 7:
            raise ValueError(f"hours must be within 0..168, got {self.hours!r}")
        if not self.speed >= 0:
            raise ValueError(f"speed must be >= 0 (0 = as fast as possible), got {self.speed!r}")
        if self.devices < 1 or self.actions_per_bar < 0:
            raise ValueError("devices must be >= 1 and actions_per_bar >= 0")


@dataclass
class Ledger:
    """What the crowd was told, to check against what the store counted."""

    acked: dict[int, dict[str, str]] = field(default_factory=dict)  # open round id -> device -> its acked vote
    votes: int = 0  # votes acknowledged (changes included)
    refused: int = 0  # actions turned down (bad input, refused suggestions): expected, not lost
    rounds: int = 0  # rounds closed and checked
    lost: int = 0  # acknowledged votes missing from their round's final tally

    def closed(self, round_id: int, tally: Mapping[str, int]) -> None:
        """A round's final tally: check it against the acks, then forget the round (memory stays flat)."""
        want: dict[str, int] = {}
        for option in self.acked.pop(round_id, {}).values():
            want[option] = want.get(option, 0) + 1
        self.lost += sum(max(0, n - tally.get(o, 0)) for o, n in want.items())
        self.rounds += 1


class _Witness:
    """The store, with every round's final tally kept for the ledger (everything else passes through)."""

    def __init__(self, store: Store, ledger: Ledger) -> None:
        self._store = store
        self._ledger = ledger

    async def close_round(self, round_id: int) -> dict[str, int]:
        tally = await self._store.close_round(round_id)
        self._ledger.closed(round_id, tally)
        return tally

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class Crowd:
    def __init__(self, config: SoakConfig, conductor: Conductor, ledger: Ledger) -> None:
        self.rng = random.Random(config.seed)
        self.conductor = conductor
        self.ledger = ledger
        self.config = config
        self.devices = [f"dev{i}" for i in range(config.devices)]
        self.joined = config.devices

    async def act(self) -> None:
        c, rng = self.conductor, self.rng
        for _ in range(self.config.actions_per_bar):
            roll = rng.random()
            try:
                if roll < 0.70:  # a vote (a device's first, or a change of mind)
                    ballot = c.direction if rng.random() < 0.5 else c.moves
                    option = rng.choice(ballot.live_options()).id
                    device = rng.choice(self.devices)
                    await c.vote(device, ballot.id, option)
                    self.ledger.acked.setdefault(ballot.id, {})[device] = option
                    self.ledger.votes += 1
                elif roll < 0.80:  # a phone leaves and a new one joins
                    self.devices[rng.randrange(len(self.devices))] = f"dev{self.joined}"
                    self.joined += 1
                elif roll < 0.88:
                    await c.suggest(rng.choice(self.devices), rng.choice(SUGGESTIONS))
                elif roll < 0.94:  # a closed or made-up round
                    await c.vote(rng.choice(self.devices), rng.choice([1, c.direction.id - 7]), "stay")
                else:
                    await c.vote(rng.choice(self.devices), c.direction.id, "<script>")
            except Refused:
                self.ledger.refused += 1


def rss_growth_pct(curve: list[float]) -> float:
    """Growth of resident memory over the run, after the warm-up (the first tenth), in percent.

    The allocator's arenas make resident memory swing by a tenth from one sample to the next without any
    growth underneath, so single samples are not compared: the median of the last fifth of the samples is,
    against the median of the fifth after the warm-up. A leak moves both medians apart; a swing does not."""
    points = curve[max(1, len(curve) // 10) :]
    if len(points) < 2:
        return 0.0
    fifth = max(1, len(points) // 5)
    first, last = float(np.median(points[:fifth])), float(np.median(points[-fifth:]))
    return round(100.0 * (last - first) / first, 2)


def _files_ok(paths: list[Path]) -> int:
    ok = 0
    for p in paths:
        try:
            info = sf.info(str(p))
            with sf.SoundFile(str(p)) as f:
                f.seek(max(0, info.frames - 1000))
                f.read(1000)
            ok += info.frames > 0
        except Exception:
            pass
    return ok


async def soak(config: SoakConfig, record: Path) -> dict[str, object]:
    serve = ServeConfig(backend=config.backend, store=config.store, seed=config.seed, round_bars=8, song_phrases=4)
    ledger = Ledger()
    store = _Witness(open_store(config.store), ledger)
    recorder = Recorder(RecorderConfig(directory=record, rotate_seconds=config.rotate_seconds))
    deck = build_deck(serve, build_source(serve))
    schedule = Schedule(round_bars=serve.round_bars, song_phrases=serve.song_phrases, close_lead_bars=serve.lead_bars)
    played = 0.0  # audio seconds played: the conductor's clock runs on it

    def clock() -> float:
        return 1.7e9 + played

    moderator = Moderator(ModerationConfig(), load_wordlist("artists"), load_wordlist("blocked_words"))
    conductor = Conductor(
        ConductorConfig(schedule=schedule, aggregator=agg.AggregatorConfig(mode="democracy")),
        store,  # type: ignore[arg-type]  # _Witness passes every call through
        deck,
        moderator=moderator,
        setlist=recorder.log,
        clock=clock,
    )
    crowd = Crowd(config, conductor, ledger)
    deck.start()
    if not await asyncio.to_thread(deck.wait_ready, 120.0):
        raise RuntimeError("the deck did not fill its lookahead within 120 s")
    block_s = deck.block_samples / deck.sample_rate
    total = config.hours * 3600.0
    curve: list[float] = []  # resident MiB at every CURVE_POINTS-th of the run
    dropped = silence = 0.0
    t0 = next_t = time.perf_counter()
    try:
        for _ in range(round(total / block_s)):  # counted in blocks: float seconds would drift a block
            if config.speed == 0:  # as fast as it renders: wait for the block instead of pacing past it
                deadline = time.perf_counter() + 5.0
                while deck.primary.buffered_samples < 2 * deck.block_samples and time.perf_counter() < deadline:
                    await asyncio.sleep(0.001)
            chunk = deck.read()
            if chunk is None:
                dropped += block_s
                await asyncio.sleep(min(block_s / max(config.speed, 1.0), 0.01))  # let the producer catch up
            else:
                recorder.write(chunk)
                if float(np.max(np.abs(chunk.pcm))) < SILENT_PEAK:
                    silence += block_s
                conductor.on_block(chunk)
                if chunk.bar_starts:
                    await crowd.act()
            played += block_s
            for _ in range(8):  # round closes (store awaits) finish between blocks
                await asyncio.sleep(0)
            if played >= len(curve) * total / CURVE_POINTS:
                curve.append(round(rss_mb(), 1))
            if config.speed > 0:
                next_t += block_s / config.speed
                await asyncio.sleep(max(0.0, next_t - time.perf_counter()))
    finally:
        await conductor.aclose()
        deck.close()
        recorder.close()
        await store.aclose()
    rss_end = rss_mb()
    stats = deck.primary.stats
    return {
        "audio_hours": round(played / 3600.0, 3),
        "rss_growth_pct": rss_growth_pct(curve),
        "underruns": stats.underruns + deck.stats.gaps,
        "dropped_audio_s": round(dropped, 2),
        "silence_s": round(silence, 2),
        "votes_lost": ledger.lost,
        "votes": ledger.votes,
        "refused": ledger.refused,
        "rounds": ledger.rounds,
        "fallback_handovers": deck.stats.handovers,
        "files": len(recorder.audio_paths),
        "files_ok": _files_ok(recorder.audio_paths),
        "rss_mb": round(rss_end, 1),
        "rss_curve_mb": curve,
        "x_realtime": round(played / max(time.perf_counter() - t0, 1e-9), 1),
        "backend": config.backend,
        "speed": config.speed,
        "record": str(recorder.path),
    }


def run_soak(config: SoakConfig) -> dict[str, object]:
    if config.record is not None:
        return asyncio.run(soak(config, config.record))
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(soak(config, Path(tmp)))


def summary(result: Mapping[str, object]) -> str:
    return "\n".join(f"{k:>20}: {v}" for k, v in result.items())
