"""What the booth can do, in one place: run by the app in a one-process set, and by the conductor process for
the web workers' requests (`concert.cluster`). Each action takes the conductor, the audible deck and the request's
JSON body and returns the reply's fields; ValueError (or PromptError, UnknownStyleError) for a bad request.
Every action in LOGGED lands in the setlist and the console's list with who asked and when (`Runtime.act`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from concert.crowd.conductor import Conductor
from engine.music.prompt import prompt_from_json
from engine.playback.failover import Failover

Action = Callable[[Conductor, Failover, dict[str, Any]], Awaitable[dict[str, Any]]]


async def prompt(conductor: Conductor, deck: Failover, body: dict[str, Any]) -> dict[str, Any]:
    controls = {k: body[k] for k in ("bpm", "energy", "brightness", "mode", "section") if body.get(k) is not None}
    return {"lands_at_bar": conductor.override(prompt_from_json(body.get("prompt"), **controls))}


async def voting(conductor: Conductor, deck: Failover, body: dict[str, Any]) -> dict[str, Any]:
    conductor.set_voting(str(body.get("voting")))
    return {"voting": conductor.voting}


async def mode(conductor: Conductor, deck: Failover, body: dict[str, Any]) -> dict[str, Any]:
    conductor.set_mode(str(body.get("mode")))
    return {"mode": conductor.mode}


async def veto(conductor: Conductor, deck: Failover, body: dict[str, Any]) -> dict[str, Any]:
    option = body.get("option")
    if not isinstance(option, str) or not option:
        raise ValueError("veto needs an 'option' id string")
    await conductor.veto(option)
    return {"vetoed": option}


async def skip(conductor: Conductor, deck: Failover, body: dict[str, Any]) -> dict[str, Any]:
    await conductor.skip()
    return {"lands_at_bar": conductor.moves.lands_bar}


async def lock(conductor: Conductor, deck: Failover, body: dict[str, Any]) -> dict[str, Any]:
    """{"style": id, "bars": n} holds that style for n bars; {"bars": 0} lets the crowd steer again."""
    if body.get("bars") == 0:
        conductor.unlock()
        return {"locked": None}
    style = body.get("style")
    if not isinstance(style, str) or not style:
        raise ValueError("lock needs a 'style' genre id and 'bars' (0 to unlock)")
    held = conductor.lock(style, body.get("bars"))  # type: ignore[arg-type]
    return {"locked": held.as_json()}


async def drop(conductor: Conductor, deck: Failover, body: dict[str, Any]) -> dict[str, Any]:
    return conductor.drop()


async def panic(conductor: Conductor, deck: Failover, body: dict[str, Any]) -> dict[str, Any]:
    """{"on": true} crossfades to the synth and holds it; {"on": false} lets the token engine back."""
    on = body.get("on", True)
    if not isinstance(on, bool):
        raise ValueError("panic 'on' must be true or false")
    deck.hold_fallback(on)
    return {"panic": on}


async def blocklist(conductor: Conductor, deck: Failover, body: dict[str, Any]) -> dict[str, Any]:
    """{"add": [words]} or {"remove": [words]}; {} lists the booth's words."""
    if "add" in body:
        return {"blocked": await conductor.set_blocked(body["add"], blocked=True)}
    if "remove" in body:
        return {"blocked": await conductor.set_blocked(body["remove"], blocked=False)}
    return {"blocked": sorted(conductor.booth.blocked)}


async def history(conductor: Conductor, deck: Failover, body: dict[str, Any]) -> dict[str, Any]:
    """The console's plot and log: samples since `since` (epoch seconds; default the last hour), booth actions."""
    since = body.get("since", 0)
    if not isinstance(since, int | float) or isinstance(since, bool):
        raise ValueError("'since' must be a number of seconds since the epoch")
    booth = conductor.booth
    return {
        "samples": booth.history.since(float(since)),
        "actions": list(booth.actions),
        "panic": deck.held,
        "panic_available": deck.fallback is not None,
        "locked": None if booth.lock is None else booth.lock.as_json(),
    }


DJ_ACTIONS: dict[str, Action] = {
    "prompt": prompt,
    "voting": voting,
    "mode": mode,
    "veto": veto,
    "skip": skip,
    "lock": lock,
    "drop": drop,
    "panic": panic,
    "blocklist": blocklist,
    "history": history,
}
LOGGED = frozenset(DJ_ACTIONS) - {"history"}  # what changes the set; a blocklist listing is logged only when it edits
