"""The running set: every long-lived piece built from a ServeConfig, started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

from concert.config import ServeConfig
from concert.crowd import aggregator as agg
from concert.crowd.conductor import Conductor, ConductorConfig
from concert.crowd.moderation import ModerationConfig, Moderator, load_wordlist
from concert.crowd.rounds import Schedule
from concert.crowd.words import Reading, Understand, load_understanding
from concert.outputs.base import Output
from concert.outputs.icecast import IcecastStats, push
from concert.outputs.mp3 import Mp3Stream
from concert.outputs.opus import OpusStream
from concert.outputs.stream import StreamConfig
from concert.playback.player import Player
from concert.server.fanout import Fanout
from concert.server.heap import HeapConfig, HeapStats, hygiene
from concert.server.identity import DeviceSigner
from concert.server.limits import LocalLimits
from concert.server.outage import Outage
from concert.store import open_store
from concert.store.base import Store, StoreUnavailableError
from engine import backends
from engine.music.prompt import Prompt
from engine.music.styles import UnknownStyleError
from engine.playback.failover import Failover, FailoverConfig
from engine.playback.lookahead import Lookahead, LookaheadConfig
from engine.source import AudioSource

log = logging.getLogger(__name__)


def build_source(config: ServeConfig) -> AudioSource:
    return backends.build_source(
        backends.BackendConfig(
            name=config.backend,
            seed=config.seed,
            sample_rate=config.sample_rate,
            model_path=config.model_path,
            precision=config.precision,
        ),
        Prompt.of(config.start_style),
    )


def build_deck(config: ServeConfig, source: AudioSource) -> Failover:
    """The one audible object: `source` ahead of playback and, for a token backend, a synth standing by."""
    if config.backend == "synth":  # the synth is its own fallback: nothing to fail over to
        return Failover(Lookahead(source, LookaheadConfig(config.lookahead, config.block)), None, FailoverConfig())
    from engine.synth.source import StyleSynth, SynthConfig

    ahead = max(config.lookahead, config.engine_lookahead)
    primary = Lookahead(source, LookaheadConfig(lookahead=ahead, block=config.block))
    synth = StyleSynth(SynthConfig(sample_rate=source.sample_rate, seed=config.seed), Prompt.of(config.start_style))
    fallback = Lookahead(synth, LookaheadConfig(lookahead=config.lookahead, block=config.block))
    return Failover(primary, fallback, FailoverConfig(crossfade=config.crossfade))


@dataclass
class Runtime:
    config: ServeConfig
    store: Store
    deck: Failover  # the one audible object: its primary is the configured backend (its stats the engine's)
    conductor: Conductor
    stream: Mp3Stream
    opus: OpusStream  # /stream.opus
    signer: DeviceSigner
    news: asyncio.Event  # set when what clients see has changed
    gate: LocalLimits  # per-address caps on connections, new devices and messages
    player: Player  # the master clock, on its own thread
    store_outage: Outage = field(default_factory=lambda: Outage("the vote store"))  # one log line per outage
    fanout: Fanout = field(default_factory=Fanout)
    outputs: list[Output] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    heap: HeapStats = field(default_factory=HeapStats)  # the collector's freezes and full passes
    icecast: list[IcecastStats] = field(default_factory=list)  # one per --icecast mount
    relay: Callable[[str], Awaitable[None]] | None = None  # a conductor process: state goes to the web workers
    remote_clients: int = 0  # a conductor process: the web workers' websocket clients, all together

    @property
    def clients(self) -> int:
        return len(self.fanout) + self.remote_clients

    def clients_changed(self) -> None:
        """A client joined or left: the count in the state frame changed."""
        self.news.set()

    async def act(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """Run one of the booth's actions (`concert.server.actions`); ValueError for a bad one. One that changes
        the set lands in the setlist and the console's list with `body["_who"]` (set by the HTTP endpoint)."""
        from concert.server.actions import DJ_ACTIONS, LOGGED

        run = DJ_ACTIONS.get(action)
        if run is None:
            raise ValueError(f"unknown action {action!r}; one of {', '.join(DJ_ACTIONS)}")
        body = dict(body)
        who = str(body.pop("_who", "booth"))[:120]
        result = await run(self.conductor, self.deck, body)
        if action in LOGGED and (action != "blocklist" or body):
            c = self.conductor
            entry = c.booth.record(c.clock(), who, action, {"bar": int(c.bar), "request": body, "result": result})
            if c.setlist is not None:
                c.setlist(entry)
            self.news.set()
        return result

    async def health(self) -> tuple[dict[str, object], int]:
        """(body, HTTP status) of /healthz: "ok" only when the configured backend is the one playing; 503 only
        when nothing can play. A token engine that died or lags while the synth covers is "degraded": the music
        goes on (200), and the body says which source is audible and what stopped the primary."""
        deck = self.deck.health()
        store_ok = await self.store.ping()
        down = not store_ok or self.deck.error is not None
        degraded = deck["primary_error"] is not None or deck["audible"] != "primary"
        status = "down" if down else "degraded" if degraded else "ok"
        body: dict[str, object] = {
            "ok": status == "ok",
            "status": status,
            "backend": self.config.backend,
            "playing": deck["state"],  # primary | to_fallback | fallback | to_primary
            "audible": deck["audible"],  # whose audio the listeners hear: primary (the backend) or fallback
            "primary_error": deck["primary_error"],
            "store": store_ok,
            "buffered_seconds": deck["buffered_seconds"],
            "dropped_audio_seconds": round(self.player.dropped_seconds, 3),  # what the listeners missed so far
            "clients": self.clients,
            "listeners": {"mp3": self.stream.listeners, "opus": self.opus.listeners},
        }
        if self.icecast:
            body["icecast"] = [s.as_json() for s in self.icecast]
        return body, 503 if down else 200

    async def publish_loop(self) -> None:
        """Publish state when something changed, at most config.state_hz times a second.

        Big crowds get fewer frames each, so the server never sends more than
        config.max_frames_per_s state frames a second in total.
        """
        while True:
            period = max(1.0 / self.config.state_hz, self.clients / self.config.max_frames_per_s)
            await self.news.wait()
            self.news.clear()
            try:
                state = await self.conductor.state(self.clients)
            except StoreUnavailableError as e:  # phones keep their last state; one log line per outage
                self.store_outage.failed(e)
            except Exception:
                log.exception("building state failed")
            else:
                frame = json.dumps({"type": "state", **state})
                if self.relay is None:
                    self.store_outage.ok()
                    self.fanout.publish(frame)
                else:
                    try:
                        await self.relay(frame)
                    except StoreUnavailableError as e:
                        self.store_outage.failed(e)
                    else:
                        self.store_outage.ok()
            await asyncio.sleep(period)


