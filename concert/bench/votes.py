"""`concert bench votes`: many real websocket clients voting against a real server.

Starts `concert serve` in a subprocess on a free loopback port, opens `clients`
websocket connections, sends `rate` votes per second in total for `seconds`,
and measures vote→ack latency and state fan-out latency (server `ts` → client
receipt, same machine clock). Rounds are made long so none closes mid-run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import resource
import time
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect

from concert.bench.serve import ONE_NAT, serve


@dataclass(frozen=True)
class VoteBenchConfig:
    clients: int = 1000  # concurrent websocket connections
    rate: float = 500.0  # votes per second, all clients together
    seconds: float = 20.0  # voting duration, seconds
    store: str = "memory://"  # store URL passed to the server
    connect_concurrency: int = 50  # connections opened at once during ramp-up
    seed: int = 0


@dataclass
class _Client:
    ws: ClientConnection
    round: int
    options: list[str]
    sent: dict[int, float] = field(default_factory=dict)  # seq → send time (perf_counter)


@dataclass
class _Results:
    ack_ms: list[float] = field(default_factory=list)
    fanout_ms: list[float] = field(default_factory=list)
    errors: int = 0
    error_codes: dict[str, int] = field(default_factory=dict)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return round(v[min(len(v) - 1, int(q * len(v)))], 2)


def _raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))


async def _reader(c: _Client, res: _Results, stop: asyncio.Event) -> None:
    with contextlib.suppress(Exception):
        async for raw in c.ws:
            now_wall = time.time()
            msg = json.loads(raw)
            kind = msg.get("type")
            if kind == "ack":
                # acks come back in order on one connection: the oldest outstanding send is this ack
                if c.sent:
                    first = next(iter(c.sent))
                    res.ack_ms.append((time.perf_counter() - c.sent.pop(first)) * 1000)
            elif kind == "state":
                if not stop.is_set():
                    res.fanout_ms.append((now_wall - float(msg["ts"])) * 1000)
                c.round = int(msg["round"])
                c.options = [o["id"] for o in msg["options"]]
            elif kind == "error":
                res.errors += 1
                code = str(msg.get("code"))
                res.error_codes[code] = res.error_codes.get(code, 0) + 1
                if c.sent:
                    c.sent.pop(next(iter(c.sent)))


async def _open(url: str) -> _Client:
    ws = await connect(url, compression=None, max_size=2**20, open_timeout=30, ping_interval=None)
    hello = json.loads(await ws.recv())
    st = hello["state"]
    return _Client(ws, int(st["round"]), [o["id"] for o in st["options"]])


async def _run(cfg: VoteBenchConfig, port: int) -> dict[str, object]:
    url = f"ws://127.0.0.1:{port}/ws"
    sem = asyncio.Semaphore(cfg.connect_concurrency)

    async def one() -> _Client:
        async with sem:
            return await _open(url)

    clients = await asyncio.gather(*(one() for _ in range(cfg.clients)))
    res = _Results()
    stop = asyncio.Event()
    readers = [asyncio.create_task(_reader(c, res, stop)) for c in clients]
    rng = random.Random(cfg.seed)
    seq = 0
    sent = 0
    t_start = time.perf_counter()
    period = 1.0 / cfg.rate
    next_t = t_start
    while time.perf_counter() - t_start < cfg.seconds:
        c = clients[rng.randrange(len(clients))]
        option = rng.choice(c.options)
        seq += 1
        c.sent[seq] = time.perf_counter()
        try:
            await c.ws.send(json.dumps({"type": "vote", "round": c.round, "option": option}))
            sent += 1
        except Exception:
            res.errors += 1
            c.sent.pop(seq, None)
        next_t += period
        delay = next_t - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    elapsed = time.perf_counter() - t_start
    await asyncio.sleep(2.0)  # let the last acks and states arrive
    stop.set()
    missing = sum(len(c.sent) for c in clients)
    await asyncio.gather(*(c.ws.close() for c in clients), return_exceptions=True)
    for r in readers:
        r.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    return {
        "clients": cfg.clients,
        "votes_per_s": round(len(res.ack_ms) / elapsed, 1),
        "votes_sent": sent,
        "acks": len(res.ack_ms),
        "ack_p50_ms": _pct(res.ack_ms, 0.50),
        "ack_p99_ms": _pct(res.ack_ms, 0.99),
        "fanout_p95_ms": _pct(res.fanout_ms, 0.95),
        "states_received": len(res.fanout_ms),
        "errors": res.errors + missing,
        "error_codes": res.error_codes,
        "store": cfg.store,
    }


def run_vote_bench(cfg: VoteBenchConfig) -> dict[str, object]:
    _raise_fd_limit(cfg.clients * 2 + 256)
    # rounds long enough (64 bars) that none closes mid-run
    args = ("--store", cfg.store, "--round-bars", "64", "--song-phrases", "2", "--log-level", "warning", *ONE_NAT)
    with serve(*args) as server:
        return asyncio.run(_run(cfg, server.port))
