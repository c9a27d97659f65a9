"""`concert serve --workers N`: one port, N web workers, a conductor process and its standbys, all restarted.

    supervisor (this process: holds the port, starts and restarts the others)
      ├─ conductor  ×(1 + standbys)   one holds the Redis lease and plays; the others wait to take over
      └─ worker     ×N                uvicorn, each on its own SO_REUSEPORT socket (the kernel spreads
                                      connections over them)

Every child is a fresh interpreter (multiprocessing's spawn: no forked torch or event-loop state) built from
the same frozen `ServeConfig`, so all workers verify the same device cookies and DJ token. A child that dies
is started again after a short back-off; the set plays on meanwhile (a standby conductor takes the lease, the
other workers keep their phones).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any

from concert.config import ServeConfig

log = logging.getLogger(__name__)

RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)  # waits before restarting a child that keeps dying, seconds
STABLE_S = 30.0  # a child that lived this long starts its back-off afresh when it dies, seconds
STOP_GRACE_S = 5.0  # a conductor told to stop that is still running after this exits hard, seconds


def _die_with_parent() -> None:
    """Linux: this child gets SIGTERM when the supervisor dies (even by SIGKILL), so no orphan plays on."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def conductor_main(config: ServeConfig, owner: str, log_level: str) -> None:
    """A conductor process (spawned): wait for the lease, play the set, stop on SIGTERM."""
    _die_with_parent()
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s conductor %(levelname)s %(message)s")
    if config.backend != "synth":
        import torch

        torch.set_num_threads(config.torch_threads)
    from concert.cluster.conductor_node import conduct

    owner = f"{owner}:{os.getpid()}"  # the id ends in the process's pid (what an operator kills)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def _stop() -> None:  # a clean stop saves the snapshot; a stuck one must not play on as an orphan
            stop.set()
            loop.call_later(STOP_GRACE_S, _exit_hard)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, _stop)
        await conduct(config, owner, stop)

    asyncio.run(main())


def _exit_hard() -> None:
    log.error("the conductor did not stop within %.0f s of being told to; exiting now", STOP_GRACE_S)
    logging.shutdown()
    os._exit(1)


def reuse_port_socket(host: str, port: int, listen: bool) -> socket.socket:
    """A TCP socket bound with SO_REUSEPORT: each worker listens on its own, and the kernel spreads new
    connections evenly over them (one shared accept queue hands nearly all of them to whichever process is
    idle first)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(2048)
    return sock


def worker_main(config: ServeConfig, worker: str, server: dict[str, Any]) -> None:
    """A web worker process (spawned): uvicorn on its own SO_REUSEPORT socket of the set's port."""
    _die_with_parent()
    import uvicorn

    sock = reuse_port_socket(config.host, config.port, listen=True)

    from concert.server.app import create_app

    worker = f"{worker}:{os.getpid()}"
    uvicorn.Server(uvicorn.Config(create_app(config, worker=worker), **server)).run(sockets=[sock])


@dataclass
class Child:
    role: str  # "conductor" or "worker"
    index: int
    process: BaseProcess | None = None
    started: float = 0.0
    failures: int = 0  # deaths in a row, each within STABLE_S of its start
    due: float = 0.0  # when to (re)start it, monotonic seconds


@dataclass
class Supervisor:
    config: ServeConfig
    server: dict[str, Any]  # uvicorn.Config keyword arguments for the workers (limits, protocol, log level)
    log_level: str = "info"
    children: list[Child] = field(default_factory=list)
    _ctx: Any = field(default_factory=lambda: multiprocessing.get_context("spawn"))
    _sock: socket.socket | None = None

    def bind(self) -> socket.socket:
        """Hold the port (bound, not listening: it takes no connections) so another program cannot; OSError
        when it is taken."""
        self._sock = reuse_port_socket(self.config.host, self.config.port, listen=False)
        return self._sock

    def _start(self, child: Child) -> None:
        tag = f"{socket.gethostname()}:{child.role}{child.index}:{uuid.uuid4().hex[:6]}"  # the child adds its pid
        target: Callable[..., None]
        args: tuple[Any, ...]
        if child.role == "conductor":
            target, args = conductor_main, (self.config, tag, self.log_level)
        else:
            target, args = worker_main, (self.config, tag, self.server)
        child.process = self._ctx.Process(target=target, args=args, name=f"concert-{child.role}{child.index}")
        child.process.start()
        child.started = time.monotonic()

    def start(self) -> None:
        if self._sock is None:
            self.bind()
        self.children = [Child("conductor", i) for i in range(1 + self.config.standbys)]
        self.children += [Child("worker", i) for i in range(self.config.workers)]
        for child in self.children:
            self._start(child)

    def check(self) -> None:
        """Restart children that died (with back-off); call every half second or so."""
        now = time.monotonic()
        for child in self.children:
            proc = child.process
            if proc is not None and proc.is_alive():
                continue
            if proc is not None:
                code = proc.exitcode
                child.failures = 1 if now - child.started > STABLE_S else child.failures + 1
                wait = RESTART_BACKOFF_S[min(child.failures, len(RESTART_BACKOFF_S)) - 1]
                log.error("%s %d exited (code %s); restarting it in %.1f s", child.role, child.index, code, wait)
                child.process, child.due = None, now + wait
            if now >= child.due:
                self._start(child)

    def stop(self, timeout: float = STOP_GRACE_S + 2.0) -> None:
        for child in self.children:
            if child.process is not None and child.process.is_alive():
                child.process.terminate()
        deadline = time.monotonic() + timeout
        for child in self.children:
            if child.process is not None:
                child.process.join(max(0.1, deadline - time.monotonic()))
                if child.process.is_alive():
                    child.process.kill()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()

    def run(self) -> int:
        """Start everything and keep it running until SIGINT or SIGTERM."""
        stopping = False

        def _stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        self.start()
        try:
            while not stopping:
                time.sleep(0.5)
                self.check()
        finally:
            self.stop()
        return 0
