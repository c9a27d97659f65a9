"""`concert bench votes`: a crowd of real websocket clients voting against `concert serve`, and the same crowd
against a bare `websockets` broadcast of the same frames (the floor), in one run.

The server runs in a subprocess on a free loopback port (with `workers` > 1: on the given Redis, one conductor
process and N web workers); the crowd runs in `processes` client processes (`concert.bench.crowd`). Rounds are
made long so none closes mid-run. Printed figures, for the server and with a `floor_` prefix for the floor:

    clients, votes_per_s, ack_p50_ms, ack_p99_ms, fanout_p95_ms, errors, rss_mb_per_1k_clients
    ack_p99_vs_floor, fanout_p95_vs_floor, rss_vs_floor     (server / floor)

`rss_mb_per_1k_clients` is the resident memory the connected crowd added to the server's processes (all of
them), per thousand clients.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

from concert.bench.crowd import CrowdConfig, Figures, pct, raise_fd_limit, run_crowd
from concert.bench.procfs import tree_rss_mb
from concert.bench.serve import ONE_NAT, free_port, serve, stop_process


@dataclass(frozen=True)
class VoteBenchConfig:
    clients: int = 1000  # concurrent websocket connections
    rate: float = 500.0  # votes per second, all clients together
    seconds: float = 20.0  # voting duration, seconds
    store: str = "memory://"  # store URL passed to the server
    workers: int = 1  # server web workers (more than 1 needs a redis:// store)
    processes: int = 2  # client processes
    floor: bool = True  # also run the crowd against the bare websockets floor
    seed: int = 0


def _figures(fig: Figures, elapsed: float, clients: int, rss_added_mb: float) -> dict[str, object]:
    return {
        "clients": clients,
        "votes_per_s": round(len(fig.ack_ms) / elapsed, 1) if elapsed > 0 else 0.0,
        "votes_sent": fig.sent,
        "acks": len(fig.ack_ms),
        "ack_p50_ms": pct(fig.ack_ms, 0.50),
        "ack_p99_ms": pct(fig.ack_ms, 0.99),
        "fanout_p95_ms": pct(fig.fanout_ms, 0.95),
        "states_received": len(fig.fanout_ms),
        "errors": fig.errors,
        "error_codes": fig.error_codes,
        "rss_mb_per_1k_clients": round(rss_added_mb * 1000 / clients, 2),
    }


def _run_against(url: str, pid: int, cfg: VoteBenchConfig) -> dict[str, object]:
    before = tree_rss_mb(pid)
    crowd = CrowdConfig(clients=cfg.clients, rate=cfg.rate, seconds=cfg.seconds, processes=cfg.processes)
    fig, elapsed, connected_rss = run_crowd(url, crowd, measure=lambda: tree_rss_mb(pid))
    return _figures(fig, elapsed, cfg.clients, max(0.0, connected_rss - before))


@contextlib.contextmanager
def _floor_server() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    cmd = [sys.executable, "-m", "concert.bench.floor", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        line = proc.stdout.readline() if proc.stdout is not None else b""
        if b"floor ready" not in line:
            raise RuntimeError(f"the floor server did not start: {line!r}")
        yield port, proc
    finally:
        stop_process(proc)


def _ratio(a: object, b: object) -> float | None:
    if isinstance(a, int | float) and isinstance(b, int | float) and b > 0:
        return round(float(a) / float(b), 2)
    return None


def run_vote_bench(cfg: VoteBenchConfig) -> dict[str, object]:
    raise_fd_limit(cfg.clients * 2 + 256)
    args = ["--store", cfg.store, "--round-bars", "64", "--song-phrases", "2", "--log-level", "warning", *ONE_NAT]
    args += ["--workers", str(cfg.workers)]
    with serve(*args, timeout=120) as server:
        time.sleep(1.0)  # every worker up (serve() returns at the first healthy answer)
        result = _run_against(server.ws, server.proc.pid, cfg)
    result.update(store=cfg.store, workers=cfg.workers, client_processes=cfg.processes, rate=cfg.rate)
    if cfg.floor:
        with _floor_server() as (port, proc):
            floor = _run_against(f"ws://127.0.0.1:{port}/", proc.pid, cfg)
        result.update({f"floor_{k}": v for k, v in floor.items() if k != "error_codes"})
        ratios = {"ack_p99_vs_floor": "ack_p99_ms", "fanout_p95_vs_floor": "fanout_p95_ms"}
        ratios["rss_vs_floor"] = "rss_mb_per_1k_clients"
        for name, key in ratios.items():
            result[name] = _ratio(result[key], floor[key])
    return result
