"""Prometheus metrics, read live from the running set at scrape time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from concert.runtime import Runtime

LATENCY_BUCKETS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)  # seconds


class RuntimeCollector(Collector):
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self._latency_sum = 0.0

    def _drain_latencies(self) -> None:
        pending = self.rt.conductor.counters.steering_latencies
        while pending:
            v = pending.pop()
            self._latency_sum += v
            for i, b in enumerate(LATENCY_BUCKETS):
                if v <= b:
                    self._latency_counts[i] += 1
            self._latency_counts[-1] += 1

    def collect(self) -> Iterator[Metric]:
        rt = self.rt
        c = rt.conductor.counters
        s = rt.lookahead.stats
        yield CounterMetricFamily("concert_votes", "Votes acknowledged", value=c.votes)
        yield GaugeMetricFamily("concert_clients", "Websocket clients connected", value=rt.clients)
        f = rt.failover.stats if rt.failover is not None else None
        gaps = f.gaps if f is not None else 0
        yield CounterMetricFamily(
            "concert_underruns", "Blocks the source could not supply in time", value=s.underruns + gaps
        )
        if f is not None and rt.failover is not None:
            yield CounterMetricFamily(
                "concert_fallback_handovers", "Times the synth took over from a lagging token engine", value=f.handovers
            )
            yield CounterMetricFamily("concert_fallback_returns", "Times the token engine came back", value=f.returns)
            yield CounterMetricFamily(
                "concert_fallback_seconds", "Audio the synth played for the token engine", value=f.fallback_seconds
            )
            yield GaugeMetricFamily(
                "concert_fallback_active", "1 while the synth leads", value=float(rt.failover.state != "primary")
            )
        yield CounterMetricFamily(
            "concert_late_chunks", "Source chunks that arrived after a starved read", value=s.late_chunks
        )
        yield GaugeMetricFamily("concert_engine_rtf", "Source compute seconds per audio second (recent)", value=s.rtf)
        yield GaugeMetricFamily(
            "concert_lookahead_seconds", "Audio rendered ahead of playback", value=rt.lookahead.buffered_seconds
        )
        yield CounterMetricFamily("concert_rounds", "Rounds closed", value=c.rounds)
        yield CounterMetricFamily("concert_late_landings", "Changes that landed after their bar", value=c.late_landings)
        yield GaugeMetricFamily("concert_stream_listeners", "HTTP stream listeners", value=rt.stream.listeners)
        yield CounterMetricFamily("concert_fanout_dropped", "Clients dropped for stalling", value=rt.fanout.dropped)
        self._drain_latencies()
        # counts are cumulative already: a latency is counted in every bucket it fits under
        buckets = [(str(b), self._latency_counts[i]) for i, b in enumerate(LATENCY_BUCKETS)]
        buckets.append(("+Inf", self._latency_counts[-1]))
        yield HistogramMetricFamily(
            "concert_steering_latency_seconds",
            "Seconds from a round's decision to its change becoming audible",
            buckets=buckets,
            sum_value=self._latency_sum,
        )


def make_registry(rt: Runtime) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RuntimeCollector(rt))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
