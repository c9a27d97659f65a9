"""What the booth can do, in one place: run by the app in a one-process set, and by the conductor process for
the web workers' requests (`concert.cluster`). Each action takes the conductor and the request's JSON body and
returns the reply's fields; ValueError (or PromptError, UnknownStyleError) for a bad request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from concert.crowd.conductor import Conductor
from engine.music.prompt import prompt_from_json

Action = Callable[[Conductor, dict[str, Any]], Awaitable[dict[str, Any]]]


async def prompt(conductor: Conductor, body: dict[str, Any]) -> dict[str, Any]:
    controls = {k: body[k] for k in ("bpm", "energy", "brightness", "mode", "section") if body.get(k) is not None}
    return {"lands_at_bar": conductor.override(prompt_from_json(body.get("prompt"), **controls))}


async def voting(conductor: Conductor, body: dict[str, Any]) -> dict[str, Any]:
    conductor.set_voting(str(body.get("voting")))
    return {"voting": conductor.voting}


async def mode(conductor: Conductor, body: dict[str, Any]) -> dict[str, Any]:
    conductor.set_mode(str(body.get("mode")))
    return {"mode": conductor.mode}


async def veto(conductor: Conductor, body: dict[str, Any]) -> dict[str, Any]:
    option = body.get("option")
    if not isinstance(option, str) or not option:
        raise ValueError("veto needs an 'option' id string")
    await conductor.veto(option)
    return {"vetoed": option}


async def skip(conductor: Conductor, body: dict[str, Any]) -> dict[str, Any]:
    await conductor.skip()
    return {"lands_at_bar": conductor.moves.lands_bar}


DJ_ACTIONS: dict[str, Action] = {"prompt": prompt, "voting": voting, "mode": mode, "veto": veto, "skip": skip}
