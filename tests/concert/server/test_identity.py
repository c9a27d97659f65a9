from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from concert.server.identity import COOKIE_NAME, DeviceSigner

SECRET = b"0123456789abcdef-test-secret"


def _flip(s: str, i: int) -> str:
    """`s` with its i-th character swapped for another urlsafe-base64 character."""
    return s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1 :]


def test_round_trip() -> None:
    signer = DeviceSigner(SECRET)
    token = signer.mint()
    device_id, signature = token.split(".")
    assert signer.verify(token) == device_id
    assert len(base64.urlsafe_b64decode(device_id + "==")) == 16
    assert len(base64.urlsafe_b64decode(signature + "==")) * 8 >= 128
    assert "=" not in token
    assert DeviceSigner(bytes(SECRET)).verify(token) == device_id  # same secret, e.g. after a restart


def test_every_mint_is_a_new_device() -> None:
    signer = DeviceSigner(SECRET)
    ids = {signer.verify(signer.mint()) for _ in range(1000)}
    assert len(ids) == 1000 and None not in ids


@pytest.mark.parametrize("i", [0, 10, 21, 23, 33, 44])
def test_tampered_token_fails(i: int) -> None:
    signer = DeviceSigner(SECRET)
    token = signer.mint()
    assert signer.verify(_flip(token, i)) is None


def test_swapped_signature_fails() -> None:
    signer = DeviceSigner(SECRET)
    (id_a, _), (_, sig_b) = signer.mint().split("."), signer.mint().split(".")
    assert signer.verify(f"{id_a}.{sig_b}") is None


def test_different_secret_fails() -> None:
    token = DeviceSigner(SECRET).mint()
    assert DeviceSigner(b"another-secret-of-16+bytes").verify(token) is None


@pytest.mark.parametrize(
    "token",
    [None, "", ".", "a.b", "x" * 45, "x" * 10_000_000, 42, b"bytes", "é" * 45],
)
def test_garbage_does_not_verify(token: object) -> None:
    assert DeviceSigner(SECRET).verify(token) is None  # type: ignore[arg-type]


def test_token_with_extra_parts_fails() -> None:
    signer = DeviceSigner(SECRET)
    token = signer.mint()
    for bad in [token + ".", "." + token, token + "=", " " + token, token + "\n", token.replace(".", "..")]:
        assert signer.verify(bad) is None, bad


@pytest.mark.parametrize("secret", [b"", b"short", b"x" * 15])
def test_short_secret_is_refused(secret: bytes) -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        DeviceSigner(secret)


def test_text_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="must be bytes"):
        DeviceSigner("a text secret of many chars")  # type: ignore[arg-type]


def test_repr_hides_the_secret() -> None:
    assert "test-secret" not in repr(DeviceSigner(SECRET))


def test_cookie_name() -> None:
    assert COOKIE_NAME == "concert_device"


@given(st.text(max_size=200))
def test_arbitrary_text_never_verifies_or_raises(text: str) -> None:
    assert DeviceSigner(SECRET).verify(text) is None


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=40, max_size=50))
def test_token_shaped_text_never_verifies(text: str) -> None:
    assert DeviceSigner(SECRET).verify(text) is None


@given(st.integers(0, 44), st.characters())
def test_any_single_character_change_fails(i: int, c: str) -> None:
    signer = DeviceSigner(SECRET)
    token = signer.mint()
    changed = token[:i] + c + token[i + 1 :]
    assert signer.verify(changed) == (token.split(".")[0] if changed == token else None)
