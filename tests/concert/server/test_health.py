"""/healthz tells the truth: a dead token engine covered by the synth is "degraded", and says what died."""

from __future__ import annotations

import functools
import time
from types import SimpleNamespace

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from concert.outputs import Mp3Stream, OpusStream
from concert.server.app import healthz
from concert.server.runtime import Runtime
from concert.store.memory import MemoryStore
from engine.music.prompt import Prompt
from engine.playback.failover import Failover, FailoverConfig
from engine.playback.lookahead import Lookahead, LookaheadConfig
from engine.synth.source import StyleSynth, SynthConfig
from tests.engine.playback.test_failover import BLOCK, SCALE, SR, Throttled, play


def client(deck: Failover, backend: str) -> TestClient:
    app = Starlette(routes=[Route("/healthz", healthz)])
    rt = SimpleNamespace(
        deck=deck,
        store=MemoryStore(),
        config=SimpleNamespace(backend=backend),
        clients=0,
        player=SimpleNamespace(dropped_seconds=0.0),
        stream=Mp3Stream(),
        opus=OpusStream(),
        icecast=[],
    )
    rt.health = functools.partial(Runtime.health, rt)  # the real Runtime.health on just what it reads
    app.state.runtime = rt
    return TestClient(app)


def test_a_dead_engine_is_reported_while_the_synth_plays_on() -> None:
    engine = Throttled(seed=1, prompt=Prompt.of("house"))
    primary = Lookahead(engine, LookaheadConfig(lookahead=1.5, block=BLOCK))
    synth = Lookahead(StyleSynth(SynthConfig(sample_rate=SR, seed=2), Prompt.of("house")), LookaheadConfig(0.6, BLOCK))
    deck = Failover(primary, synth, FailoverConfig(crossfade=0.4, resume_rtf=0.85 * SCALE))
    deck.start()
    try:
        assert deck.wait_ready(10)
        play(deck, 1.0)
        before = client(deck, "embedded").get("/healthz")
        engine.fail.set()
        deadline = time.monotonic() + 10
        while deck.primary_error is None and time.monotonic() < deadline:
            play(deck, 0.5)
        play(deck, 1.0)
        after = client(deck, "embedded").get("/healthz")
    finally:
        deck.close()
    assert before.status_code == 200 and before.json()["status"] == "ok" and before.json()["audible"] == "primary"
    body = after.json()
    assert after.status_code == 200  # the music goes on: not "down"
    assert body["ok"] is False and body["status"] == "degraded"
    assert body["audible"] == "fallback" and "model exploded" in body["primary_error"]


def test_a_deck_with_nothing_left_to_play_is_down() -> None:
    engine = Throttled(seed=1, prompt=Prompt.of("house"))
    deck = Failover(Lookahead(engine, LookaheadConfig(0.6, BLOCK)), None, FailoverConfig())
    deck.start()
    try:
        assert deck.wait_ready(10)
        engine.fail.set()
        deadline = time.monotonic() + 10
        while deck.error is None and time.monotonic() < deadline:
            play(deck, 0.5)
        response = client(deck, "synth").get("/healthz")
    finally:
        deck.close()
    assert response.status_code == 503 and response.json()["status"] == "down"
