"""The floor of `concert bench votes`: a bare `websockets` server speaking the same frames as `concert serve`.

It acks every vote and broadcasts a state frame of the same shape (tallies included) at the same rate as the
set, with `websockets.broadcast` and nothing else: no store, no limits, no conductor, no audio. What the real
server costs beyond it is the price of everything it does; the bench prints both and their ratio.

    python -m concert.bench.floor --port 8765 --state-hz 4 --max-frames-per-s 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time

from websockets.asyncio.server import ServerConnection, broadcast, serve

from concert.bench.crowd import run_loop

OPTIONS = [{"id": i, "label": i.title(), "kind": "style", "style": i} for i in ("stay", "techno", "trance", "lofi")]


class Floor:
    def __init__(self, state_hz: float, max_frames_per_s: float) -> None:
        self.state_hz = state_hz
        self.max_frames_per_s = max_frames_per_s
        self.clients: set[ServerConnection] = set()
        self.tallies: dict[str, int] = {}
        self.votes: dict[int, str] = {}  # connection id -> its vote (one per connection, the last one wins)
        self.changed = asyncio.Event()

    def state(self) -> dict[str, object]:
        return {
            "ts": time.time(),
            "round": 1,
            "options": OPTIONS,
            "tallies": dict(self.tallies),
            "votes": sum(self.tallies.values()),
            "moves": {"round": 2, "options": [], "tallies": {}, "votes": 0},
            "clients": len(self.clients),
        }

    async def handler(self, ws: ServerConnection) -> None:
        self.clients.add(ws)
        try:
            await ws.send(json.dumps({"type": "hello", "device": "floor", "state": self.state()}))
            async for raw in ws:
                msg = json.loads(raw)
                if msg.get("type") == "vote":
                    option = str(msg.get("option"))
                    previous = self.votes.get(id(ws))
                    if previous is not None:
                        self.tallies[previous] -= 1
                    self.votes[id(ws)] = option
                    self.tallies[option] = self.tallies.get(option, 0) + 1
                    self.changed.set()
                    await ws.send(json.dumps({"type": "ack", "round": 1, "option": option}))
        finally:
            self.clients.discard(ws)

    async def publish(self) -> None:
        while True:
            await self.changed.wait()
            self.changed.clear()
            broadcast(self.clients, json.dumps({"type": "state", **self.state()}))
            await asyncio.sleep(max(1.0 / self.state_hz, len(self.clients) / self.max_frames_per_s))


async def main(port: int, state_hz: float, max_frames_per_s: float) -> None:
    floor = Floor(state_hz, max_frames_per_s)
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with serve(floor.handler, "127.0.0.1", port, compression=None, ping_interval=None, max_size=4096):
        task = asyncio.create_task(floor.publish())
        print("floor ready", flush=True)
        await stop
        task.cancel()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--state-hz", type=float, default=4.0)
    p.add_argument("--max-frames-per-s", type=float, default=2000.0)
    a = p.parse_args()
    run_loop(main(a.port, a.state_hz, a.max_frames_per_s))
