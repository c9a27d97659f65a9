"""The simulated crowd of `concert bench votes`: websocket clients in several processes, voting at one rate.

Each client process opens its share of the connections, waits at a barrier until every process is connected
(the server's memory is measured there), votes its share of the rate for the same `seconds`, and sends back
its raw figures: vote→ack latencies (each connection's acks come back in order) and state fan-out latencies
(the frame's server `ts` → receipt, one machine clock). The same crowd runs against `concert serve` and
against the bare websockets floor (`concert.bench.floor`). Clients speak through `concert.bench.wire`, a lean
websocket client on uvloop, so the crowd takes as little as it can of the CPU it shares with the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import random
import resource
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from concert.bench.wire import Wire, WireError, open_wire

T = TypeVar("T")
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
    hello: asyncio.Future[None]  # set when the server's hello (with the open round) has arrived
    round: int = 0
    options: list[str] = field(default_factory=list)
    sent: deque[float] = field(default_factory=deque)  # send times (perf_counter) of votes not yet answered
    wire: Wire | None = None


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


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on uvloop where it is installed (uvicorn's `[standard]` extra brings it, and `concert serve`
    runs on it), else on asyncio's own loop. The crowd and the floor run on the server's loop: a load generator on
    a slower loop would eat the CPU the server is measured on, and a floor on one would flatter the server."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is not built for every platform
        return asyncio.run(main)
    return uvloop.run(main)


def raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))


_TS = b'"ts": '
_ROUND = b'"round": '


def _on_text(c: _Client, res: Figures, voting: asyncio.Event, data: bytes) -> None:
    """One frame from the server. Acks and state frames are recognised without parsing the JSON (ten
    thousand clients parsing every state frame would eat the CPU the server is being measured on): both
    servers write `{"type": ..., "ts": ..., "round": ...` first; a state frame is parsed whole only when its
    round is new (the options change)."""
    if data.startswith(b'{"type": "ack"'):
        if c.sent:
            res.ack_ms.append((time.perf_counter() - c.sent.popleft()) * 1000)
    elif data.startswith(b'{"type": "state"'):
        now_wall = time.time()
        at = data.find(_TS) + len(_TS)
        ts = float(data[at : data.find(b",", at)])
        if voting.is_set():
            res.fanout_ms.append((now_wall - ts) * 1000)
        at = data.find(_ROUND) + len(_ROUND)
        if int(data[at : data.find(b",", at)]) != c.round:
            msg = json.loads(data)
            c.round, c.options = int(msg["round"]), [o["id"] for o in msg["options"]]
    else:
        msg = json.loads(data)
        if msg.get("type") == "hello" and not c.hello.done():
            st = msg["state"]
            c.round, c.options = int(st["round"]), [o["id"] for o in st["options"]]
            c.hello.set_result(None)
        elif msg.get("type") == "error":
            res.errors += 1
            code = str(msg.get("code"))
            res.error_codes[code] = res.error_codes.get(code, 0) + 1
            if c.sent:
                c.sent.popleft()


async def _open(url: str, res: Figures, voting: asyncio.Event) -> _Client:
    c = _Client(asyncio.get_running_loop().create_future())
    c.wire = await open_wire(url, lambda data: _on_text(c, res, voting, data))
    await asyncio.wait_for(c.hello, 60)
    return c


async def _crowd(url: str, clients: int, rate: float, seconds: float, seed: int, barrier: Any) -> Figures:
    sem = asyncio.Semaphore(50)
    res = Figures()
    voting = asyncio.Event()

    async def one() -> _Client:
        async with sem:
            return await _open(url, res, voting)

    crowd = await asyncio.gather(*(one() for _ in range(clients)))
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
            assert c.wire is not None  # set by _open
            c.wire.send_text(json.dumps({"type": "vote", "round": c.round, "option": rng.choice(c.options)}))
            res.sent += 1
        except WireError:
            res.errors += 1
            c.sent.pop()
        next_t += period
        delay = next_t - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    await asyncio.sleep(SETTLE_S)
    voting.clear()
    res.errors += sum(len(c.sent) for c in crowd)  # votes never answered
    for c in crowd:
        if c.wire is not None:
            c.wire.close()
    await asyncio.sleep(0.5)  # the closing frames leave
    return res


def _process(url: str, clients: int, rate: float, seconds: float, seed: int, barrier: Any, out: Any) -> None:
    raise_fd_limit(clients + 256)
    try:
        res = run_loop(_crowd(url, clients, rate, seconds, seed, barrier))
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
