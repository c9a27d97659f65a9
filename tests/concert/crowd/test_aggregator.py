from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from concert.crowd.aggregator import (
    MOVE_BALLOT,
    MOVES,
    STAY,
    AggregatorConfig,
    Live,
    MoveConfig,
    Option,
    Pressure,
    anarchy_decay,
    anarchy_vote,
    apply_move,
    close_moves,
    close_round,
    count_votes,
    direction_ballot,
    l1_distance,
    mix_of,
    normalize,
    pick_winner,
    pressure,
    step_toward,
    tie_break_key,
    to_style_weights,
    validate_mix,
)
from engine.music.prompt import Prompt
from engine.music.styles import GENRE_IDS

STYLES = (*GENRE_IDS, "dark rolling techno", "warm jazzy lofi")
OPTIONS = tuple(Option(s, s.title(), s) for s in STYLES)


def assert_normalised(mix: tuple[tuple[str, float], ...], min_weight: float) -> None:
    assert mix, "a mix is never empty"
    assert abs(math.fsum(w for _, w in mix) - 1.0) <= 1e-9
    assert all(not math.isnan(w) and w > 0 and w >= min_weight for _, w in mix)
    assert len({s for s, _ in mix}) == len(mix)
    assert list(mix) == sorted(mix, key=lambda sw: (-sw[1], sw[0]))


# ---------------------------------------------------------------- strategies

min_weights = st.sampled_from([0.0, 0.01, 0.05, 0.1, 0.25])
raw_weights = st.dictionaries(
    st.sampled_from(STYLES), st.floats(min_value=0.0, max_value=1e6, allow_nan=False), min_size=1
).filter(lambda d: any(w > 0 for w in d.values()))


@st.composite
def mixes(draw: st.DrawFn, min_weight: float = 0.05) -> tuple[tuple[str, float], ...]:
    return normalize(draw(raw_weights), min_weight)


@st.composite
def configs(draw: st.DrawFn, mode: str | None = None) -> AggregatorConfig:
    mw = draw(st.sampled_from([0.0, 0.05, 0.1]))
    return AggregatorConfig(
        mode=mode or draw(st.sampled_from(["democracy", "blend", "anarchy"])),  # type: ignore[arg-type]
        inertia=draw(st.floats(0.0, 1.0)),
        quorum=draw(st.integers(1, 5)),
        min_weight=mw,
        anarchy_step=draw(st.floats(max(mw, 0.01), 1.0)),
        anarchy_half_life_bars=draw(st.floats(0.5, 64.0)),
    )


@st.composite
def rounds(draw: st.DrawFn) -> tuple[int, tuple[Option, ...], dict[str, int]]:
    candidates = draw(st.lists(st.sampled_from(OPTIONS), max_size=6, unique=True))
    ballot = (Option(STAY, "Stay", None), *candidates)
    ids = [o.id for o in ballot]
    tallies = draw(st.dictionaries(st.sampled_from([*ids, "not-on-ballot"]), st.integers(0, 20)))
    return draw(st.integers(0, 10_000)), ballot, tallies


# ---------------------------------------------------------------- normalize


def test_normalize_drops_small_shares_and_sorts() -> None:
    assert normalize({"house": 3.0, "techno": 1.0, "ambient": 0.1}, 0.05) == (("house", 0.75), ("techno", 0.25))
    assert normalize({"b": 1.0, "a": 1.0}, 0.05) == (("a", 0.5), ("b", 0.5))
    assert normalize({"house": 2.0, "techno": 0.0}, 0.0) == (("house", 1.0),)


def test_normalize_never_empties_a_mix_of_many_small_shares() -> None:
    mix = normalize({f"s{i:02d}": 1.0 for i in range(30)}, 0.05)  # every share 1/30 < 0.05
    assert len(mix) == 20 and [s for s, _ in mix] == [f"s{i:02d}" for i in range(20)]
    assert_normalised(mix, 0.05)


