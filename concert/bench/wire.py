"""A lean websocket client for load generation: `websockets`' sans-I/O `ClientProtocol` on a bare asyncio Protocol.

Ten thousand simulated phones share the machine with the server being measured, so every microsecond a client
spends on a frame is taken from the server. The asyncio client of `websockets` wakes a task, a future and a message
assembler for each frame; here a frame is parsed by the same sans-I/O protocol (handshake, masking, pings, close)
and handed to a callback inside `data_received`, as raw bytes, with no task per connection.

    wire = await open_wire("ws://127.0.0.1:8000/ws", on_text=lambda data: ...)   # after the 101 response
    wire.send_text('{"type": "vote", ...}'); wire.close()
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

OnText = Callable[[bytes], None]


class WireError(ConnectionError):
    """The server refused the handshake or the connection broke before it completed."""


class Wire(asyncio.Protocol):
    """One client connection; `on_text` gets each text message's UTF-8 bytes, in order."""

    def __init__(self, url: str, on_text: OnText, max_size: int = 2**20) -> None:
        self.protocol = ClientProtocol(parse_uri(url), max_size=max_size)
        self.on_text = on_text
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self._parts: list[bytes] = []  # fragments of a message in progress

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.protocol.send_request(self.protocol.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Response):
                if event.status_code == 101 and self.protocol.handshake_exc is None:
                    self.opened.set_result(None)
                elif not self.opened.done():
                    self.opened.set_exception(WireError(f"handshake refused: HTTP {event.status_code}"))
            elif isinstance(event, Frame):
                self._frame(event)
        self._flush()  # pongs and the closing handshake

    def _frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.TEXT or (frame.opcode is Opcode.CONT and self._parts):
            if frame.fin and not self._parts:
                self.on_text(bytes(frame.data))
            else:
                self._parts.append(bytes(frame.data))
                if frame.fin:
                    data, self._parts = b"".join(self._parts), []
                    self.on_text(data)

    def send_text(self, text: str) -> None:
        if self.transport is None or self.transport.is_closing():
            raise WireError("the connection is closed")
        self.protocol.send_text(text.encode())
        self._flush()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.protocol.send_close(1000)
            self._flush()
            self.transport.close()

    def _flush(self) -> None:
        if self.transport is None:
            return
        for chunk in self.protocol.data_to_send():
            if chunk:
                self.transport.write(chunk)
            elif self.transport.can_write_eof():
                self.transport.write_eof()  # the protocol's end of stream

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(WireError(f"connection lost during the handshake: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)


async def open_wire(url: str, on_text: OnText, timeout: float = 60.0) -> Wire:
    """Connect to a ws:// URL and complete the handshake; WireError if it is refused or breaks."""
    uri = parse_uri(url)
    loop = asyncio.get_running_loop()
    _, wire = await asyncio.wait_for(loop.create_connection(lambda: Wire(url, on_text), uri.host, uri.port), timeout)
    await asyncio.wait_for(wire.opened, timeout)
    return wire