class PreflightError(RuntimeError):
    """The set cannot start: the message says what is missing and how to fix it."""


async def _words(config: ServeConfig) -> tuple[Understand | None, Callable[[], None]]:
    """The text model for suggestions in any words, when configured and installed. `on` loads it before the set
    starts (and fails the start if it cannot); `auto` loads it in the background (seconds of CPU): a suggestion
    that needs it meanwhile waits for it."""
    from engine.text.encoder import TextModelError, model_folder

    if config.text_model == "off" or (config.text_model == "auto" and model_folder() is None):
        why = "off" if config.text_model == "off" else "not installed"
        log.info("suggestions need a genre word (the text model is %s)", why)
        return None, lambda: None
    loading = asyncio.get_running_loop().run_in_executor(None, load_understanding)
    if config.text_model == "on":
        await asyncio.shield(loading)

    def loaded(done: asyncio.Future[tuple[Understand, Callable[[], None]]]) -> None:
        if done.cancelled():
            return
        if done.exception() is not None:
            log.warning("suggestions need a genre word: %s", done.exception())
        else:
            log.info("suggestions in any words: the text model is loaded")

    loading.add_done_callback(loaded)

    async def understand(text: str) -> Reading:
        try:
            inner, _ = await asyncio.shield(loading)
        except TextModelError:
            raise UnknownStyleError(f"{text!r} names no genre, and the text model is not working here") from None
        return await inner(text)

    def stop() -> None:
        if loading.done() and not loading.cancelled() and loading.exception() is None:
            loading.result()[1]()

    return understand, stop