@pytest.mark.parametrize(
    ("weights", "needle"),
    [
        ({}, "empty"),
        ({"house": 0.0}, "zero"),
        ({"house": float("nan")}, "nan"),
        ({"house": float("inf")}, "inf"),
        ({"house": -1.0}, "-1.0"),
        ({"": 1.0}, "''"),
        ({"house": "1"}, "'1'"),
    ],
)
def test_normalize_refuses_bad_weights_naming_the_value(weights: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        normalize(weights, 0.05)


@given(raw_weights, min_weights)
def test_normalize_always_gives_a_normalised_mix(weights: dict[str, float], mw: float) -> None:
    assert_normalised(normalize(weights, mw), mw)


@given(raw_weights, min_weights)
def test_normalize_is_idempotent(weights: dict[str, float], mw: float) -> None:
    once = normalize(weights, mw)
    assert dict(normalize(dict(once), mw)) == pytest.approx(dict(once), abs=1e-12)


def test_validate_mix_refuses_broken_mixes() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        validate_mix((("house", 0.5),))
    with pytest.raises(ValueError, match="twice"):
        validate_mix((("house", 0.5), ("house", 0.5)))
    with pytest.raises(ValueError, match="> 0"):
        validate_mix((("house", 1.0), ("techno", 0.0)))
    assert validate_mix((("a", 0.25), ("b", 0.75))) == (("b", 0.75), ("a", 0.25))
    assert validate_mix([["a", 0.25], ["b", 0.75]]) == (("b", 0.75), ("a", 0.25))  # read back from JSON
    with pytest.raises(ValueError, match="empty"):
        validate_mix(())
    with pytest.raises(ValueError, match="pairs"):
        validate_mix((("a", 1.0, 2),))  # type: ignore[arg-type]


def test_mix_feeds_an_engine_prompt() -> None:
    prompt = Prompt(mix=to_style_weights((("techno", 0.75), ("house", 0.25))))
    assert prompt.dominant() == "techno"


# ---------------------------------------------------------------- ballots and ties


def test_direction_ballot_puts_stay_first_and_deduplicates() -> None:
    techno, house = Option("techno", "Techno", "techno"), Option("house", "House", "house")
    ballot = direction_ballot(
        mix_of("house"),
        [
            techno,
            Option("techno", "Again", "trance"),
            Option("t2", "Techno 2", "techno"),
            house,
            Option(STAY, "Mine", None),
            Option("lofi", "Lo-fi", "lofi"),
        ],
    )
    assert [o.id for o in ballot] == [STAY, "techno", "lofi"]  # house alone is the current mix
    assert direction_ballot((("house", 0.6), ("techno", 0.4)), [house])[1] == house


def test_option_validation() -> None:
    with pytest.raises(ValueError, match="takes no style"):
        Option(STAY, "Stay", "house")
    with pytest.raises(ValueError, match="id"):
        Option("", "x", "house")
    with pytest.raises(ValueError, match="no style"):
        close_round(0, (Option("x", "X", None),), {"x": 1}, mix_of("house"), AggregatorConfig())
    with pytest.raises(ValueError, match="twice"):
        close_round(0, (OPTIONS[0], OPTIONS[0]), {}, mix_of("house"), AggregatorConfig())


def test_stay_wins_a_tie_it_is_part_of() -> None:
    assert pick_winner(7, {"techno": 3, STAY: 3, "house": 1}) == STAY


def test_ties_without_stay_follow_the_hash_not_list_position() -> None:
    ids = [f"opt{i}" for i in range(6)]
    firsts = set()
    for rid in range(60):
        w = pick_winner(rid, dict.fromkeys(ids, 2))
        assert w == min(ids, key=lambda i: tie_break_key(rid, i))
        assert pick_winner(rid, dict.fromkeys(reversed(ids), 2)) == w
        firsts.add(w)
    assert len(firsts) == len(ids)  # every position wins some tie: no positional bias


def test_count_votes_ignores_unknown_ids_and_refuses_bad_counts() -> None:
    assert count_votes(["a", "b"], {"a": 2, "zzz": 9}) == {"a": 2, "b": 0}
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="'a'"):
            count_votes(["a"], {"a": bad})  # type: ignore[dict-item]


