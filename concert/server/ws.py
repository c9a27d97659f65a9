"""The audience websocket: hello, then votes/suggestions in and state out.

Bad input gets a typed error frame and the connection lives on; binary frames
close with 1003, floods with 1008, frames over 4 KiB with 1009 (uvicorn's
`ws_max_size`, checked again here).
"""

from __future__ import annotations

import json
import logging
import time

from starlette.websockets import WebSocket, WebSocketDisconnect

from concert.crowd.conductor import Refused
from concert.server.identity import COOKIE_NAME
from concert.server.limits import Refusal
from concert.server.protocol import (
    MAX_FRAME_BYTES,
    Ping,
    ProtocolError,
    RateLimiter,
    Suggest,
    Upvote,
    Vote,
    error_frame,
    parse_client_message,
)
from concert.server.runtime import Runtime
from concert.store.base import StoreUnavailableError

log = logging.getLogger(__name__)

CLOSE_UNSUPPORTED = 1003  # binary frames
CLOSE_POLICY = 1008  # floods
CLOSE_TOO_BIG = 1009  # oversized frames


async def audience_socket(ws: WebSocket) -> None:
    rt: Runtime = ws.app.state.runtime
    origin = ws.headers.get("origin")
    if origin is not None and origin.rstrip("/") not in rt.config.origins:
        await ws.close(CLOSE_POLICY)  # before accepting: the handshake is refused (HTTP 403)
        return
    address = ws.client.host if ws.client is not None else "unknown"
    try:
        handle = await rt.gate.connect(address)
    except Refusal as e:
        await _refuse(ws, e)
        return
    try:
        await _serve_device(rt, ws, address)
    finally:
        await rt.gate.disconnect(address, handle)


async def _refuse(ws: WebSocket, refusal: Refusal) -> None:
    """Tell the page why (it shows the message), then close with 1008."""
    await ws.accept()
    await ws.send_text(error_frame(refusal.code, refusal.message))
    await ws.close(CLOSE_POLICY, refusal.code)


async def _serve_device(rt: Runtime, ws: WebSocket, address: str) -> None:
    token = ws.cookies.get(COOKIE_NAME) or ws.query_params.get("device")
    device = rt.signer.verify(token)
    if device is None:
        try:
            await rt.gate.mint(address)
        except Refusal as e:
            await _refuse(ws, e)
            return
        token = rt.signer.mint()
        device = rt.signer.verify(token)
    assert device is not None and token is not None  # minted tokens always verify
    await ws.accept()
    sub = None
    limiter = RateLimiter()
    try:
        state = await rt.conductor.state(rt.clients + 1)
        hello = {"type": "hello", "device": token, "join_url": rt.config.join_url, "state": state}
        await ws.send_text(json.dumps(hello))  # always the first frame: subscribe only after it
        sub = rt.fanout.subscribe(ws.send_text)
        rt.clients_changed()  # and anything since `state` is re-sent
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                break
            text = msg.get("text")
            if text is None:
                await ws.close(CLOSE_UNSUPPORTED, "binary frames are not supported; send JSON text")
                break
            if len(text.encode()) > MAX_FRAME_BYTES:
                await ws.close(CLOSE_TOO_BIG, f"frames are limited to {MAX_FRAME_BYTES} bytes")
                break
            if not limiter.allow(time.monotonic()):
                if limiter.should_close:
                    await ws.close(CLOSE_POLICY, "too many messages")
                    break
                await ws.send_text(error_frame("rate_limited", "slow down: at most 10 messages a second"))
                continue
            try:
                await rt.gate.message(address, device)
            except Refusal as e:
                await ws.send_text(error_frame(e.code, e.message))
                continue
            await ws.send_text(await handle(rt, device, text))
    except WebSocketDisconnect:
        pass
    finally:
        if sub is not None:
            await rt.fanout.unsubscribe(sub)
            rt.clients_changed()


async def handle(rt: Runtime, device: str, text: str) -> str:
    """One client frame → one reply frame (ack or typed error)."""
    try:
        msg = parse_client_message(text)
        if isinstance(msg, Vote):
            await rt.conductor.vote(device, msg.round, msg.option)
            rt.store_outage.ok()
            return json.dumps({"type": "ack", "round": msg.round, "option": msg.option})
        if isinstance(msg, Suggest):
            s = await rt.conductor.suggest(device, msg.text)
            return json.dumps({"type": "ack", "suggestion": s})
        if isinstance(msg, Upvote):
            s = await rt.conductor.upvote(device, msg.suggestion)
            return json.dumps({"type": "ack", "suggestion": s})
        if isinstance(msg, Ping):
            return json.dumps({"type": "pong"})
        raise ProtocolError("unknown_type", "unsupported message")
    except (ProtocolError, Refused) as e:
        return error_frame(e.code, e.message)
    except StoreUnavailableError as e:
        rt.store_outage.failed(e)
        return error_frame("store_unavailable", "votes are paused for a moment (the vote store is unreachable)")
    except Exception:
        log.exception("handling a client frame failed")
        return error_frame("server_error", "the server could not handle that; nothing was changed")
