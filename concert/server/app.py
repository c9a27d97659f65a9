"""The Starlette app: pages, the websocket, the state API, the stream, health and metrics."""

from __future__ import annotations

import contextlib
import hmac
import importlib.resources
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import segno
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from concert.config import ServeConfig
from concert.server import metrics, redact
from concert.server.identity import COOKIE_NAME
from concert.server.limits import Refusal
from concert.server.runtime import Runtime, running
from concert.server.ws import audience_socket
from engine.music.prompt import PromptError, prompt_from_json
from engine.music.styles import UnknownStyleError

COOKIE_MAX_AGE = 7 * 24 * 3600  # seconds a device cookie lives


def web_dir() -> Path:
    return Path(str(importlib.resources.files("concert.web")))


def _rt(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self'; media-src 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _page(name: str, set_cookie: bool = False):  # type: ignore[no-untyped-def]
    async def page(request: Request) -> Response:
        resp = FileResponse(web_dir() / name, media_type="text/html", headers=PAGE_HEADERS)
        if set_cookie:
            rt = _rt(request)
            if rt.signer.verify(request.cookies.get(COOKIE_NAME)) is None and _may_mint(rt, request):
                resp.set_cookie(COOKIE_NAME, rt.signer.mint(), max_age=COOKIE_MAX_AGE, httponly=True, samesite="lax")
        return resp

    return page


def _may_mint(rt: Runtime, request: Request) -> bool:
    """A page load may mint a device only within its address's share (else the socket asks again, and says why)."""
    try:
        rt.gate.mint(request.client.host if request.client is not None else "unknown", time.monotonic())
    except Refusal:
        return False
    return True


async def static(request: Request) -> Response:
    """The pages' scripts, styles and icons (and nothing else from the web folder)."""
    name = request.path_params["name"]
    path = web_dir() / name
    kind = STATIC_TYPES.get(path.suffix)
    if kind is None or "/" in name or name.startswith(".") or not path.is_file():
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(
        path, media_type=kind, headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    )


async def api_state(request: Request) -> Response:
    rt = _rt(request)
    return JSONResponse(await rt.conductor.state(rt.clients))


async def healthz(request: Request) -> Response:
    """ "ok" only when the configured backend is the one playing; 503 only when nothing can play.

    A token engine that died or lags while the synth covers is "degraded": the music goes on (200), and the
    body says which source is audible and what stopped the primary.
    """
    rt = _rt(request)
    deck = rt.deck.health()
    store_ok = await rt.store.ping()
    down = not store_ok or rt.deck.error is not None
    degraded = deck["primary_error"] is not None or deck["audible"] != "primary"
    status = "down" if down else "degraded" if degraded else "ok"
    body = {
        "ok": status == "ok",
        "status": status,
        "backend": rt.config.backend,
        "playing": deck["state"],  # primary | to_fallback | fallback | to_primary
        "audible": deck["audible"],  # whose audio the listeners hear: primary (the backend) or fallback (the synth)
        "primary_error": deck["primary_error"],
        "store": store_ok,
        "buffered_seconds": deck["buffered_seconds"],
        "dropped_audio_seconds": round(rt.player.dropped_seconds, 3),  # what the listeners missed so far
        "clients": rt.clients,
    }
    return JSONResponse(body, status_code=503 if down else 200)


async def metrics_endpoint(request: Request) -> Response:
    return Response(metrics.render(request.app.state.registry), media_type="text/plain; version=0.0.4")


async def qr_svg(request: Request) -> Response:
    url = _rt(request).config.join_url
    buf = io.BytesIO()
    segno.make(url, error="m").save(buf, kind="svg", xmldecl=False, scale=8, border=2, dark="#000", light="#fff")
    return Response(buf.getvalue(), media_type="image/svg+xml", headers={"Cache-Control": "no-cache"})


async def stream(request: Request) -> Response:
    return await _rt(request).stream.endpoint(request)


def _authorised(request: Request) -> bool:
    expected = _rt(request).config.dj_token
    got = request.headers.get("authorization", "")
    token = got[7:] if got.lower().startswith("bearer ") else request.query_params.get("token", "")
    return hmac.compare_digest(token.encode(), expected.encode())


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except Exception:
        raise ValueError("request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ValueError("request body must be a JSON object")
    return body


def _dj(action):  # type: ignore[no-untyped-def]
    async def endpoint(request: Request) -> Response:
        if not _authorised(request):
            return JSONResponse({"error": "unauthorised", "message": "DJ token missing or wrong"}, status_code=401)
        try:
            result = await action(_rt(request), await _json_body(request) if request.method == "POST" else {})
        except (ValueError, PromptError, UnknownStyleError) as e:
            return JSONResponse({"error": "bad_request", "message": str(e)}, status_code=400)
        return JSONResponse({"ok": True, **(result or {})})

    return endpoint


async def dj_check(rt: Runtime, body: dict[str, Any]) -> dict[str, Any]:
    return {"join_url": rt.config.join_url}


async def dj_prompt(rt: Runtime, body: dict[str, Any]) -> dict[str, Any]:
    controls = {k: body[k] for k in ("bpm", "energy", "brightness", "mode", "section") if body.get(k) is not None}
    prompt = prompt_from_json(body.get("prompt"), **controls)
    return {"lands_at_bar": rt.conductor.override(prompt)}


async def dj_voting(rt: Runtime, body: dict[str, Any]) -> dict[str, Any]:
    rt.conductor.set_voting(str(body.get("voting")))
    return {"voting": rt.conductor.voting}


async def dj_mode(rt: Runtime, body: dict[str, Any]) -> dict[str, Any]:
    rt.conductor.set_mode(str(body.get("mode")))
    return {"mode": rt.conductor.mode}


async def dj_veto(rt: Runtime, body: dict[str, Any]) -> dict[str, Any]:
    option = body.get("option")
    if not isinstance(option, str) or not option:
        raise ValueError("veto needs an 'option' id string")
    await rt.conductor.veto(option)
    return {"vetoed": option}


async def dj_skip(rt: Runtime, body: dict[str, Any]) -> dict[str, Any]:
    await rt.conductor.skip()
    return {"lands_at_bar": rt.conductor.moves.lands_bar}


def create_app(config: ServeConfig) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redact.install()  # after uvicorn has configured its loggers: no token reaches the access log
        async with running(config) as rt:
            app.state.runtime = rt
            app.state.registry = metrics.make_registry(rt)
            yield

    routes = [
        Route("/", _page("index.html", set_cookie=True)),
        Route("/listen", _page("listen.html")),
        Route("/dj", _page("dj.html")),
        Route("/qr.svg", qr_svg),
        Route("/api/state", api_state),
        Route("/stream", stream),
        Route("/healthz", healthz),
        Route("/metrics", metrics_endpoint),
        Route("/api/dj/check", _dj(dj_check), methods=["GET"]),
        Route("/api/dj/prompt", _dj(dj_prompt), methods=["POST"]),
        Route("/api/dj/voting", _dj(dj_voting), methods=["POST"]),
        Route("/api/dj/mode", _dj(dj_mode), methods=["POST"]),
        Route("/api/dj/veto", _dj(dj_veto), methods=["POST"]),
        Route("/api/dj/skip", _dj(dj_skip), methods=["POST"]),
        WebSocketRoute("/ws", audience_socket),
        Route("/static/{name}", static),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
