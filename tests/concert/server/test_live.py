"""End to end over the real server: real websocket clients, real HTTP stream, real audio analysis."""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from engine.music.styles import genre
from engine.synth.analysis import estimate_bpm
from tests.support.server import ONE_NAT, Server, serve

pytestmark = pytest.mark.slow

DRUM_GENRES = ("techno", "trance", "drum-and-bass", "hip-hop", "synthwave", "house")  # tempo is measurable


def recv_json(ws: ClientConnection, timeout: float = 10.0) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def until(ws: ClientConnection, pred, timeout: float, what: str) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = recv_json(ws, timeout=max(0.1, deadline - time.monotonic()))
        if pred(msg):
            return msg
    raise AssertionError(f"timed out waiting for {what}")


def reply(ws: ClientConnection, frame: dict | str) -> dict:
    """Send a frame and return the first ack/error reply (state frames are skipped)."""
    ws.send(frame if isinstance(frame, str) else json.dumps(frame))
    return until(ws, lambda m: m["type"] in ("ack", "error"), 10, "a reply")


def get_json(url: str, token: str | None = None, body: dict | None = None, operator: str = "") -> tuple[int, dict]:
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode())
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if operator:
        req.add_header("X-Operator", operator)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read())


class StreamTap:
    """Reads /stream in a thread into memory, like a phone's audio element."""

    def __init__(self, url: str) -> None:
        self.buf = bytearray()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(url,), daemon=True)
        self.thread.start()

    def _run(self, url: str) -> None:
        with httpx.stream("GET", url, timeout=30) as r:
            assert r.headers["content-type"].startswith("audio/mpeg")
            for piece in r.iter_bytes():
                self.buf += piece
                if self.stop.is_set():
                    return

    def audio(self) -> tuple[np.ndarray, int]:
        self.stop.set()
        self.thread.join(10)
        pcm, sr = sf.read(io.BytesIO(bytes(self.buf)), dtype="float32")
        return pcm, sr


