"""What one network address may do: connections, new device identities, messages (pure, clock passed in).

A phone is a device (a signed cookie), and devices sit behind addresses. A hostile laptop can mint devices by
dropping its cookie and flood from many sockets; a venue's NAT puts hundreds of honest phones behind one
address. So every cap is per address and configurable (`concert serve --per-address-…`):

    connections open at once            connections_per_address   (16; raise it for a venue behind one NAT)
    new devices minted per minute       new_devices_per_minute    (6)
    messages per device per minute      device_messages_per_minute (100, OWASP's starting point)
    messages per address per minute     address_messages_per_minute (600)

Buckets refill continuously (token buckets, bursts up to one minute's worth). `Gate` keeps its state in
memory per process; idle entries are dropped, so memory stays bounded by the addresses and devices active in
the last `idle_seconds`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

# What a refused phone is told (code, message): one text for a process's own caps and for the shared ones.
TOO_MANY_DEVICES = ("too_many_devices", "too many new devices from your network; try again in a minute")
PHONE_TOO_FAST = ("rate_limited", "slow down: too many messages from this phone; wait a few seconds")
NETWORK_TOO_FAST = ("rate_limited", "slow down: too many messages from your network; wait a few seconds")


def too_many_connections(held: int) -> tuple[str, str]:
    return "too_many_connections", f"your network already has {held} connections open; close a tab and try again"


@dataclass(frozen=True)
class LimitsConfig:
    connections_per_address: int = 16  # websockets one address may hold open at once
    new_devices_per_minute: float = 6.0  # device identities one address may mint per minute
    device_messages_per_minute: float = 100.0  # frames one device may send per minute (all its connections)
    address_messages_per_minute: float = 600.0  # frames one address may send per minute (all its devices)
    idle_seconds: float = 600.0  # state of an address or device unseen this long is forgotten

    def __post_init__(self) -> None:
        if isinstance(self.connections_per_address, bool) or not isinstance(self.connections_per_address, int):
            raise ValueError(f"connections_per_address must be an integer, got {self.connections_per_address!r}")
        if self.connections_per_address < 1:
            raise ValueError(f"connections_per_address must be >= 1, got {self.connections_per_address}")
        for name in ("new_devices_per_minute", "device_messages_per_minute", "address_messages_per_minute"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        if not self.idle_seconds > 0:
            raise ValueError(f"idle_seconds must be > 0, got {self.idle_seconds!r}")


@dataclass
class Bucket:
    """A token bucket: `per_minute` tokens a minute, holding at most one minute's worth."""

    per_minute: float
    tokens: float = field(default=-1.0)  # -1: full on first use
    last: float = 0.0  # when it was last refilled, seconds

    def take(self, now: float) -> bool:
        if self.tokens < 0:
            self.tokens, self.last = self.per_minute, now
        self.tokens = min(self.per_minute, self.tokens + max(0.0, now - self.last) * self.per_minute / 60.0)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass
class _Address:
    connections: int
    new_devices: Bucket
    messages: Bucket
    seen: float


class Refusal(Exception):
    """A connection or message over a cap; `code` goes back to the client, `message` says which cap."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Gate:
    """The caps of `LimitsConfig`, per address and per device. One per server process."""

    def __init__(self, config: LimitsConfig) -> None:
        self.config = config
        self._addresses: dict[str, _Address] = {}
        self._devices: dict[str, tuple[Bucket, float]] = {}  # device -> (messages bucket, last seen)
        self.refused: dict[str, int] = {}  # refusals by code, for /metrics
        self._swept = 0.0  # when idle entries were last dropped

    def _address(self, address: str, now: float) -> _Address:
        cfg = self.config
        if now - self._swept > self.config.idle_seconds / 10:  # amortised: one sweep per tenth of the idle time
            self._forget_idle(now)
            self._swept = now
        entry = self._addresses.get(address)
        if entry is None:
            entry = _Address(0, Bucket(cfg.new_devices_per_minute), Bucket(cfg.address_messages_per_minute), now)
            self._addresses[address] = entry
        entry.seen = now
        return entry

    def refuse(self, code: str, message: str) -> Refusal:
        """A Refusal, counted in `refused` (for /metrics); also used by the shared caps of several workers."""
        self.refused[code] = self.refused.get(code, 0) + 1
        return Refusal(code, message)

    def connect(self, address: str, now: float) -> None:
        """A websocket opens from `address`; Refusal when it already holds its share."""
        entry = self._address(address, now)
        if entry.connections >= self.config.connections_per_address:
            raise self.refuse(*too_many_connections(entry.connections))
        entry.connections += 1

    def disconnect(self, address: str, now: float) -> None:
        entry = self._addresses.get(address)
        if entry is not None:
            entry.connections = max(0, entry.connections - 1)
            entry.seen = now

    def mint(self, address: str, now: float) -> None:
        """`address` asks for a new device identity; Refusal over `new_devices_per_minute`."""
        if not self._address(address, now).new_devices.take(now):
            raise self.refuse(*TOO_MANY_DEVICES)

    def message(self, address: str, device: str, now: float) -> None:
        """One frame from `device` at `address`; Refusal over either rate."""
        entry = self._address(address, now)
        bucket, _ = self._devices.get(device) or (Bucket(self.config.device_messages_per_minute), now)
        self._devices[device] = (bucket, now)
        if not bucket.take(now):
            raise self.refuse(*PHONE_TOO_FAST)
        if not entry.messages.take(now):
            raise self.refuse(*NETWORK_TOO_FAST)

    def _forget_idle(self, now: float) -> None:
        horizon = now - self.config.idle_seconds
        self._addresses = {a: e for a, e in self._addresses.items() if e.connections > 0 or e.seen >= horizon}
        self._devices = {d: v for d, v in self._devices.items() if v[1] >= horizon}

    @property
    def tracked(self) -> tuple[int, int]:
        """(addresses, devices) held in memory."""
        return len(self._addresses), len(self._devices)


class LocalLimits:
    """The caps of one server process, as the websocket and page handlers call them (awaitable, like the
    shared caps of `concert.cluster.limits.SharedLimits` that several worker processes use)."""

    def __init__(self, config: LimitsConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.gate = Gate(config)
        self.clock = clock

    @property
    def refused(self) -> dict[str, int]:
        return self.gate.refused

    async def connect(self, address: str) -> str:
        """Admit a websocket from `address`; a handle for `disconnect`. Refusal over the cap."""
        self.gate.connect(address, self.clock())
        return address

    async def disconnect(self, address: str, handle: str) -> None:
        self.gate.disconnect(address, self.clock())

    async def mint(self, address: str) -> None:
        self.gate.mint(address, self.clock())

    async def message(self, address: str, device: str) -> None:
        self.gate.message(address, device, self.clock())
