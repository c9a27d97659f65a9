"""The HTTP protocol `concert serve` runs: uvicorn's h11, with a deadline on every request head.

httptools (uvicorn's default when installed) read a request with 32 MiB of headers; h11 stops at
`h11_max_incomplete_event_size` (see `concert.cli`). Neither times out a client that drips its headers a
line a second (slowloris): such sockets stayed open for minutes, and enough of them exhaust the server's
descriptors. `HeadDeadlineH11` closes a connection whose request line and headers are not complete within
`HEAD_SECONDS` of connecting, or of the previous response on a kept-alive connection. It also keeps the
kernel's send buffer small, so a `/stream` listener that stops reading fills its queue and is dropped within
seconds instead of after minutes of buffered audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_SECONDS = 10.0  # time a client has to send a whole request head, seconds
SEND_BUFFER_BYTES = 64 * 1024  # kernel send buffer per connection: 4 s of the 128 kbit/s stream, bytes


class HeadDeadlineH11(H11Protocol):
    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:  # a small kernel buffer: a client that stops reading is noticed in seconds
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the head is in (a request, or a websocket upgrade)
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # a kept-alive connection's next head gets the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._head_deadline = self.loop.call_later(HEAD_SECONDS, self._head_timeout)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timeout(self) -> None:
        self._head_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()