# ---------------------------------------------------------------- close_round


def test_democracy_moves_to_the_winner_with_inertia() -> None:
    ballot = direction_ballot(mix_of("house"), OPTIONS[:3])
    r = close_round(4, ballot, {"techno": 5, "trance": 2, STAY: 1}, mix_of("house"), AggregatorConfig())
    assert (r.winner, r.votes, r.target, r.changed) == ("techno", 8, mix_of("techno"), True)
    assert r.mix == (("techno", 0.75), ("house", 0.25))


def test_democracy_stay_and_quorum_keep_the_mix() -> None:
    prev = (("techno", 0.75), ("house", 0.25))
    ballot = direction_ballot(prev, OPTIONS[:3])
    r = close_round(1, ballot, {STAY: 4, "trance": 1}, prev, AggregatorConfig())
    assert (r.winner, r.mix, r.changed) == (STAY, prev, False)
    r = close_round(1, ballot, {"trance": 2}, prev, AggregatorConfig(quorum=3))
    assert (r.winner, r.votes, r.mix, r.target, r.changed) == (STAY, 2, prev, prev, False)


def test_blend_weights_styles_by_vote_share_and_spreads_stay_over_previous() -> None:
    prev = (("house", 0.5), ("lofi", 0.5))
    ballot = direction_ballot(prev, [Option("techno", "Techno", "techno"), Option("trance", "Trance", "trance")])
    cfg = AggregatorConfig(mode="blend", inertia=0.0, min_weight=0.0)
    r = close_round(2, ballot, {"techno": 4, "trance": 2, STAY: 2}, prev, cfg)
    assert r.winner == "techno"
    assert dict(r.target) == pytest.approx({"techno": 0.5, "trance": 0.25, "house": 0.125, "lofi": 0.125})
    assert r.mix == r.target
    all_stay = close_round(2, ballot, {STAY: 5}, prev, cfg)
    assert (all_stay.mix, all_stay.changed) == (prev, False)


def test_anarchy_close_reports_winner_but_keeps_the_mix() -> None:
    prev = (("techno", 0.6), ("house", 0.4))
    r = close_round(3, direction_ballot(prev, OPTIONS), {"ambient": 3}, prev, AggregatorConfig(mode="anarchy"))
    assert (r.winner, r.mix, r.changed) == ("ambient", prev, False)


def test_pruning_can_exceed_the_raw_inertia_bound_by_the_pruned_mass() -> None:
    # house's 0.15 share falls to 0.0375 < min_weight and is pruned; the documented bound still holds
    prev = (("house", 0.85), ("techno", 0.15))
    r = close_round(0, direction_ballot(prev, OPTIONS), {"ambient": 1}, prev, AggregatorConfig())
    assert [s for s, _ in r.mix] == ["ambient", "house"]
    assert l1_distance(prev, r.mix) <= 2 * 0.75 + 2 * 0.05 * 1


@settings(max_examples=200)
@given(rounds(), mixes(), configs())
def test_round_results_are_normalised_and_bounded_by_inertia(rnd, prev, cfg: AggregatorConfig) -> None:
    rid, ballot, tallies = rnd
    prev = normalize(dict(prev), cfg.min_weight)
    r = close_round(rid, ballot, tallies, prev, cfg)
    assert_normalised(r.mix, cfg.min_weight)
    assert_normalised(r.target, cfg.min_weight)
    assert r.changed == (r.mix != prev)
    # (1 − inertia)·2 bounds the blend; each style snapped to 0 or min_weight may add 2·min_weight
    styles = len(dict(prev).keys() | dict(r.target).keys())
    assert l1_distance(prev, r.mix) <= (1 - cfg.inertia) * 2 + 2 * cfg.min_weight * styles + 1e-9
    if cfg.min_weight == 0:
        assert l1_distance(prev, r.mix) <= (1 - cfg.inertia) * 2 + 1e-9


