"""Prometheus metrics, read live from the running set at scrape time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from concert.cluster.worker import WorkerRuntime
    from concert.server.runtime import Runtime


class RuntimeCollector(Collector):
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterator[Metric]:
        rt = self.rt
        c = rt.conductor.counters
        deck = rt.deck
        s = deck.primary.stats  # the configured backend's producer: the engine
        f = deck.stats
        yield from _front(rt)
        yield from _icecast(rt)
        yield CounterMetricFamily(
            "concert_underruns", "Blocks the source could not supply in time", value=s.underruns + f.gaps
        )
        yield CounterMetricFamily(
            "concert_fallback_handovers", "Times the synth took over from a lagging token engine", value=f.handovers
        )
        yield CounterMetricFamily("concert_fallback_returns", "Times the token engine came back", value=f.returns)
        yield CounterMetricFamily(
            "concert_fallback_seconds", "Audio the synth played for the token engine", value=f.fallback_seconds
        )
        yield CounterMetricFamily(
            "concert_primary_seconds", "Audio the configured backend itself played", value=f.primary_seconds
        )
        yield GaugeMetricFamily(
            "concert_fallback_active", "1 while the synth leads", value=float(deck.audible != "primary")
        )
        yield GaugeMetricFamily(
            "concert_primary_failed",
            "1 once the configured backend's producer has died",
            value=float(deck.primary_error is not None),
        )
        yield CounterMetricFamily(
            "concert_late_chunks", "Source chunks that arrived after a starved read", value=s.late_chunks
        )
        yield GaugeMetricFamily("concert_engine_rtf", "Source compute seconds per audio second (recent)", value=s.rtf)
        yield CounterMetricFamily("concert_engine_audio_seconds", "Audio the engine rendered", value=s.audio_seconds)
        yield CounterMetricFamily(
            "concert_engine_compute_seconds", "Wall seconds the engine spent rendering", value=s.compute_seconds
        )
        yield from _outputs(rt)
        yield CounterMetricFamily(
            "concert_dropped_audio_seconds",
            "Audio the listeners missed (silence on underrun, a held-up player)",
            value=rt.player.dropped_seconds,
        )
        yield GaugeMetricFamily(
            "concert_lookahead_seconds", "Audio rendered ahead of playback", value=deck.primary.buffered_seconds
        )
        yield CounterMetricFamily("concert_rounds", "Rounds closed", value=c.rounds)
        yield CounterMetricFamily("concert_late_landings", "Changes that landed after their bar", value=c.late_landings)
        yield from c.steering_latency.collect()  # reading it changes nothing


class WorkerCollector(Collector):
    """A web worker's own figures (the set's are on the conductor process: its /healthz is relayed)."""

    def __init__(self, rt: WorkerRuntime) -> None:
        self.rt = rt

    def collect(self) -> Iterator[Metric]:
        yield from _front(self.rt)


def _front(rt: Runtime | WorkerRuntime) -> Iterator[Metric]:
    """What the process facing the phones and listeners counted: votes, clients, refusals, streams, fan-out."""
    c = rt.conductor.counters
    yield CounterMetricFamily("concert_votes", "Votes acknowledged: one per device per round", value=c.votes)
    yield CounterMetricFamily("concert_vote_changes", "Devices moving their vote within a round", value=c.vote_changes)
    yield GaugeMetricFamily("concert_clients", "Websocket clients connected", value=rt.clients)
    refused = CounterMetricFamily("concert_refused", "Connections and frames over a per-address cap", labels=["code"])
    for code, count in sorted(rt.gate.refused.items()):
        refused.add_metric([code], count)
    yield refused
    listeners = GaugeMetricFamily("concert_stream_listeners", "HTTP stream listeners", labels=["format"])
    dropped = CounterMetricFamily(
        "concert_stream_dropped_listeners", "Stream listeners dropped for not reading", labels=["format"]
    )
    for fmt, live in (("mp3", rt.stream), ("opus", rt.opus)):
        listeners.add_metric([fmt], live.listeners)
        dropped.add_metric([fmt], live.dropped_listeners)
    yield listeners
    yield dropped
    yield CounterMetricFamily("concert_fanout_dropped", "Clients dropped for stalling", value=rt.fanout.dropped)
    heap = rt.heap
    yield CounterMetricFamily(
        "concert_gc_full_collections", "Scheduled full garbage collections", heap.full_collections
    )
    yield CounterMetricFamily(
        "concert_gc_full_pause_seconds", "Event-loop time the scheduled full collections took", heap.full_pause_seconds
    )
    yield GaugeMetricFamily(
        "concert_gc_full_pause_max_seconds", "The longest scheduled full collection", heap.full_pause_max_seconds
    )


def make_registry(rt: Runtime | WorkerRuntime) -> CollectorRegistry:
    from concert.cluster.worker import WorkerRuntime

    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerCollector(rt) if isinstance(rt, WorkerRuntime) else RuntimeCollector(rt))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def _icecast(rt: Runtime) -> Iterator[Metric]:
    """The pushes to Icecast (`--icecast`), one label per mount; none without them."""
    if not rt.icecast:
        return
    up = GaugeMetricFamily("concert_icecast_connected", "1 while the push to this mount runs", labels=["target"])
    connects = CounterMetricFamily("concert_icecast_connects", "Sessions Icecast accepted", labels=["target"])
    failures = CounterMetricFamily("concert_icecast_failures", "Refused connects, lost links", labels=["target"])
    sent = CounterMetricFamily("concert_icecast_sent_bytes", "Bytes pushed to Icecast", labels=["target"])
    for st in rt.icecast:
        up.add_metric([st.target], int(st.connected))
        connects.add_metric([st.target], st.connects)
        failures.add_metric([st.target], st.failures)
        sent.add_metric([st.target], st.bytes_sent)
    yield from (up, connects, failures, sent)


def _outputs(rt: Runtime) -> Iterator[Metric]:
    """What the local outputs counted: audio they dropped or could not play is exported, never hidden."""
    from concert.outputs.recorder import Recorder
    from concert.outputs.speakers import Speakers

    for out in rt.outputs:
        if isinstance(out, Speakers):
            yield CounterMetricFamily(
                "concert_speakers_underruns", "Sound card callbacks with no audio", value=out.underruns
            )
            yield CounterMetricFamily(
                "concert_speakers_dropped_frames",
                "Samples dropped because the sound card fell behind",
                value=out.frames_dropped,
            )
            yield CounterMetricFamily(
                "concert_speakers_played_frames", "Samples the sound card played", value=out.frames_played
            )
        elif isinstance(out, Recorder):
            yield CounterMetricFamily(
                "concert_recorder_dropped_chunks",
                "Chunks the recorder had no room for (silence instead)",
                value=out.dropped_chunks,
            )
            yield CounterMetricFamily(
                "concert_recorder_archive_errors",
                "Closed hours that could not be re-encoded to FLAC (kept as Wave64)",
                value=out.archive_errors,
            )
