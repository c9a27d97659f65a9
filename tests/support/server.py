"""The real `concert serve` in a subprocess, for integration tests (shared with the benchmarks)."""

from __future__ import annotations

from concert.bench.serve import Server, free_port, serve

__all__ = ["Server", "free_port", "serve"]