@given(rounds(), mixes(), configs())
def test_quorum_not_met_leaves_the_mix_unchanged(rnd, prev, cfg: AggregatorConfig) -> None:
    rid, ballot, tallies = rnd
    on_ballot = sum(n for oid, n in tallies.items() if oid in {o.id for o in ballot})
    r = close_round(rid, ballot, tallies, prev, cfg)
    assert r.votes == on_ballot
    if on_ballot < cfg.quorum:
        assert (r.winner, r.mix, r.changed) == (STAY, validate_mix(prev), False)


@given(rounds(), mixes(), configs(), st.randoms(use_true_random=False))
def test_order_of_ballot_and_tallies_never_matters(rnd, prev, cfg: AggregatorConfig, rng: random.Random) -> None:
    rid, ballot, tallies = rnd
    shuffled_ballot = list(ballot)
    rng.shuffle(shuffled_ballot)
    items = list(tallies.items())
    rng.shuffle(items)
    assert close_round(rid, tuple(shuffled_ballot), dict(items), prev, cfg) == close_round(
        rid, ballot, tallies, prev, cfg
    )


@given(rounds(), mixes(), configs())
def test_the_winner_has_the_most_votes_and_stay_wins_ties(rnd, prev, cfg: AggregatorConfig) -> None:
    rid, ballot, tallies = rnd
    counts = count_votes([o.id for o in ballot], tallies)
    r = close_round(rid, ballot, tallies, prev, cfg)
    if r.votes >= cfg.quorum:
        assert counts[r.winner] == max(counts.values())
        if counts[STAY] == max(counts.values()):
            assert r.winner == STAY


# ---------------------------------------------------------------- anarchy


def test_every_anarchy_vote_nudges_and_stay_does_nothing() -> None:
    cfg = AggregatorConfig(mode="anarchy")
    m = anarchy_vote(mix_of("house"), "techno", cfg)
    assert dict(m) == pytest.approx({"house": 0.9, "techno": 0.1})
    assert dict(anarchy_vote(m, "techno", cfg)) == pytest.approx({"house": 0.81, "techno": 0.19})
    assert anarchy_vote(m, None, cfg) == m
    push = pressure(m, mix_of("house"))
    assert isinstance(push, Pressure) and dict(push.weights) == pytest.approx({"house": -0.1, "techno": 0.1})
    assert pressure(m, m).weights == ()


def test_anarchy_decay_halves_the_push_every_half_life() -> None:
    cfg = AggregatorConfig(mode="anarchy", anarchy_half_life_bars=8.0, min_weight=0.0)
    home = mix_of("house")
    m = (("house", 0.6), ("techno", 0.4))
    assert dict(anarchy_decay(m, home, 8.0, cfg)) == pytest.approx({"house": 0.8, "techno": 0.2})
    assert anarchy_decay(m, home, 0.0, cfg) == m


@given(mixes(), mixes(), configs(mode="anarchy"), st.lists(st.sampled_from(STYLES), max_size=10))
def test_anarchy_stays_normalised_and_decay_converges_to_home(home, start, cfg, votes) -> None:
    home, m = normalize(dict(home), cfg.min_weight), normalize(dict(start), cfg.min_weight)
    for style in votes:
        m = anarchy_vote(m, style, cfg)
        assert_normalised(m, cfg.min_weight)
    dist = l1_distance(m, home)
    for _ in range(200):
        m = anarchy_decay(m, home, cfg.anarchy_half_life_bars, cfg)
        assert_normalised(m, cfg.min_weight)
        if m == home:
            break
    assert m == home
    assert dist <= 2 + 1e-9


