"""The websocket protocol, sans I/O: client frames in, typed messages out.

Every client frame is a JSON object with a `type`. Parsing never touches sockets,
so every bad input is tested without a network; each refusal is a
`ProtocolError` carrying the `code` sent back to the client.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_FRAME_BYTES = 4096  # larger frames are closed with 1009 by the server
MAX_OPTION_CHARS = 64  # option ids are short ("techno", "s:12", "energy_up")
MAX_TEXT_CHARS = 400  # raw suggestion text before moderation trims and caps it


class ProtocolError(ValueError):
    """A client frame the server refuses; `code` goes back in the error reply."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Vote:
    round: int  # round id the vote is for (direction or moves round)
    option: str  # option id within that round


@dataclass(frozen=True)
class Suggest:
    text: str  # free-text style suggestion, moderated before it is kept


@dataclass(frozen=True)
class Upvote:
    suggestion: str  # suggestion id


@dataclass(frozen=True)
class Ping:
    pass


ClientMessage = Vote | Suggest | Upvote | Ping


def _field(obj: dict[str, Any], name: str, kind: type, kind_name: str) -> Any:
    if name not in obj:
        raise ProtocolError("bad_field", f"'{obj.get('type')}' message needs a '{name}' field")
    value = obj[name]
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise ProtocolError("bad_field", f"'{name}' must be {kind_name}, got {json.dumps(value)[:40]}")
    return value


def parse_client_message(text: str) -> ClientMessage:
    """Parse one text frame; raises ProtocolError with a client-facing code."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES:
        raise ProtocolError("too_big", f"frames are limited to {MAX_FRAME_BYTES} bytes")
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise ProtocolError("bad_json", f"frame is not valid JSON ({e.__class__.__name__})") from None
    if not isinstance(obj, dict):
        raise ProtocolError("bad_json", "frame must be a JSON object with a 'type' field")
    kind = obj.get("type")
    if kind == "vote":
        round_id = _field(obj, "round", int, "an integer round id")
        option = _field(obj, "option", str, "an option id string")
        if not option or len(option) > MAX_OPTION_CHARS:
            raise ProtocolError("bad_field", f"'option' must be 1..{MAX_OPTION_CHARS} characters")
        return Vote(round_id, option)
    if kind == "suggest":
        text_value = _field(obj, "text", str, "a string")
        if len(text_value) > MAX_TEXT_CHARS:
            raise ProtocolError("refused", f"suggestion is {len(text_value)} characters; keep it under 80")
        return Suggest(text_value)
    if kind == "upvote":
        sid = _field(obj, "suggestion", str, "a suggestion id string")
        if not sid or len(sid) > MAX_OPTION_CHARS:
            raise ProtocolError("bad_field", f"'suggestion' must be 1..{MAX_OPTION_CHARS} characters")
        return Upvote(sid)
    if kind == "ping":
        return Ping()
    shown = json.dumps(kind)[:40] if kind is not None else "missing"
    raise ProtocolError("unknown_type", f"unknown message type {shown}; use vote, suggest, upvote or ping")


def error_frame(code: str, message: str) -> str:
    return json.dumps({"type": "error", "code": code, "message": message})


@dataclass
class RateLimiter:
    """Token bucket per connection: `rate` messages per second, bursts up to `burst`."""

    rate: float = 10.0  # messages per second, sustained
    burst: float = 20.0  # messages allowed at once
    strikes_to_close: int = 50  # refused messages before the connection is closed (1008)
    tokens: float = -1.0
    last: float = 0.0
    strikes: int = 0

    def allow(self, now: float) -> bool:
        if self.tokens < 0:
            self.tokens, self.last = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        self.strikes += 1
        return False

    @property
    def should_close(self) -> bool:
        return self.strikes >= self.strikes_to_close
