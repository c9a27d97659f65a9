"""The simulated crowd of `concert bench votes`: websocket clients in several processes, voting at one rate.

Each client process opens its share of the connections, waits at a barrier until every process is connected
(the server's memory is measured there), votes its share of the rate for the same `seconds`, and sends back
its raw figures: vote→ack latencies (each connection's acks come back in order) and state fan-out latencies
(the frame's server `ts` → receipt, one machine clock). The same crowd runs against `concert serve` and
against the bare websockets floor (`concert.bench.floor`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import random
import resource
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

CONNECT_TIMEOUT_S = 120.0  # the whole crowd must be connected within this, seconds
SETTLE_S = 2.0  # after voting, time for the last acks and states to arrive, seconds


@dataclass(frozen=True)
class CrowdConfig:
    clients: int = 1000  # concurrent websocket connections, all processes together
    rate: float = 500.0  # votes per second, all clients together
    seconds: float = 20.0  # voting duration, seconds
    processes: int = 2  # client processes (one event loop each)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.clients < 1 or self.processes < 1 or not self.rate > 0 or not self.seconds > 0:
            raise ValueError("clients, processes, rate and seconds must be positive")


@dataclass
class _Client:
    ws: ClientConnection
    round: int
    options: list[str]
    sent: list[float] = field(default_factory=list)  # send times (perf_counter) of votes not yet answered


@dataclass
class Figures:
    ack_ms: list[float] = field(default_factory=list)
    fanout_ms: list[float] = field(default_factory=list)
    sent: int = 0
    errors: int = 0
    error_codes: dict[str, int] = field(default_factory=dict)

    def merge(self, other: Figures) -> None:
        self.ack_ms += other.ack_ms
        self.fanout_ms += other.fanout_ms
        self.sent += other.sent
        self.errors += other.errors
        for k, v in other.error_codes.items():
            self.error_codes[k] = self.error_codes.get(k, 0) + v


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return round(v[min(len(v) - 1, int(q * len(v)))], 2)


def raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))


_TS = '"ts": '
_ROUND = '"round": '


async def _reader(c: _Client, res: Figures, voting: asyncio.Event) -> None:
    """Read one connection's frames. Acks and state frames are recognised without parsing the JSON (ten
    thousand clients parsing every state frame would eat the CPU the server is being measured on): both
    servers write `{"type": ..., "ts": ..., "round": ...` first; a state frame is parsed whole only when its
    round is new (the options change)."""
    with contextlib.suppress(Exception):
        async for raw in c.ws:
            now_wall = time.time()
            text = raw if isinstance(raw, str) else raw.decode()
            if text.startswith('{"type": "ack"'):
                if c.sent:
                    res.ack_ms.append((time.perf_counter() - c.sent.pop(0)) * 1000)
            elif text.startswith('{"type": "state"'):
                at = text.find(_TS) + len(_TS)
                ts = float(text[at : text.find(",", at)])
                if voting.is_set():
                    res.fanout_ms.append((now_wall - ts) * 1000)
                at = text.find(_ROUND) + len(_ROUND)
                if int(text[at : text.find(",", at)]) != c.round:
                    msg = json.loads(text)
                    c.round = int(msg["round"])
                    c.options = [o["id"] for o in msg["options"]]
            else:
                msg = json.loads(text)
                if msg.get("type") == "error":
                    res.errors += 1
                    code = str(msg.get("code"))
                    res.error_codes[code] = res.error_codes.get(code, 0) + 1
                    if c.sent:
                        c.sent.pop(0)


async def _open(url: str) -> _Client:
    ws = await connect(url, compression=None, max_size=2**20, open_timeout=60, ping_interval=None)
    hello = json.loads(await ws.recv())
    st = hello["state"]
    return _Client(ws, int(st["round"]), [o["id"] for o in st["options"]])


async def _crowd(url: str, clients: int, rate: float, seconds: float, seed: int, barrier: Any) -> Figures:
    sem = asyncio.Semaphore(50)

    async def one() -> _Client:
        async with sem:
            return await _open(url)

    crowd = await asyncio.gather(*(one() for _ in range(clients)))
    res = Figures()
    voting = asyncio.Event()
    readers = [asyncio.create_task(_reader(c, res, voting)) for c in crowd]
    await asyncio.to_thread(barrier.wait, CONNECT_TIMEOUT_S)  # every process connected: the server is measured
    await asyncio.to_thread(barrier.wait, CONNECT_TIMEOUT_S)  # measured: vote
    voting.set()
    rng = random.Random(seed)
    t_start = time.perf_counter()
    period, next_t = 1.0 / rate, t_start
    while time.perf_counter() - t_start < seconds:
        c = crowd[rng.randrange(len(crowd))]
        c.sent.append(time.perf_counter())
        try:
            await c.ws.send(json.dumps({"type": "vote", "round": c.round, "option": rng.choice(c.options)}))
            res.sent += 1
        except Exception:
            res.errors += 1
            c.sent.pop()
        next_t += period
        delay = next_t - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    await asyncio.sleep(SETTLE_S)
    voting.clear()
    res.errors += sum(len(c.sent) for c in crowd)  # votes never answered
    await asyncio.gather(*(c.ws.close() for c in crowd), return_exceptions=True)
    for r in readers:
        r.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    return res


def _process(url: str, clients: int, rate: float, seconds: float, seed: int, barrier: Any, out: Any) -> None:
    raise_fd_limit(clients + 256)
    try:
        res = asyncio.run(_crowd(url, clients, rate, seconds, seed, barrier))
        out.put(("ok", res))
    except BaseException as e:  # report, never hang the parent at the barrier
        with contextlib.suppress(Exception):
            barrier.abort()
        out.put(("error", f"{type(e).__name__}: {e}"))


def run_crowd(url: str, config: CrowdConfig, measure: Any = None) -> tuple[Figures, float, Any]:
    """Run the crowd against `url`; (merged figures, seconds voted, what `measure()` returned once connected)."""
    ctx = multiprocessing.get_context("spawn")
    n = min(config.processes, config.clients)
    barrier = ctx.Barrier(n + 1)
    out = ctx.Queue()
    shares = [config.clients // n + (1 if i < config.clients % n else 0) for i in range(n)]
    procs = [
        ctx.Process(
            target=_process,
            args=(url, share, config.rate * share / config.clients, config.seconds, config.seed + i, barrier, out),
            daemon=True,
        )
        for i, share in enumerate(shares)
    ]
    for p in procs:
        p.start()
    try:
        barrier.wait(CONNECT_TIMEOUT_S)
        measured = measure() if measure is not None else None
        t0 = time.perf_counter()
        barrier.wait(CONNECT_TIMEOUT_S)
        figures = Figures()
        for _ in procs:
            status, payload = out.get(timeout=config.seconds + CONNECT_TIMEOUT_S)
            if status != "ok":
                raise RuntimeError(f"a client process failed: {payload}")
            figures.merge(payload)
        elapsed = min(time.perf_counter() - t0, config.seconds)
    except Exception as e:
        errors = []
        while not out.empty():
            status, payload = out.get_nowait()
            if status != "ok":
                errors.append(payload)
        raise RuntimeError(f"the crowd did not run: {e}; {'; '.join(errors)}") from None
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
    return figures, elapsed, measured