def test_arriving_styles_enter_at_min_weight_and_leaving_ones_drop() -> None:
    assert step_toward(mix_of("house"), mix_of("techno"), 0.02, 0.05) == (("house", 0.95), ("techno", 0.05))
    leaving = step_toward((("house", 0.96), ("lofi", 0.04)), mix_of("techno"), 0.5, 0.05)
    assert dict(leaving) == pytest.approx({"techno": 0.5 / 0.98, "house": 0.48 / 0.98})
    # a home style the votes pushed out comes back as the pressure decays
    home = validate_mix((("techno", 5 / 6), ("house", 1 / 6)))
    cfg = AggregatorConfig(mode="anarchy", min_weight=0.1, anarchy_half_life_bars=1.0)
    assert dict(anarchy_decay(mix_of("techno"), home, 1.0, cfg)) == pytest.approx({"techno": 0.9, "house": 0.1})


def test_step_toward_settles_exactly() -> None:
    a, b = mix_of("house"), validate_mix((("techno", 0.5), ("house", 0.5)))
    assert step_toward(a, b, 1.0, 0.05) == b
    assert step_toward(a, b, 0.0, 0.05) == a


# ---------------------------------------------------------------- configs


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"mode": "monarchy"}, "monarchy"),
        ({"inertia": 1.5}, "1.5"),
        ({"inertia": float("nan")}, "nan"),
        ({"quorum": 0}, "quorum"),
        ({"min_weight": 0.6}, "0.6"),
        ({"anarchy_step": 0.01}, "0.01"),
        ({"anarchy_half_life_bars": 0.0}, "half_life"),
    ],
)
def test_aggregator_config_validates(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        AggregatorConfig(**kwargs)


# ---------------------------------------------------------------- moves


def test_move_ballot_matches_moves() -> None:
    assert tuple(o.id for o in MOVE_BALLOT) == MOVES
    assert [o.label for o in MOVE_BALLOT] == ["Keep it", "More energy", "Less energy", "Faster", "Slower", "Drop it!"]


def test_apply_move_steps_and_clamps() -> None:
    cfg = MoveConfig()
    live = apply_move(Live(), "energy_up", cfg)
    assert live == Live(energy_offset=0.15)
    assert apply_move(Live(bpm_offset=28.0), "faster", cfg).bpm_offset == 30.0
    assert apply_move(Live(energy_offset=-0.45), "energy_down", cfg).energy_offset == -0.5
    dropped = apply_move(live, "drop", cfg)
    assert dropped.drop and dropped.energy_offset == 0.15
    assert not apply_move(dropped, "stay", cfg).drop  # a drop lands once
    with pytest.raises(ValueError, match="'wobble'"):
        apply_move(Live(), "wobble", cfg)


def test_close_moves_uses_quorum_and_tie_break() -> None:
    cfg = MoveConfig()
    assert close_moves(1, {"faster": 3, "drop": 1}, Live(), cfg) == ("faster", Live(bpm_offset=4.0))
    assert close_moves(1, {"faster": 3, STAY: 3}, Live(), cfg)[0] == STAY
    assert close_moves(1, {"faster": 2}, Live(drop=True), cfg, quorum=3) == (STAY, Live())
    w, _ = close_moves(9, {"faster": 2, "slower": 2, "bogus": 50}, Live(), cfg)
    assert w == min(["faster", "slower"], key=lambda m: tie_break_key(9, m))


@given(
    st.lists(st.sampled_from(MOVES), max_size=40),
    st.floats(-5, 5),
    st.floats(-100, 100),
    st.floats(0.01, 1.0),
    st.floats(0.5, 60.0),
)
def test_apply_move_keeps_live_within_limits(moves, e0, b0, estep, bstep) -> None:
    cfg = MoveConfig(energy_step=estep, bpm_step=bstep)
    live = Live(energy_offset=e0, bpm_offset=b0)
    for mv in moves:
        live = apply_move(live, mv, cfg)
        assert -cfg.energy_limit <= live.energy_offset <= cfg.energy_limit
        assert -cfg.bpm_limit <= live.bpm_offset <= cfg.bpm_limit
        assert live.drop == (mv == "drop")
