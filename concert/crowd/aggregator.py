"""Crowd steering: votes and the previous mix fold into the next weighted style mix.

Pure functions only (no I/O, no clocks, no randomness), so every rule here is
property-tested. A *mix* is a weighted style prompt, the shape a Lyria-style
weighted prompt or `engine.music.prompt.Prompt` takes:

    Mix = (("techno", 0.75), ("house", 0.25))   # weights > 0, sum 1, heaviest first

Two ballots run side by side (see `concert.crowd.rounds` for when they close):

* the **direction** ballot picks where the music goes next. `close_round` folds
  its tallies into a new mix in one of three modes:
    - ``democracy``: the winning option's style becomes the target;
    - ``blend``: the target is every option's style weighted by its vote share,
      the "stay" share spread over the previous mix;
    - ``anarchy``: every single vote nudges the mix at once (`anarchy_vote`) and
      the nudges decay back toward the mix of the last round (`anarchy_decay`).
  Inertia keeps part of the previous mix: new = (1 − inertia)·target + inertia·previous.
* the **moves** ballot (`MOVES`, `close_moves`) makes phrase-level changes:
  more/less energy, faster/slower, a drop.

Ties are broken deterministically and without bias toward list position:
"stay" wins any tie it is part of; otherwise the tied option with the smallest
sha256(f"{round_id}:{option_id}") wins.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from engine.music.prompt import StyleWeight

Mix = tuple[tuple[str, float], ...]  # (style, weight) pairs: weights > 0, sum 1, descending weight then style
CrowdMode = Literal["democracy", "blend", "anarchy"]  # how votes fold into the mix (not a musical mode)
CROWD_MODES: tuple[str, ...] = get_args(CrowdMode)
STAY = "stay"  # option id of "keep the current mix" on both ballots

_SUM_TOL = 1e-6  # how far from 1 the weights of a mix handed in may sum
_SETTLE_TOL = 1e-9  # a step ending this close (per weight) to its target *is* the target: no float creep


# ---------------------------------------------------------------- mixes


def normalize(weights: Mapping[str, float], min_weight: float) -> Mix:
    """Shares of `weights`, dropping styles whose share is below `min_weight`, renormalised.

    Zero weights are dropped. If every share is below `min_weight` (more than
    1/min_weight styles of similar weight) only the heaviest floor(1/min_weight)
    styles compete, ties broken by style name, so the result is never empty.
    Every weight of the result is >= min_weight and > 0 and they sum to 1.
    Raises ValueError naming the value for an empty or all-zero mapping, a blank
    style, or a weight that is negative, NaN or infinite.
    """
    _check_number("min_weight", min_weight, 0.0, 1.0)
    items = [(s, float(w)) for s, w in weights.items() if _check_weight(s, w, allow_zero=True) > 0]
    if not items:
        raise ValueError(f"mix is empty or all its weights are zero: {dict(weights)!r}")
    top = max(w for _, w in items)
    scaled = [(s, w / top) for s, w in items]  # in (0, 1]: fsum below cannot overflow
    kept = _keep_shares(scaled, min_weight)
    if not kept:
        k = math.floor(1.0 / min_weight)  # min_weight > 0 here: with 0 the heaviest share always stays
        ranked = sorted(scaled, key=lambda sw: (-sw[1], sw[0]))[: max(1, k)]
        kept = _keep_shares(ranked, min_weight) or ranked[:1]
    total = math.fsum(w for _, w in kept)  # <= the full total, so every share only grows
    return _canonical((s, w / total) for s, w in kept)


def _check_weight(style: object, w: object, allow_zero: bool) -> float:
    if not isinstance(style, str) or not style.strip():
        raise ValueError(f"style must be a non-empty string, got {style!r}")
    if isinstance(w, bool) or not isinstance(w, numbers.Real) or not math.isfinite(w):
        raise ValueError(f"weight for style {style!r} must be a finite number, got {w!r}")
    if w < 0 or (w == 0 and not allow_zero):
        raise ValueError(f"weight for style {style!r} must be {'>=' if allow_zero else '>'} 0, got {w!r}")
    return float(w)


def _keep_shares(items: list[tuple[str, float]], min_weight: float) -> list[tuple[str, float]]:
    total = math.fsum(w for _, w in items)
    return [(s, w) for s, w in items if w / total > 0.0 and w / total >= min_weight]


def _canonical(pairs: object) -> Mix:
    return tuple(sorted(pairs, key=lambda sw: (-sw[1], sw[0])))  # type: ignore[call-overload]


def validate_mix(mix: Sequence[tuple[str, float]]) -> Mix:
    """`mix` in canonical order, after checking it is a mix (raises ValueError naming what is wrong).

    Weights are not renormalised (so an unchanged mix compares equal); they must
    be finite, > 0, and sum to 1 within 1e-6; styles must be distinct. Pairs may
    be lists (a mix read back from JSON).
    """
    pairs: dict[str, float] = {}
    for pair in mix:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"mix entries must be (style, weight) pairs, got {pair!r}")
        w = _check_weight(*pair, allow_zero=False)
        if pair[0] in pairs:
            raise ValueError(f"style {pair[0]!r} appears twice in the mix")
        pairs[pair[0]] = w
    if not pairs:
        raise ValueError("mix is empty: give at least one (style, weight) pair")
    total = math.fsum(pairs.values())
    if abs(total - 1.0) > _SUM_TOL:
        raise ValueError(f"mix weights must sum to 1, got {total!r} for {pairs!r}")
    return _canonical(pairs.items())


def mix_of(style: str) -> Mix:
    """The mix of one style at weight 1."""
    return normalize({style: 1.0}, 0.0)


def to_style_weights(mix: Mix) -> tuple[StyleWeight, ...]:
    """The mix as `engine.music.prompt` StyleWeights, for `Prompt(mix=...)`."""
    return tuple(StyleWeight(s, w) for s, w in mix)


def l1_distance(a: Mix, b: Mix) -> float:
    """Sum over styles of |a − b| (a style missing from a mix weighs 0); 0..2."""
    da, db = dict(a), dict(b)
    return math.fsum(abs(da.get(s, 0.0) - db.get(s, 0.0)) for s in da.keys() | db.keys())


def step_toward(previous: Mix, target: Mix, amount: float, min_weight: float) -> Mix:
    """Move `amount` (0..1) of the way from `previous` to `target`, keeping every weight >= min_weight.

    The blend (1 − amount)·previous + amount·target is then snapped toward the
    target: a style the target does not hold is dropped once its share falls under
    `min_weight`; a style the target holds is raised to `min_weight` (it is
    arriving), the other shares rescaled to make room. So repeated steps always
    converge on the target, and a result within 1e-9 per weight of it *is* the
    target. The blend's L1 change is amount·L1(previous, target) <= 2·amount;
    each snapped style adds less than 2·min_weight. `target` should hold no
    weight under `min_weight` (every mix this module makes qualifies).
    """
    _check_number("amount", amount, 0.0, 1.0)
    _check_number("min_weight", min_weight, 0.0, 1.0)
    prev, tgt = validate_mix(previous), validate_mix(target)
    if amount == 0.0 or prev == tgt:
        return prev
    p, t = dict(prev), dict(tgt)
    free = {s: (1.0 - amount) * p.get(s, 0.0) + amount * t.get(s, 0.0) for s in p.keys() | t.keys()}
    pinned: dict[str, float] = {}  # arriving target styles held at min_weight
    while True:
        free = {s: w for s, w in free.items() if w > 0.0}
        room = 1.0 - math.fsum(pinned.values())
        if not free or room <= 0.0:
            return tgt  # only arriving styles are left: nothing to blend with
        scale = room / math.fsum(free.values())
        low = [s for s, w in free.items() if w * scale < min_weight]
        if not low:
            break
        for s in low:
            if s in t:
                pinned[s] = min_weight
            del free[s]
    new = _canonical([*pinned.items(), *((s, w * scale) for s, w in free.items())])
    return _settle(new, tgt)


def _settle(new: Mix, target: Mix) -> Mix:
    n, t = dict(new), dict(target)
    return target if all(abs(n.get(s, 0.0) - t.get(s, 0.0)) <= _SETTLE_TOL for s in n.keys() | t.keys()) else new


# ---------------------------------------------------------------- ballots


@dataclass(frozen=True)
class Option:
    """One choice on a ballot."""

    id: str  # stable id the phones vote with, e.g. "stay" or "techno"
    label: str  # human label shown on phones
    style: str | None  # style this option steers toward; None: no style (the "stay" option, or a move)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id.strip():
            raise ValueError(f"option id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.label, str) or not self.label.strip():
            raise ValueError(f"option {self.id!r} label must be a non-empty string, got {self.label!r}")
        if self.style is not None and (not isinstance(self.style, str) or not self.style.strip()):
            raise ValueError(f"option {self.id!r} style must be None or a non-empty string, got {self.style!r}")
        if self.id == STAY and self.style is not None:
            raise ValueError(f"the {STAY!r} option keeps the current mix and takes no style, got {self.style!r}")


Ballot = tuple[Option, ...]
STAY_OPTION = Option(STAY, "Keep this vibe", None)


def direction_ballot(current: Mix, candidates: Sequence[Option]) -> Ballot:
    """The direction ballot: the stay option first, then `candidates` in order, de-duplicated.

    Dropped: any candidate with id "stay" or without a style (the canonical stay
    option is always first), a repeated id or style (first one wins), and a
    candidate whose style alone *is* the current mix (winning it would change
    nothing, like "stay").
    """
    cur = validate_mix(current)
    ids, styles = {STAY}, set()
    out = [STAY_OPTION]
    for opt in candidates:
        if not isinstance(opt, Option):
            raise ValueError(f"ballot candidates must be Option, got {opt!r}")
        if opt.id in ids or opt.style in styles or opt.style is None or cur == mix_of(opt.style):
            continue
        ids.add(opt.id)
        styles.add(opt.style)
        out.append(opt)
    return tuple(out)


def tie_break_key(round_id: int, option_id: str) -> str:
    """sha256 of f"{round_id}:{option_id}" (hex): the smallest wins a tie not involving "stay"."""
    return hashlib.sha256(f"{round_id}:{option_id}".encode()).hexdigest()


def count_votes(option_ids: Sequence[str], tallies: Mapping[str, int]) -> dict[str, int]:
    """Votes per option id; ids missing from `tallies` count 0, tallies for unknown ids are ignored.

    Ignoring (rather than refusing) unknown ids keeps a round alive when a stale
    phone votes on last round's options; the server validates votes on arrival.
    Raises ValueError naming a count that is not an integer >= 0.
    """
    counts: dict[str, int] = {}
    for oid in option_ids:
        n = tallies.get(oid, 0)
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise ValueError(f"vote count for option {oid!r} must be an integer >= 0, got {n!r}")
        counts[oid] = int(n)
    return counts


def pick_winner(round_id: int, counts: Mapping[str, int]) -> str:
    """The option id with the most votes; "stay" wins ties it is in, else the smallest tie_break_key."""
    if not counts:
        raise ValueError("cannot pick a winner from an empty ballot")
    best = max(counts.values())
    tied = [oid for oid, n in counts.items() if n == best]
    if STAY in tied:
        return STAY
    return min(tied, key=lambda oid: (tie_break_key(round_id, oid), oid))


def _check_ballot(ballot: Sequence[Option], need_styles: bool) -> Ballot:
    opts = tuple(ballot)
    if not opts:
        raise ValueError("ballot is empty: it needs at least one option")
    ids: set[str] = set()
    for opt in opts:
        if not isinstance(opt, Option):
            raise ValueError(f"ballot entries must be Option, got {opt!r}")
        if opt.id in ids:
            raise ValueError(f"option id {opt.id!r} appears twice on the ballot")
        ids.add(opt.id)
        if need_styles and opt.id != STAY and opt.style is None:
            raise ValueError(f"direction option {opt.id!r} has no style; only {STAY!r} may have none")
    return opts


def _check_int(name: str, v: object, lo: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")


# ---------------------------------------------------------------- direction rounds


@dataclass(frozen=True)
class AggregatorConfig:
    mode: CrowdMode = "democracy"  # "democracy", "blend" or "anarchy" (see module docstring)
    inertia: float = 0.25  # share of the previous mix kept after a round, 0..1
    quorum: int = 1  # votes needed for a round to change anything, >= 1
    min_weight: float = 0.05  # styles under this share are dropped from a mix, 0..0.5
    anarchy_step: float = 0.1  # share of the mix one anarchy vote moves toward its style, min_weight..1
    anarchy_half_life_bars: float = 8.0  # bars for anarchy vote pressure to halve, >= 0.001

    def __post_init__(self) -> None:
        if self.mode not in CROWD_MODES:
            raise ValueError(f"mode must be one of {CROWD_MODES}, got {self.mode!r}")
        _check_number("inertia", self.inertia, 0.0, 1.0)
        _check_int("quorum", self.quorum, 1)
        _check_number("min_weight", self.min_weight, 0.0, 0.5)
        _check_number("anarchy_step", self.anarchy_step, 0.0, 1.0)
        if self.anarchy_step <= 0 or self.anarchy_step < self.min_weight:
            raise ValueError(
                f"anarchy_step must be > 0 and >= min_weight ({self.min_weight!r}) so one vote "
                f"can bring a new style in, got {self.anarchy_step!r}"
            )
        _check_number("anarchy_half_life_bars", self.anarchy_half_life_bars, 1e-3, math.inf)


@dataclass(frozen=True)
class RoundResult:
    round_id: int  # the round that closed
    winner: str  # winning option id; "stay" when the quorum was not met
    votes: int  # votes counted (for options on the ballot)
    target: Mix  # what the round asks for (the previous mix when it asks for no change)
    mix: Mix  # the new mix: step_toward(previous, target, 1 − inertia)
    changed: bool  # mix != previous


def close_round(
    round_id: int, ballot: Ballot, tallies: Mapping[str, int], previous: Mix, cfg: AggregatorConfig
) -> RoundResult:
    """Close a direction round: count `tallies` over `ballot` and fold them into `previous`.

    Fewer than `cfg.quorum` votes: winner "stay", nothing changes. Otherwise the
    winner is reported in every mode, and the target is
    democracy: the winner's style alone ("stay": the previous mix);
    blend: each option's style weighted by its vote share, the stay share spread
    over the previous mix in proportion, normalised with min_weight;
    anarchy: the previous mix — votes already moved it one by one, so pass the
    live mix as `previous`; the result's mix is the new home for `anarchy_decay`.
    The result does not depend on the order of `ballot` or `tallies`.
    """
    _check_int("round_id", round_id, 0)
    opts = _check_ballot(ballot, need_styles=True)
    prev = validate_mix(previous)
    counts = count_votes([o.id for o in opts], tallies)
    votes = sum(counts.values())
    if votes < cfg.quorum:
        return RoundResult(round_id, STAY, votes, prev, prev, False)
    winner = pick_winner(round_id, counts)
    if cfg.mode == "anarchy":
        return RoundResult(round_id, winner, votes, prev, prev, False)
    if cfg.mode == "democracy":
        style = next(o.style for o in opts if o.id == winner)
        target = prev if style is None else mix_of(style)
    else:
        target = _blend_target(opts, counts, votes, prev, cfg.min_weight)
    mix = step_toward(prev, target, 1.0 - cfg.inertia, cfg.min_weight)
    return RoundResult(round_id, winner, votes, target, mix, mix != prev)


def _blend_target(opts: Ballot, counts: Mapping[str, int], votes: int, prev: Mix, min_weight: float) -> Mix:
    if counts.get(STAY, 0) == votes:
        return prev
    parts: dict[str, list[float]] = {}
    for opt in opts:
        share = counts[opt.id] / votes
        if share == 0:
            continue
        if opt.style is None:
            for s, w in prev:
                parts.setdefault(s, []).append(share * w)
        else:
            parts.setdefault(opt.style, []).append(share)
    # fsum is exact, so the order of options (and of tallies) cannot change a bit of the result
    return normalize({s: math.fsum(ws) for s, ws in parts.items()}, min_weight)


# ---------------------------------------------------------------- anarchy


@dataclass(frozen=True)
class Pressure:
    """How far the crowd has pushed the live mix from home: signed deltas, mix − home."""

    weights: tuple[tuple[str, float], ...]  # (style, delta in -1..1), largest |delta| first then style; sum 0


def anarchy_vote(mix: Mix, style: str | None, cfg: AggregatorConfig) -> Mix:
    """One anarchy vote: move `anarchy_step` of the mix toward `style`; None ("stay") changes nothing."""
    cur = validate_mix(mix)
    if style is None:
        return cur
    if not isinstance(style, str) or not style.strip():
        raise ValueError(f"voted style must be None or a non-empty string, got {style!r}")
    return step_toward(cur, mix_of(style), cfg.anarchy_step, cfg.min_weight)


def anarchy_decay(mix: Mix, home: Mix, bars: float, cfg: AggregatorConfig) -> Mix:
    """Let `bars` bars of vote pressure decay: the distance to `home` halves every half-life.

    That is step_toward(mix, home, 1 − 0.5**(bars / half_life)): styles only the
    votes brought in fade out, home styles the votes pushed out come back, and the
    mix settles on home exactly.
    """
    _check_number("bars", bars, 0.0, math.inf)
    keep = 0.5 ** (bars / cfg.anarchy_half_life_bars)
    return step_toward(mix, home, 1.0 - keep, cfg.min_weight)


def pressure(mix: Mix, home: Mix) -> Pressure:
    """The signed per-style deviation of `mix` from `home` (for display: what the crowd is pushing)."""
    m, h = dict(validate_mix(mix)), dict(validate_mix(home))
    deltas = [(s, m.get(s, 0.0) - h.get(s, 0.0)) for s in m.keys() | h.keys()]
    return Pressure(tuple(sorted((d for d in deltas if d[1] != 0.0), key=lambda sd: (-abs(sd[1]), sd[0]))))


def _check_number(name: str, v: object, lo: float, hi: float) -> None:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    if not lo <= float(v) <= hi:
        raise ValueError(f"{name} must be within {lo:g}..{hi:g}, got {v!r}")


# ---------------------------------------------------------------- live moves (phrase-level ballot)

MOVES: tuple[str, ...] = ("stay", "energy_up", "energy_down", "faster", "slower", "drop")
MOVE_BALLOT: Ballot = (
    Option(STAY, "Keep it", None),
    Option("energy_up", "More energy", None),
    Option("energy_down", "Less energy", None),
    Option("faster", "Faster", None),
    Option("slower", "Slower", None),
    Option("drop", "Drop it!", None),
)


@dataclass(frozen=True)
class Live:
    """Phrase-level controls the moves ballot steers, on top of the mix's defaults."""

    energy_offset: float = 0.0  # added to the style's energy (0..1 scale), within ±MoveConfig.energy_limit
    bpm_offset: float = 0.0  # added to the style's tempo, beats per minute, within ±MoveConfig.bpm_limit
    drop: bool = False  # a drop is due on the next phrase (set only by a winning "drop" move)

    def __post_init__(self) -> None:
        for name in ("energy_offset", "bpm_offset"):
            _check_number(name, getattr(self, name), -math.inf, math.inf)
        if not isinstance(self.drop, bool):
            raise ValueError(f"drop must be a bool, got {self.drop!r}")


