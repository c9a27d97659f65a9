"""Serve configuration: one frozen dataclass built once by the CLI and passed down."""

from __future__ import annotations

import contextlib
import functools
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path

from concert.crowd.aggregator import CROWD_MODES
from concert.outputs.icecast import IcecastConfig
from concert.server.limits import LimitsConfig
from engine.backends import BACKENDS, DEFAULT_BACKEND, DEFAULT_PRECISION, PRECISIONS

OUTPUTS = ("none", "speakers")
TEXT_MODEL = ("auto", "on", "off")


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"  # interface to bind; 0.0.0.0 to let phones on the LAN in
    port: int = 8000  # TCP port
    store: str = "memory://"  # vote store URL: memory:// or redis://host:port/db
    output: str = "none"  # extra local output besides the HTTP stream: none | speakers
    record: Path | None = None  # directory for the recording and setlist, None = no recording
    round_bars: int = 8  # bars per phrase and per live-moves round
    song_phrases: int = 4  # phrases per song; the direction round closes at the song's end
    close_lead_bars: int | None = None  # bars before a boundary a round closes; None = 2 (0 when round_bars is 1)
    mode: str = "democracy"  # democracy | blend | anarchy
    backend: str = DEFAULT_BACKEND  # audio source: synth | embedded (the trained token model) | musicgen
    model_path: Path | None = None  # musicgen: a local MusicGen folder (required); embedded: a weights folder
    precision: str = DEFAULT_PRECISION  # token model weights: int8 (fastest on CPU) | bfloat16 | float32
    torch_threads: int = 1  # intra-op threads for a token-model backend (the other core serves the crowd)
    start_style: str = "house"  # genre id the set opens with
    seed: int = 0  # sampling seed of the source
    sample_rate: int = 24000  # Hz, the source's rate
    lookahead: float = 0.6  # seconds rendered ahead of playback
    engine_lookahead: float = 1.5  # seconds a token backend keeps ahead (its 0.5 s chunks plus the crossfade)
    crossfade: float = 0.4  # seconds of crossfade when the synth takes over from a lagging token backend
    block: float = 0.1  # seconds per block handed to the outputs
    state_hz: float = 4.0  # maximum state broadcasts per second
    max_frames_per_s: float = 2000.0  # state frames sent per second to all clients together (big crowds get fewer)
    dj_token: str = field(default_factory=lambda: secrets.token_urlsafe(12))  # operator console token
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)  # HMAC key for device cookies
    public_url: str | None = None  # URL printed and put in the QR code; None = http://host:port/
    speakers_device: str | None = None  # sounddevice device name or index for --output speakers
    allowed_origins: tuple[str, ...] = ()  # web origins besides the served one that may open the websocket
    limits: LimitsConfig = field(default_factory=LimitsConfig)  # what one network address may do
    workers: int = 1  # web worker processes; more than 1 runs the set in its own conductor process, on Redis
    standbys: int = 1  # with workers > 1: conductor processes waiting to take over if the playing one dies
    lease_s: float = 3.0  # seconds the conductor's Redis lease lives unrenewed (a standby takes over after it)
    status_line: bool = False  # print the booth's status line (in place on a terminal, a line a minute in a log)
    icecast: tuple[IcecastConfig, ...] = ()  # Icecast mounts the set is pushed to, as their source
    text_model: str = "auto"  # suggestions in any words: auto (when installed) | on (required) | off

    def __post_init__(self) -> None:
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {self.output!r}")
        if self.mode not in CROWD_MODES:
            raise ValueError(f"mode must be one of {CROWD_MODES}, got {self.mode!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.backend == "musicgen" and self.model_path is None:
            raise ValueError("backend 'musicgen' needs model_path (--model PATH): a local MusicGen checkpoint folder")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not 1 <= self.round_bars <= 64:
            raise ValueError(f"round_bars must be within 1..64, got {self.round_bars}")
        if not 1 <= self.song_phrases <= 32:
            raise ValueError(f"song_phrases must be within 1..32, got {self.song_phrases}")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be within 1..65535, got {self.port}")
        if not 1 <= self.torch_threads <= 256:
            raise ValueError(f"torch_threads must be within 1..256, got {self.torch_threads}")
        if not 1 <= self.workers <= 64:
            raise ValueError(f"workers must be within 1..64, got {self.workers}")
        if self.workers > 1 and not self.store.startswith(("redis://", "rediss://")):
            raise ValueError("several workers share the set through Redis: give --store redis://host:port/db")
        if not 0 <= self.standbys <= 8:
            raise ValueError(f"standbys must be within 0..8, got {self.standbys}")
        if not 0.5 <= self.lease_s <= 60:
            raise ValueError(f"lease_s must be within 0.5..60 seconds, got {self.lease_s}")
        if self.text_model not in TEXT_MODEL:
            raise ValueError(f"text_model must be one of {TEXT_MODEL}, got {self.text_model!r}")
        if len(self.secret) < 16:
            raise ValueError("secret must be at least 16 bytes")

    @property
    def lead_bars(self) -> int:
        if self.close_lead_bars is not None:
            return self.close_lead_bars
        return 0 if self.round_bars == 1 else min(2, self.round_bars - 1)

    @functools.cached_property
    def origins(self) -> frozenset[str]:
        """`Origin` headers the websocket accepts: the join URL's, this host and port by name and loopback
        address, and `allowed_origins`. A page elsewhere (on the venue Wi-Fi, say) cannot vote from its
        visitors' browsers. Worked out once (the LAN address takes a socket call); every handshake reads it."""
        served = {self.join_url.rstrip("/")}
        hosts = (
            {self.host, "localhost", "127.0.0.1", lan_address()}
            if self.host in ("0.0.0.0", "::", "")
            else {self.host, "localhost" if self.host == "127.0.0.1" else self.host}
        )
        served |= {f"http://{h}:{self.port}" for h in hosts}
        return frozenset(served | {o.rstrip("/") for o in self.allowed_origins})

    @property
    def join_url(self) -> str:
        """The URL phones open (and the QR code holds)."""
        if self.public_url:
            return self.public_url
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = lan_address()
        elif host == "127.0.0.1":
            host = "localhost"
        return f"http://{host}:{self.port}/"


def lan_address() -> str:
    """This machine's address on its local network, for phones to reach; "localhost" if none.

    A UDP socket "connected" to a documentation address picks the outgoing interface
    without sending a packet.
    """
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: route lookup only, nothing is sent
        addr = str(s.getsockname()[0])
        if not addr.startswith("127."):
            return addr
    return "localhost"
