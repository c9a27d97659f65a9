"""Signed device tokens: who a phone is, without accounts.

A token is "<device id>.<signature>": the device id is 16 random bytes and the signature the
first 16 bytes (128 bits) of HMAC-SHA256(secret, device id), both urlsafe base64 without
padding (22 characters each). It travels in the `COOKIE_NAME` cookie; a phone cannot forge
another id without the server's secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

COOKIE_NAME = "concert_device"
MIN_SECRET_BYTES = 16
DEVICE_ID_BYTES = 16  # random bytes per device id
SIGNATURE_BYTES = 16  # HMAC-SHA256 truncated to 128 bits
_PART = r"[A-Za-z0-9_-]{22}"  # 16 bytes in urlsafe base64, no padding
_TOKEN = re.compile(rf"({_PART})\.({_PART})")
_TOKEN_CHARS = 45  # 22 + 1 + 22; longer input is rejected before any other work


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class DeviceSigner:
    secret: bytes = field(repr=False)  # HMAC key, at least 16 bytes; keep it stable across restarts

    def __post_init__(self) -> None:
        if not isinstance(self.secret, bytes):
            raise ValueError(f"secret must be bytes, got {type(self.secret).__name__}")
        if len(self.secret) < MIN_SECRET_BYTES:
            raise ValueError(f"secret must be at least {MIN_SECRET_BYTES} bytes, got {len(self.secret)}")

    def _sign(self, device_id: str) -> str:
        digest = hmac.new(self.secret, device_id.encode("ascii"), hashlib.sha256).digest()
        return _b64(digest[:SIGNATURE_BYTES])

    def mint(self) -> str:
        """A fresh token for a new device."""
        device_id = _b64(secrets.token_bytes(DEVICE_ID_BYTES))
        return f"{device_id}.{self._sign(device_id)}"

    def verify(self, token: str | None) -> str | None:
        """The device id if `token` is one of ours, else None. Never raises, whatever it is given."""
        if not isinstance(token, str) or len(token) != _TOKEN_CHARS:
            return None
        match = _TOKEN.fullmatch(token)
        if match is None:
            return None
        device_id, signature = match.groups()
        if not hmac.compare_digest(signature, self._sign(device_id)):
            return None
        return device_id