@dataclass(frozen=True)
class MoveConfig:
    energy_step: float = 0.15  # energy added/removed per energy move, 0..1 scale (0 disables the moves)
    bpm_step: float = 4.0  # tempo added/removed per faster/slower move, beats per minute, 0..60
    energy_limit: float = 0.5  # |energy_offset| never exceeds this, 0..1 scale
    bpm_limit: float = 30.0  # |bpm_offset| never exceeds this, beats per minute, 0..120

    def __post_init__(self) -> None:
        _check_number("energy_step", self.energy_step, 0.0, 1.0)
        _check_number("energy_limit", self.energy_limit, 0.0, 1.0)
        _check_number("bpm_step", self.bpm_step, 0.0, 60.0)
        _check_number("bpm_limit", self.bpm_limit, 0.0, 120.0)


def apply_move(live: Live, move: str, cfg: MoveConfig) -> Live:
    """`live` after `move` wins, offsets clamped to the limits.

    "drop" sets `drop`; every other move clears it, so a drop lands on exactly
    the phrase after the round it won. Raises ValueError naming an unknown move.
    """
    if move not in MOVES:
        raise ValueError(f"unknown move {move!r}; moves are {', '.join(MOVES)}")
    de = {"energy_up": cfg.energy_step, "energy_down": -cfg.energy_step}.get(move, 0.0)
    db = {"faster": cfg.bpm_step, "slower": -cfg.bpm_step}.get(move, 0.0)
    return Live(
        energy_offset=_clamp(live.energy_offset + de, cfg.energy_limit),
        bpm_offset=_clamp(live.bpm_offset + db, cfg.bpm_limit),
        drop=move == "drop",
    )


def close_moves(
    round_id: int, tallies: Mapping[str, int], live: Live, cfg: MoveConfig, quorum: int = 1
) -> tuple[str, Live]:
    """Close a moves round: (winning move, the live controls for the next phrase).

    Same counting and tie-break as `close_round`; under `quorum` votes the winner
    is "stay". Tallies for ids outside MOVES are ignored.
    """
    _check_int("round_id", round_id, 0)
    _check_int("quorum", quorum, 1)
    counts = count_votes(MOVES, tallies)
    winner = pick_winner(round_id, counts) if sum(counts.values()) >= quorum else STAY
    return winner, apply_move(live, winner, cfg)


def _clamp(x: float, limit: float) -> float:
    return min(limit, max(-limit, x))
