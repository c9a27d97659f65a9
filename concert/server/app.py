"""The Starlette app: pages, the websocket, the state API, the stream, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import importlib.resources
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

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
from concert.store.base import StoreUnavailableError
from engine.music.prompt import PromptError
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
            if rt.signer.verify(request.cookies.get(COOKIE_NAME)) is None and await _may_mint(rt, request):
                resp.set_cookie(COOKIE_NAME, rt.signer.mint(), max_age=COOKIE_MAX_AGE, httponly=True, samesite="lax")
        return resp

    return page


async def _may_mint(rt: Runtime, request: Request) -> bool:
    """A page load may mint a device only within its address's share (else the socket asks again, and says why)."""
    try:
        await rt.gate.mint(request.client.host if request.client is not None else "unknown")
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


async def api_setlist(request: Request) -> Response:
    """The set's recent changes as heard, newest first: when, what, and who chose it (the crowd with its votes,
    the DJ, the opening)."""
    try:
        return JSONResponse(await _rt(request).conductor.played(), headers={"Cache-Control": "no-store"})
    except StoreUnavailableError as e:
        return JSONResponse({"error": str(e)}, status_code=503)


async def healthz(request: Request) -> Response:
    """ "ok" only when the configured backend is the one playing; 503 only when nothing can play."""
    body, code = await _rt(request).health()
    return JSONResponse(body, status_code=code)


async def metrics_endpoint(request: Request) -> Response:
    return Response(metrics.render(request.app.state.registry), media_type="text/plain; version=0.0.4")


async def qr_svg(request: Request) -> Response:
    url = _rt(request).config.join_url
    buf = io.BytesIO()
    segno.make(url, error="m").save(buf, kind="svg", xmldecl=False, scale=8, border=2, dark="#000", light="#fff")
    return Response(buf.getvalue(), media_type="image/svg+xml", headers={"Cache-Control": "no-cache"})


async def stream(request: Request) -> Response:
    return await _rt(request).stream.endpoint(request)


async def stream_opus(request: Request) -> Response:
    return await _rt(request).opus.endpoint(request)


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


def _query_body(request: Request) -> dict[str, Any]:
    since = request.query_params.get("since")
    if since is None:
        return {}
    try:
        return {"since": float(since)}
    except ValueError:
        raise ValueError(f"'since' must be a number of seconds since the epoch, got {since!r}") from None


def _who(request: Request) -> str:
    """Who did it, for the setlist: the name the console's operator gave (printable, 40 characters at most) and
    the address the request came from."""
    raw = unquote(request.headers.get("x-operator", "")[:400])  # the console percent-encodes it (any script)
    name = "".join(ch for ch in raw[:40] if ch.isprintable()).strip() or "booth"
    host = request.client.host if request.client is not None else "?"
    return f"{name}@{host}"


def _dj(action: str):  # type: ignore[no-untyped-def]
    async def endpoint(request: Request) -> Response:
        if not _authorised(request):
            return JSONResponse({"error": "unauthorised", "message": "DJ token missing or wrong"}, status_code=401)
        rt = _rt(request)
        try:
            body = await _json_body(request) if request.method == "POST" else _query_body(request)
            body["_who"] = _who(request)
            result = {"join_url": rt.config.join_url} if action == "check" else await rt.act(action, body)
        except (ValueError, PromptError, UnknownStyleError) as e:
            return JSONResponse({"error": "bad_request", "message": str(e)}, status_code=400)
        except TimeoutError as e:  # a web worker whose conductor is changing hands
            return JSONResponse({"error": "unavailable", "message": str(e)}, status_code=503)
        return JSONResponse({"ok": True, **result})

    return endpoint


def create_app(config: ServeConfig, worker: str | None = None) -> Starlette:
    """The set's app: the whole set in this process, or (`worker` = its id) a web worker of a conductor process."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redact.install()  # after uvicorn has configured its loggers: no token reaches the access log
        if worker is not None:
            from concert.cluster.worker import worker_running

            runtime: contextlib.AbstractAsyncContextManager[Any] = worker_running(config, worker)
        else:
            runtime = running(config)
        async with runtime as rt:
            app.state.runtime = rt
            app.state.registry = metrics.make_registry(rt)
            status = None
            if config.status_line and worker is None:
                from concert.server.terminal import status_loop

                def now() -> dict[str, object]:
                    c = rt.conductor
                    return {"bar": int(c.bar), "now_playing": c.now_playing.as_json() if c.now_playing else None}

                status = asyncio.create_task(status_loop(rt.health, now), name="status line")
            try:
                yield
            finally:
                if status is not None:
                    status.cancel()

    routes = [
        Route("/", _page("index.html", set_cookie=True)),
        Route("/listen", _page("listen.html")),
        Route("/dj", _page("dj.html")),
        Route("/qr.svg", qr_svg),
        Route("/api/state", api_state),
        Route("/api/setlist", api_setlist),
        Route("/stream", stream),
        Route("/stream.opus", stream_opus),
        Route("/healthz", healthz),
        Route("/metrics", metrics_endpoint),
        Route("/api/dj/check", _dj("check"), methods=["GET"]),
        Route("/api/dj/prompt", _dj("prompt"), methods=["POST"]),
        Route("/api/dj/voting", _dj("voting"), methods=["POST"]),
        Route("/api/dj/mode", _dj("mode"), methods=["POST"]),
        Route("/api/dj/veto", _dj("veto"), methods=["POST"]),
        Route("/api/dj/skip", _dj("skip"), methods=["POST"]),
        Route("/api/dj/lock", _dj("lock"), methods=["POST"]),
        Route("/api/dj/drop", _dj("drop"), methods=["POST"]),
        Route("/api/dj/panic", _dj("panic"), methods=["POST"]),
        Route("/api/dj/blocklist", _dj("blocklist"), methods=["GET", "POST"]),
        Route("/api/dj/history", _dj("history"), methods=["GET"]),
        WebSocketRoute("/ws", audience_socket),
        Route("/static/{name}", static),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
