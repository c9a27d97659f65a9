"""StepLinear's inference paths (int8, packed float32, half-precision prefill) against nn.Linear's own result."""

from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import engine.lm.linear
from engine.lm.linear import StepLinear, quantize_rows_int8


def layer(in_features: int = 48, out_features: int = 80, bias: bool = True, seed: int = 0) -> StepLinear:
    torch.manual_seed(seed)
    return StepLinear(in_features, out_features, bias=bias)


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 12),
    cols=st.integers(1, 40),
    scale=st.floats(1e-3, 1e3),
    seed=st.integers(0, 2**16),
)
def test_int8_rounding_error_is_at_most_half_a_step(rows: int, cols: int, scale: float, seed: int) -> None:
    w = torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed)) * scale  # (out, in)
    q, scales = quantize_rows_int8(w)
    assert q.dtype == torch.int8 and scales.shape == (rows,) and int(q.abs().max()) <= 127
    err = (q.float() * scales[:, None] - w).abs()  # (out, in)
    assert bool((err <= scales[:, None] * 0.5 + 1e-6 * scale).all())
    assert bool((q.abs().amax(dim=1) == 127).all())  # each row uses the full range


def test_an_all_zero_row_quantizes_to_zeros() -> None:
    q, scales = quantize_rows_int8(torch.zeros(3, 16))
    assert bool((q == 0).all()) and bool((scales == 1).all())


@pytest.mark.parametrize("rows", [1, 2, 3, 8, 64])
def test_int8_step_matches_the_dequantized_weight(rows: int) -> None:
    lin = layer()
    lin.quantize_int8()
    assert lin.int8 is not None and lin.int8_scales is not None
    x = torch.randn(rows, 1, 48).bfloat16()  # (B, T, in)
    deq = lin.int8.float() * lin.int8_scales[:, None]  # (out, in)
    want = F.linear(x.float(), deq, lin.bias)  # (B, T, out)
    with torch.inference_mode():
        got = lin(x)
    assert got.shape == want.shape and got.dtype == torch.bfloat16
    assert (got.float() - want).abs().max() < 0.02 * want.abs().max()  # bfloat16 activations and output
    full = F.linear(x.float(), lin.weight, lin.bias)  # the float weight: int8 is close to it too
    assert (got.float() - full).abs().max() < 0.03 * full.abs().max()


def test_int8_takes_float32_activations_and_returns_float32() -> None:
    lin = layer()
    lin.quantize_int8()
    x = torch.randn(2, 48)
    with torch.no_grad():
        got = lin(x)
        want = F.linear(x, lin.weight, lin.bias)
    assert got.dtype == torch.float32 and (got - want).abs().max() < 0.03 * want.abs().max()


def test_int8_is_for_inference_only_and_keeps_the_state_dict() -> None:
    lin = layer()
    keys = set(lin.state_dict())
    lin.quantize_int8()
    assert set(lin.state_dict()) == keys  # the float weight is what is saved
    x = torch.randn(2, 48, requires_grad=True)
    y = lin(x)  # grad enabled: nn.Linear's exact result, differentiable
    assert torch.equal(y, F.linear(x, lin.weight, lin.bias))
    y.sum().backward()
    assert x.grad is not None and lin.weight.grad is not None
    lin.dequantize()
    with torch.no_grad():
        assert torch.equal(lin(x), F.linear(x, lin.weight, lin.bias))


def test_widths_the_int8_kernel_cannot_take_fall_back_to_the_float_weight() -> None:
    lin = layer(in_features=12)  # not a multiple of 8: torch's int8 kernel misreads it
    lin.quantize_int8()
    x = torch.randn(3, 12)
    with torch.no_grad():
        assert torch.equal(lin(x), F.linear(x, lin.weight, lin.bias))


@pytest.mark.parametrize("rows", [1, 2, 3, 8, 64, 65])
@pytest.mark.parametrize("onednn", [True, False])
def test_float32_fast_path_matches_linear(rows: int, onednn: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine.lm.linear, "PACK_MIN_WEIGHTS", 0)  # take the fast path at any size
    monkeypatch.setattr(engine.lm.linear, "onednn_available", lambda: onednn)
    lin = layer()
    x = torch.randn(rows, 1, 48)  # (B, T, in): a streaming step of `rows` rows
    want = F.linear(x, lin.weight, lin.bias)  # (B, T, out)
    with torch.inference_mode():
        got = lin(x)
    assert got.shape == want.shape and got.is_contiguous()
    assert (got - want).abs().max() < 1e-5


def test_the_packed_weight_follows_weight_updates(monkeypatch: pytest.MonkeyPatch) -> None:
    if not engine.lm.linear.onednn_available():
        pytest.skip("torch built without oneDNN")
    monkeypatch.setattr(engine.lm.linear, "PACK_MIN_WEIGHTS", 0)
    lin = layer()
    x = torch.randn(2, 48)
    with torch.no_grad():
        before = lin(x)
        lin.weight.mul_(2.0)  # e.g. load_state_dict or an optimiser step: the weight's version moves
        after = lin(x)
    assert (after - lin.bias - 2 * (before - lin.bias)).abs().max() < 1e-4


def test_a_half_precision_prefill_runs_in_float32() -> None:
    lin = layer().to(torch.bfloat16)
    x = torch.randn(200, 48).bfloat16()  # more rows than a step: a prefill
    want = F.linear(x.float(), lin.weight.float(), lin.bias.float())
    with torch.inference_mode():
        got = lin(x)
    assert got.dtype == torch.bfloat16 and (got.float() - want).abs().max() < 0.01 * want.abs().max()


def test_a_packed_layer_copies_and_pickles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine.lm.linear, "PACK_MIN_WEIGHTS", 0)
    lin = layer()
    lin.quantize_int8()
    x = torch.randn(2, 48)
    with torch.no_grad():
        lin.dequantize()
        want = lin(x)  # builds the packed cache where oneDNN exists
        twin = copy.deepcopy(lin)
        buf = io.BytesIO()
        torch.save(lin, buf)
        buf.seek(0)
        loaded = torch.load(buf, weights_only=False)
        for other in (twin, loaded):
            assert (other(x) - want).abs().max() < 1e-6