@pytest.fixture(scope="module")
def slow_rounds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Long rounds (16 bars), so protocol tests never race a round close."""
    with serve(
        "--round-bars",
        "16",
        "--song-phrases",
        "1",
        "--dj-token",
        "sesame",
        *ONE_NAT,
        log_dir=tmp_path_factory.mktemp("srv"),
    ) as s:
        yield s


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_a_vote_changes_the_prompt_and_the_music_on_the_next_phrase(
    store: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue("redis_url") if store == "redis" else "memory://"
    args = ("--round-bars", "1", "--song-phrases", "1", "--style", "house", "--store", url, *ONE_NAT)
    with serve(*args, log_dir=tmp_path) as s:
        tap = StreamTap(f"{s.http}/stream")
        with connect(s.ws) as ws:
            hello = recv_json(ws)
            assert hello["type"] == "hello" and hello["device"]
            time.sleep(4)  # some house in the stream first
            # the style option furthest in tempo from house, so the change is audible as tempo
            target = None
            for _ in range(20):  # rounds are one bar long: wait for a ballot offering a clearly different tempo
                st = until(ws, lambda m: m["type"] == "state", 10, "state")
                styles = [o["id"] for o in st["options"] if o["kind"] == "style" and o["id"] in DRUM_GENRES]
                styles = [g for g in styles if abs(genre(g).bpm - 124) >= 20]
                if not styles:
                    continue
                target = max(styles, key=lambda g: abs(genre(g).bpm - 124))
                r = reply(ws, {"type": "vote", "round": st["round"], "option": target})
                if r["type"] == "ack":
                    break
                assert r["code"] == "wrong_round", r
            assert target is not None
            voted = until(
                ws,
                lambda m: (
                    m["type"] == "state"
                    and m["tallies"].get(target, 0) >= 1
                    or m["type"] == "state"
                    and (m["last_result"] or {}).get("winner") == target
                ),
                10,
                "tally",
            )
            assert voted
            result = until(
                ws,
                lambda m: m["type"] == "state" and (m["last_result"] or {}).get("winner") == target,
                15,
                "the round result",
            )
            assert result["prompt"][0]["style"] == target  # the crowd's choice leads the mix
            assert result["last_result"]["lands_at_bar"] >= result["bar"]
            goal = genre(target).bpm
            landed = until(ws, lambda m: m["type"] == "state" and m["now_playing"]["genre"] == target, 20, "landing")
            assert landed["bar"] >= result["last_result"]["lands_at_bar"]
            until(
                ws,
                lambda m: m["type"] == "state" and abs(m["now_playing"]["bpm"] - goal) < abs(124 - goal) * 0.4,
                30,
                "the tempo glide",
            )
            time.sleep(8)
        pcm, sr = tap.audio()
    expected = 0.75 * goal + 0.25 * 124  # the mix after one round at the default inertia of 0.25
    # search within ±40 % of each tempo so octave errors cannot pass; 124 and `expected` are >= 15 apart
    before = estimate_bpm(pcm[: 4 * sr], sr, lo=124 / 1.4, hi=124 * 1.4)
    after = estimate_bpm(pcm[-7 * sr :], sr, lo=expected / 1.4, hi=expected * 1.4)
    assert abs(before - 124) < 124 * 0.06, before
    assert abs(after - expected) < expected * 0.06, (before, after, target)


def test_one_vote_per_device_last_vote_wins_and_forged_ids_get_a_new_identity(slow_rounds: Server) -> None:
    with connect(slow_rounds.ws) as a:
        hello = recv_json(a)
        token = hello["device"]
        rid = hello["state"]["round"]
        opts = [o["id"] for o in hello["state"]["options"]]
        with connect(f"{slow_rounds.ws}?device={token}") as a2:
            assert recv_json(a2)["device"] == token  # same device, second tab
            assert reply(a, {"type": "vote", "round": rid, "option": opts[1]})["type"] == "ack"
            assert reply(a2, {"type": "vote", "round": rid, "option": opts[2]})["type"] == "ack"
            assert reply(a2, {"type": "vote", "round": rid, "option": opts[2]})["type"] == "ack"  # retry: idempotent
        _, st = get_json(f"{slow_rounds.http}/api/state")
        assert st["tallies"].get(opts[1], 0) == 0
        assert st["tallies"][opts[2]] == 1
        forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        with connect(f"{slow_rounds.ws}?device={forged}") as f:
            assert recv_json(f)["device"] not in (forged, token)


def test_bad_input_gets_typed_errors_and_closes_and_loses_nothing(slow_rounds: Server) -> None:
    stack = contextlib.ExitStack()
    voters = []
    hello = None
    for _ in range(5):
        ws = stack.enter_context(connect(slow_rounds.ws))
        hello = recv_json(ws)
        voters.append(ws)
    assert hello is not None
    rid, stay = hello["state"]["round"], "stay"
    _, st0 = get_json(f"{slow_rounds.http}/api/state")
    base = st0["tallies"].get(stay, 0)
    for ws in voters:
        assert reply(ws, {"type": "vote", "round": rid, "option": stay})["type"] == "ack"

    with connect(slow_rounds.ws) as bad:
        recv_json(bad)
        assert reply(bad, "{not json")["code"] == "bad_json"
        assert reply(bad, '{"type":"explode"}')["code"] == "unknown_type"
        assert reply(bad, {"type": "vote", "round": rid + 999, "option": stay})["code"] == "wrong_round"
        assert reply(bad, {"type": "vote", "round": rid, "option": "nope"})["code"] == "unknown_option"
        assert reply(bad, {"type": "vote", "round": "x", "option": stay})["code"] == "bad_field"
        assert reply(bad, {"type": "upvote", "suggestion": "999999"})["code"] == "unknown_suggestion"
        assert reply(bad, {"type": "vote", "round": rid, "option": stay})["type"] == "ack"  # still serving

    def closed_with(frame: bytes | str) -> int | None:
        with connect(slow_rounds.ws, max_size=None) as ws:
            recv_json(ws)
            ws.send(frame)
            try:
                while True:
                    ws.recv(timeout=10)
            except ConnectionClosed as e:
                return e.rcvd.code if e.rcvd else None

    assert closed_with(b"\x00\x01binary") == 1003
    assert closed_with("x" * 5000) == 1009

    flood = stack.enter_context(connect(slow_rounds.ws))
    recv_json(flood)
    codes = []
    with pytest.raises(ConnectionClosed) as closed:
        for _ in range(400):
            try:
                flood.send(json.dumps({"type": "vote", "round": rid, "option": stay}))
            except ConnectionClosed:
                break  # closed mid-flood: the replies already sent are still readable
        while True:
            m = recv_json(flood)
            if m["type"] == "error":
                codes.append(m["code"])
    assert "rate_limited" in codes
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008

    _, st = get_json(f"{slow_rounds.http}/api/state")
    assert st["round"] == rid
    assert st["tallies"][stay] == base + 5 + 1 + 1  # five voters, the bad client, the flooder's first vote
    for ws in voters:  # everyone else is still served
        assert reply(ws, {"type": "vote", "round": rid, "option": stay})["type"] == "ack"
    stack.close()


def test_http_endpoints(slow_rounds: Server) -> None:
    with urllib.request.urlopen(f"{slow_rounds.http}/", timeout=10) as r:
        assert r.status == 200
        assert "concert_device=" in r.headers["set-cookie"]
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert b"<html" in r.read().lower()
    status, health = get_json(f"{slow_rounds.http}/healthz")
    assert status == 200 and health["ok"] is True
    _, st = get_json(f"{slow_rounds.http}/api/state")
    for key in ("round", "options", "tallies", "closes_in", "prompt", "now_playing", "moves", "voting"):
        assert key in st
    assert st["options"][0]["id"] == "stay"
    assert {"genre", "bpm", "section"} <= set(st["now_playing"])
    assert st["closes_in"] > 0
    with urllib.request.urlopen(f"{slow_rounds.http}/metrics", timeout=10) as r:
        text = r.read().decode()
    for name in (
        "concert_votes_total",
        "concert_clients",
        "concert_underruns_total",
        "concert_engine_rtf",
        "concert_steering_latency_seconds",
    ):
        assert f"\n{name}" in text or text.startswith(name), name
    with urllib.request.urlopen(f"{slow_rounds.http}/qr.svg", timeout=10) as r:
        assert b"<svg" in r.read()
    with urllib.request.urlopen(f"{slow_rounds.http}/static/style.css", timeout=10) as r:
        assert r.headers["content-type"].startswith("text/css")
    for hidden in ("__init__.py", "..%2Fpyproject.toml", "nope.js"):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{slow_rounds.http}/static/{hidden}", timeout=10)
        assert e.value.code == 404
        e.value.close()


def _stream_seconds(url: str, seconds: float) -> tuple[str, bytes, np.ndarray, int]:
    """Read `seconds` of a live stream (content type, bytes, decoded audio, rate)."""
    data = bytearray()
    with httpx.stream("GET", url, timeout=30) as r:
        assert r.status_code == 200
        kind = r.headers["content-type"]
        start = time.monotonic()
        for piece in r.iter_bytes():
            data += piece
            if time.monotonic() - start > seconds:
                break
    pcm, sr = sf.read(io.BytesIO(bytes(data)), dtype="float32")
    return kind, bytes(data), pcm, sr


@pytest.mark.parametrize(
    ("path", "kind", "rate"), [("/stream", "audio/mpeg", 44100), ("/stream.opus", "audio/ogg", 48000)]
)
def test_both_streams_play_the_set_from_the_first_byte(slow_rounds: Server, path: str, kind: str, rate: int) -> None:
    got, data, pcm, sr = _stream_seconds(f"{slow_rounds.http}{path}", 4.0)
    assert got == kind and sr == rate
    if path.endswith(".opus"):
        assert data.startswith(b"OggS") and b"OpusHead" in data[:64]  # a listener joining mid-set gets the headers
    assert len(pcm) / sr >= 3.0  # the burst and what followed
    assert np.sqrt(np.mean(pcm[-sr:] ** 2)) > 0.01  # the music, not silence
    with urllib.request.urlopen(f"{slow_rounds.http}/metrics", timeout=10) as r:
        assert 'concert_stream_listeners{format="opus"}' in r.read().decode()


def test_dj_controls(slow_rounds: Server) -> None:
    base = f"{slow_rounds.http}/api/dj"
    status, body = get_json(f"{base}/voting", None, {"voting": "paused"})
    assert status == 401
    status, body = get_json(f"{base}/voting", "wrong", {"voting": "paused"})
    assert status == 401
    with connect(slow_rounds.ws) as ws:
        st = recv_json(ws)["state"]
        assert get_json(f"{base}/voting", "sesame", {"voting": "paused"})[0] == 200
        r = reply(ws, {"type": "vote", "round": st["round"], "option": "stay"})
        assert r["code"] == "voting_paused"
        assert get_json(f"{base}/voting", "sesame", {"voting": "open"})[0] == 200
        assert reply(ws, {"type": "vote", "round": st["round"], "option": "stay"})["type"] == "ack"
        status, body = get_json(f"{base}/prompt", "sesame", {"prompt": [{"style": "Drake type beat", "weight": 1}]})
        assert status == 400 and "Drake" in body["message"]
        status, body = get_json(
            f"{base}/prompt",
            "sesame",
            {"prompt": [{"style": "techno", "weight": 3}, {"style": "ambient", "weight": 1}]},
        )
        assert status == 200
        m = until(ws, lambda m: m["type"] == "state" and m["prompt"][0]["style"] == "techno", 10, "override")
        assert m["prompt"][0]["weight"] == pytest.approx(0.75)
        victim = next(o["id"] for o in st["options"] if o["kind"] == "style")
        assert get_json(f"{base}/veto", "sesame", {"option": victim})[0] == 200
        m = until(ws, lambda m: m["type"] == "state" and victim not in [o["id"] for o in m["options"]], 10, "veto")
        assert get_json(f"{base}/mode", "sesame", {"mode": "chaos"})[0] == 400
        assert get_json(f"{base}/mode", "sesame", {"mode": "blend"})[0] == 200
        until(ws, lambda m: m["type"] == "state" and m["mode"] == "blend", 10, "mode")


def test_booth_actions_land_in_the_setlist_with_who_and_when(tmp_path: Path) -> None:
    args = ("--round-bars", "16", "--song-phrases", "1", "--dj-token", "sesame", "--record", str(tmp_path / "rec"))
    with serve(*args, *ONE_NAT, log_dir=tmp_path) as s, connect(s.ws) as ws:
        base = f"{s.http}/api/dj"

        def post(action: str, body: dict, operator: str = "Ana") -> tuple[int, dict]:
            return get_json(f"{base}/{action}", "sesame", body, operator=operator)

        recv_json(ws)
        assert get_json(f"{base}/lock", None, {"style": "techno", "bars": 8})[0] == 401
        status, body = post("lock", {"style": "techno", "bars": 8})
        assert status == 200 and body["locked"]["style"] == "techno"
        m = until(ws, lambda m: m["type"] == "state" and m.get("locked"), 10, "the lock in the state")
        assert m["locked"]["style"] == "techno" and m["prompt"] == [{"style": "techno", "weight": 1.0}]
        assert post("lock", {"style": "techno", "bars": 0.5})[0] == 400
        status, body = post("drop", {})
        assert status == 200 and body["drop_at_bar"] >= body["build_at_bar"]
        status, body = post("panic", {"on": True})  # a synth set has nothing to fall back to: said plainly
        assert status == 400 and "panic" in body["message"]
        assert post("blocklist", {"add": ["wobbly"]}, operator="Bo")[1]["blocked"] == ["wobbly"]
        assert get_json(f"{base}/blocklist", "sesame")[1]["blocked"] == ["wobbly"]
        assert reply(ws, {"type": "suggest", "text": "wobbly techno"})["type"] == "error"
        status, hist = get_json(f"{base}/history", "sesame")
        assert status == 200 and hist["locked"]["style"] == "techno" and hist["panic"] is False
        assert [a["action"] for a in hist["actions"]] == ["lock", "drop", "blocklist"]  # refused ones change nothing
        assert [a["who"] for a in hist["actions"]] == ["Ana@127.0.0.1", "Ana@127.0.0.1", "Bo@127.0.0.1"]
        assert hist["samples"] and all(set(x) >= {"at", "bar", "mix", "bpm", "votes"} for x in hist["samples"])
        assert get_json(f"{base}/history?since=abc", "sesame")[0] == 400
    lines = [json.loads(x) for x in (tmp_path / "rec").glob("*/setlist.jsonl").__next__().read_text().splitlines()]
    booth = [x for x in lines if x.get("event") == "booth"]
    assert [(x["action"], x["who"]) for x in booth] == [
        ("lock", "Ana@127.0.0.1"),
        ("drop", "Ana@127.0.0.1"),
        ("blocklist", "Bo@127.0.0.1"),
    ]
    assert all(isinstance(x["at"], float) and "wall" in x for x in booth)
