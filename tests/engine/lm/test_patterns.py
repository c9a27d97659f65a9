from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from engine.lm.patterns import (
    build_delay_pattern,
    complete_frames,
    delay_pattern_mask,
    delayed_step_mask,
    revert_delay_pattern,
)

CARD = 1024  # codebook size in these tests; the special id is CARD, just outside it


def _codes(batch: int, num_codebooks: int, length: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, CARD, (batch, num_codebooks, length), generator=generator)  # (B, K, T)


@given(
    batch=st.integers(1, 3),
    num_codebooks=st.integers(1, 8),
    length=st.integers(1, 40),
    seed=st.integers(0, 2**31 - 1),
)
def test_build_then_revert_is_identity(batch: int, num_codebooks: int, length: int, seed: int) -> None:
    codes = _codes(batch, num_codebooks, length, seed)
    seq = build_delay_pattern(codes, special=CARD)
    assert seq.shape == (batch, num_codebooks, length + num_codebooks - 1)
    assert seq.dtype == torch.long
    assert torch.equal(revert_delay_pattern(seq), codes)
    # the special id sits exactly where the mask says padding is, and nowhere else
    mask = delay_pattern_mask(num_codebooks, length)  # (K, S)
    assert torch.equal(seq != CARD, mask.expand_as(seq))


@given(num_codebooks=st.integers(1, 8), length=st.integers(1, 20), cut=st.integers(0, 30))
def test_revert_of_a_prefix_gives_the_complete_frames(num_codebooks: int, length: int, cut: int) -> None:
    codes = _codes(1, num_codebooks, length, seed=cut)
    seq = build_delay_pattern(codes, special=CARD)
    steps = min(cut, seq.shape[-1])
    done = complete_frames(steps, num_codebooks)
    if steps >= num_codebooks:
        assert torch.equal(revert_delay_pattern(seq[..., :steps]), codes[..., :done])
    else:
        assert done == 0


def test_special_positions_for_k4_t3() -> None:
    codes = torch.tensor([[[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]]])  # (1, 4, 3)
    seq = build_delay_pattern(codes, special=99)
    expected = torch.tensor(
        [
            [
                [1, 2, 3, 99, 99, 99],
                [99, 4, 5, 6, 99, 99],
                [99, 99, 7, 8, 9, 99],
                [99, 99, 99, 10, 11, 12],
            ]
        ]
    )
    assert torch.equal(seq, expected)


def test_single_codebook_is_unchanged() -> None:
    codes = _codes(2, 1, 7, seed=3)
    assert torch.equal(build_delay_pattern(codes, special=CARD), codes)
    assert torch.equal(revert_delay_pattern(codes), codes)


def test_complete_frames() -> None:
    assert [complete_frames(s, 4) for s in range(7)] == [0, 0, 0, 0, 1, 2, 3]  # frame 0 is whole after step 3
    assert complete_frames(5, 1) == 5


def test_delayed_step_mask_leading_gap() -> None:
    assert delayed_step_mask(0, 4).tolist() == [True, False, False, False]
    assert delayed_step_mask(2, 4).tolist() == [True, True, True, False]
    assert delayed_step_mask(3, 4).tolist() == [True, True, True, True]
    assert delayed_step_mask(1000, 4).tolist() == [True] * 4


def test_delayed_step_mask_matches_the_built_layout() -> None:
    num_codebooks, length = 4, 3
    seq = build_delay_pattern(_codes(1, num_codebooks, length, seed=0), special=CARD)
    for step in range(seq.shape[-1]):
        real = seq[0, :, step] != CARD  # (K,)
        assert torch.equal(delayed_step_mask(step, num_codebooks, num_frames=length), real)


def test_revert_needs_at_least_k_steps() -> None:
    with pytest.raises(ValueError, match=r"S >= K.*S = 3"):
        revert_delay_pattern(torch.zeros(1, 4, 3, dtype=torch.long))


@pytest.mark.parametrize(
    ("codes", "error", "match"),
    [
        (torch.zeros(4, 5, dtype=torch.long), ValueError, r"shape \(B, K, T\), got \(4, 5\)"),
        (torch.zeros(1, 4, 5, dtype=torch.int32), TypeError, "torch.int32"),
        (torch.zeros(1, 4, 5), TypeError, "torch.float32"),
        (torch.zeros(1, 0, 5, dtype=torch.long), ValueError, "K = 0"),
        (torch.zeros(1, 4, 0, dtype=torch.long), ValueError, "T = 0"),
        ([[[1]]], TypeError, "list"),
    ],
)
def test_build_rejects_bad_codes(codes: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        build_delay_pattern(codes, special=CARD)  # type: ignore[arg-type]


def test_build_rejects_a_special_id_inside_the_codes() -> None:
    codes = torch.tensor([[[0, 5], [7, 1]]])
    with pytest.raises(ValueError, match="special id 7"):
        build_delay_pattern(codes, special=7)
    with pytest.raises(TypeError, match="special"):
        build_delay_pattern(codes, special=1.5)  # type: ignore[arg-type]


def test_revert_rejects_bad_sequences() -> None:
    with pytest.raises(ValueError, match=r"\(B, K, T\)"):
        revert_delay_pattern(torch.zeros(4, 6, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.float32"):
        revert_delay_pattern(torch.zeros(1, 4, 6))


def test_helpers_reject_bad_counts() -> None:
    with pytest.raises(ValueError, match="steps must be >= 0, got -1"):
        complete_frames(-1, 4)
    with pytest.raises(ValueError, match="num_codebooks must be >= 1, got 0"):
        delayed_step_mask(0, 0)
    with pytest.raises(TypeError, match="step must be an int"):
        delayed_step_mask(1.0, 4)  # type: ignore[arg-type]
