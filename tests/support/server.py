"""The real `concert serve` in a subprocess, for integration tests (shared with the benchmarks)."""

from __future__ import annotations

from concert.bench.serve import ONE_NAT, Server, free_port, serve

__all__ = ["ONE_NAT", "Server", "free_port", "serve"]
