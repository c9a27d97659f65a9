from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.lm.sampling import sample

CARD = 16

logits_st = st.lists(
    st.floats(min_value=-8, max_value=8, allow_nan=False, width=32), min_size=2 * 3 * CARD, max_size=2 * 3 * CARD
).map(lambda xs: torch.tensor(xs).view(2, 3, CARD))  # (B, K, card)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@settings(max_examples=60, deadline=None)
@given(logits=logits_st, top_k=st.integers(1, CARD + 4), seed=st.integers(0, 2**31))
def test_top_k_never_samples_outside_the_k_largest(logits: torch.Tensor, top_k: int, seed: int) -> None:
    got = sample(logits, generator=gen(seed), temperature=1.3, top_k=top_k)
    kth = logits.topk(min(top_k, CARD), dim=-1).values[..., -1]  # (B, K)
    assert (logits.gather(-1, got[..., None])[..., 0] >= kth).all()


@settings(max_examples=60, deadline=None)
@given(
    logits=logits_st,
    top_p=st.floats(0.01, 1.0),
    top_k=st.sampled_from([0, 3, 8]),
    temperature=st.floats(0.2, 2.0),
    seed=st.integers(0, 2**31),
)
def test_top_p_never_samples_outside_the_nucleus(
    logits: torch.Tensor, top_p: float, top_k: int, temperature: float, seed: int
) -> None:
    got = sample(logits, generator=gen(seed), temperature=temperature, top_k=top_k, top_p=top_p)
    scaled = logits / temperature
    if top_k:
        kth = scaled.topk(top_k, dim=-1).values[..., -1:]  # (B, K, 1)
        scaled = scaled.masked_fill(scaled < kth, -math.inf)
    probs = scaled.softmax(-1)  # (B, K, card)
    picked = probs.gather(-1, got[..., None])  # (B, K, 1)
    more_likely = (probs * (probs > picked)).sum(-1)  # (B, K) mass strictly above the picked token
    assert (picked[..., 0] > 0).all()
    assert (more_likely < top_p + 1e-5).all()


@settings(max_examples=30, deadline=None)
@given(logits=logits_st)
def test_temperature_zero_is_argmax(logits: torch.Tensor) -> None:
    g = gen(0)
    state = g.get_state()
    assert torch.equal(sample(logits, generator=g, temperature=0.0, top_k=5, top_p=0.5), logits.argmax(-1))
    assert torch.equal(g.get_state(), state)  # nothing drawn
    top1 = sample(logits, generator=gen(1), top_k=1)
    assert torch.equal(logits.gather(-1, top1[..., None])[..., 0], logits.amax(-1))  # a largest logit (ties)


@pytest.mark.parametrize("kwargs", [{}, {"top_k": 5}, {"top_p": 0.9}, {"top_k": 50, "top_p": 0.8}])
def test_same_seed_same_tokens(kwargs: dict[str, float]) -> None:
    logits = torch.randn(4, 4, 1024, generator=gen(9))
    a = [sample(logits, generator=g, **kwargs) for g in [gen(5)] for _ in range(3)]  # one generator, 3 draws
    b = [sample(logits, generator=g, **kwargs) for g in [gen(5)] for _ in range(3)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert a[0].shape == (4, 4) and a[0].dtype == torch.int64
    assert not torch.equal(sample(logits, generator=gen(6), **kwargs), a[0])


def test_masked_tokens_are_never_sampled() -> None:
    logits = torch.tensor([0.0, 0.0, -math.inf, 0.0]).expand(500, 4)
    assert (sample(logits, generator=gen(0)) != 2).all()


def test_sampling_follows_the_distribution() -> None:
    probs = torch.tensor([0.7, 0.2, 0.1])
    got = sample(probs.log().expand(20000, 3), generator=gen(0))
    assert torch.allclose(torch.bincount(got, minlength=3) / 20000, probs, atol=0.015)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": math.inf}, "temperature"),
        ({"top_k": -1}, "top_k"),
        ({"top_k": 2.5}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
    ],
)
def test_bad_settings_raise(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sample(torch.zeros(1, 1, 4), generator=gen(0), **kwargs)


def test_bad_logits_raise() -> None:
    with pytest.raises(ValueError, match="NaN"):
        sample(torch.tensor([[[0.0, math.nan]]]), generator=gen(0))
    with pytest.raises(ValueError, match="floating"):
        sample(torch.zeros(1, 1, 4, dtype=torch.long), generator=gen(0))