def preflight(config: ServeConfig) -> None:
    """Check the store and the sound device before the server binds its port."""
    store = open_store(config.store)

    async def ping() -> bool:
        try:
            return await store.ping()
        finally:
            await store.aclose()

    if not asyncio.run(ping()):
        raise PreflightError(f"store {config.store} does not answer; is redis-server running there?")
    if config.output == "speakers":
        from concert.outputs.speakers import Speakers, SpeakersConfig, SpeakersUnavailableError

        try:
            Speakers(SpeakersConfig(device=config.speakers_device)).close()
        except SpeakersUnavailableError as e:
            raise PreflightError(str(e)) from None
    if config.text_model == "on":
        from engine.text.encoder import INSTALL, model_folder

        if model_folder() is None:
            raise PreflightError(f"--text-model on, but the text model is not installed: {INSTALL}")
    if config.backend == "embedded":
        from engine.embedded.weights import SHIPPED, WeightsError, load_embedded

        try:
            load_embedded(SHIPPED if config.model_path is None else config.model_path)
        except WeightsError as e:
            raise PreflightError(str(e)) from None


@contextlib.asynccontextmanager
async def running(config: ServeConfig) -> AsyncIterator[Runtime]:
    """Build, warm up and start the set; stop everything on exit."""
    store = open_store(config.store)
    try:
        if not await store.ping():
            raise ConnectionError(f"store {config.store} did not answer")
        source = build_source(config)
        recorder = None
        outputs: list[Output] = []
        if config.record is not None:
            from concert.outputs.recorder import Recorder, RecorderConfig

            recorder = Recorder(RecorderConfig(directory=config.record))
            outputs.append(recorder)
        if config.output == "speakers":
            from concert.outputs.speakers import Speakers, SpeakersConfig

            outputs.append(Speakers(SpeakersConfig(device=config.speakers_device)))
        stream, opus = Mp3Stream(StreamConfig()), OpusStream(StreamConfig())
        outputs[:0] = [stream, opus]
        schedule = Schedule(
            round_bars=config.round_bars, song_phrases=config.song_phrases, close_lead_bars=config.lead_bars
        )
        cconf = ConductorConfig(
            schedule=schedule,
            aggregator=agg.AggregatorConfig(mode=cast(agg.CrowdMode, config.mode)),
            start_style=config.start_style,
        )
        deck = build_deck(config, source)
        news = asyncio.Event()
        understand, stop_words = await _words(config)
        conductor = Conductor(
            cconf,
            store,
            deck,
            moderator=Moderator(ModerationConfig(), load_wordlist("artists"), load_wordlist("blocked_words")),
            setlist=recorder.log if recorder is not None else None,
            understand=understand,
            on_change=news.set,
        )
        deck.start()
        # warm up off the loop before admitting anyone: the first blocks must be ready
        ready = await asyncio.to_thread(deck.wait_ready, 60.0)
        if not ready:
            raise RuntimeError("the audio source did not fill its lookahead within 60 s")
        gc.collect()
        gc.freeze()  # start-up objects never need scanning again: shorter collector pauses mid-set
        local = [out for out in outputs if out not in (stream, opus)]  # speakers, recorder: on the player thread
        player = Player(deck, local, conductor.on_block, loop_outputs=[stream, opus])
        rt = Runtime(
            config,
            store,
            deck,
            conductor,
            stream,
            opus,
            DeviceSigner(config.secret),
            news,
            LocalLimits(config.limits),
            player,
            outputs=outputs,
        )
        player.start(asyncio.get_running_loop())
        rt.tasks = [
            asyncio.create_task(rt.publish_loop(), name="publisher"),
            asyncio.create_task(hygiene(HeapConfig(), rt.heap), name="heap"),
        ]
        for ice in config.icecast:
            stats = IcecastStats(ice.target.shown)
            rt.icecast.append(stats)
            live = opus if ice.target.format == "opus" else stream
            rt.tasks.append(asyncio.create_task(push(live, ice, stats), name=f"icecast {stats.target}"))
        try:
            yield rt
        finally:
            for t in rt.tasks:
                t.cancel()
            for t in rt.tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            player.stop()
            stop_words()
            await conductor.aclose()
            deck.close()
            for out in outputs:
                with contextlib.suppress(Exception):
                    out.close()
    finally:
        await store.aclose()
