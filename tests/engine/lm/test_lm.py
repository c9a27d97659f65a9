from __future__ import annotations

import pytest
import torch

from engine.generate.guidance import combine_guidance, guided_prefill, guided_step, style_rows
from engine.lm.attention import CacheFullError
from engine.lm.linear import StepLinear
from engine.lm.model import LMConfig, TokenLM, sinusoidal_positions
from engine.lm.step import decode_step
from engine.lm.stream import StreamClosedError

TOL = 1e-5  # max abs difference between cached and uncached logits

TINY = LMConfig(
    num_codebooks=4, card=32, dim=32, num_layers=2, num_heads=4, ffn_dim=64, max_len=24, num_styles=3, num_controls=2
)
TINY_CROSS = LMConfig(
    num_codebooks=4, card=32, dim=32, num_layers=2, num_heads=4, ffn_dim=64, max_len=24, num_styles=0, cross_dim=12
)


@pytest.fixture
def lm() -> TokenLM:
    return TokenLM(TINY, seed=0).eval()


@pytest.fixture
def cross_lm() -> TokenLM:
    return TokenLM(TINY_CROSS, seed=0).eval()


def tokens(B: int, T: int, seed: int = 0, card: int = 32) -> torch.Tensor:
    return torch.randint(0, card + 1, (B, 4, T), generator=torch.Generator().manual_seed(seed))  # (B, K, T)


def mix(lm: TokenLM, B: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return lm.condition(torch.rand(B, 3, generator=g).softmax(-1), torch.rand(B, 2, generator=g))  # (B, D)


# ---- config ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        dict(dim=30, num_heads=4),
        dict(num_layers=0),
        dict(num_styles=-1),
        dict(activation="swish"),
        dict(cross_dim=0),
        dict(dropout=1.0),
        dict(card=0),
    ],
)
def test_config_rejects_bad_values(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        LMConfig(**bad)  # type: ignore[arg-type]


def test_default_config_is_embedded_size() -> None:
    lm = TokenLM(LMConfig())
    assert 8e6 <= lm.num_params <= 15e6  # the 8-15 M at K=4, card=1024 (d384 x 4: 10.2 M)


def test_init_is_deterministic_by_seed_only() -> None:
    torch.manual_seed(123)
    a = TokenLM(TINY, seed=7).state_dict()
    torch.manual_seed(456)
    b = TokenLM(TINY, seed=7).state_dict()
    c = TokenLM(TINY, seed=8).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["embed.weight"], c["embed.weight"])


def test_positions_match_musicgen_formula() -> None:
    table = sinusoidal_positions(10, 6)  # half = 3: frequencies 1, 10000 ** -0.5, 10000 ** -1
    freqs = torch.tensor([1.0, 0.01, 1e-4])
    angles = torch.arange(10.0)[:, None] * freqs
    assert torch.allclose(table, torch.cat([angles.cos(), angles.sin()], dim=1), atol=1e-6)
    assert sinusoidal_positions(4, 7)[:, -1].abs().max() == 0  # odd width: zero column


# ---- shapes and the cache ----------------------------------------------------------------------------------


def test_shapes(lm: TokenLM) -> None:
    x = tokens(2, 5)
    assert lm(x).shape == (2, 4, 5, 32)
    with lm.streaming(batch_size=2) as stream:
        assert stream.prefill(x).shape == (2, 4, 32)
        assert stream.step(x[:, :, :1]).shape == (2, 4, 32)
        assert stream.length == 6 and stream.remaining == 18


def test_cached_steps_equal_uncached_forward(lm: TokenLM) -> None:
    x = tokens(2, 20)
    cond = torch.stack([mix(lm, 2, t // 5) for t in range(20)], dim=1)  # (B, T, D): changes every 5 frames
    full = lm(x, cond)  # (B, K, T, card)
    with lm.streaming(batch_size=2) as stream:
        got = [stream.prefill(x[:, :, :6], cond[:, :6])]  # positions 0..5, causal mask
        got.append(stream.prefill(x[:, :, 6:10], cond[:, 6:10]))  # past > 0 and T > 1: explicit mask
        got += [stream.step(x[:, :, t : t + 1], cond[:, t]) for t in range(10, 20)]
    want = [full[:, :, 5], full[:, :, 9]] + [full[:, :, t] for t in range(10, 20)]
    for g, w in zip(got, want, strict=True):
        assert (g - w).abs().max() < TOL


def test_style_change_mid_stream_keeps_cached_kv(lm: TokenLM) -> None:
    x = tokens(2, 12)
    a, b = mix(lm, 2, 1), mix(lm, 2, 2)
    with lm.streaming(batch_size=2) as stream:
        stream.prefill(x[:, :, :11], a)
        cached = stream.cache.kv[:, :, :, :, :11].clone()
        changed = stream.step(x[:, :, 11:], b)
        assert torch.equal(stream.cache.kv[:, :, :, :, :11], cached)
    with lm.streaming(batch_size=2) as stream:
        stream.prefill(x[:, :, :11], a)
        unchanged = stream.step(x[:, :, 11:], a)
    assert (changed - unchanged).abs().max() > 1e-3
    per_frame = torch.cat([a[:, None].expand(2, 11, -1), b[:, None]], dim=1)  # (B, T, D)
    assert (changed - lm(x, per_frame)[:, :, -1]).abs().max() < TOL


def test_cross_swap_keeps_self_attention_cache(cross_lm: TokenLM) -> None:
    x = tokens(2, 8)
    g = torch.Generator().manual_seed(3)
    prompt_a, prompt_b = torch.randn(2, 5, 12, generator=g), torch.randn(2, 3, 12, generator=g)
    mask_a = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    full_a = cross_lm(x, cross_states=prompt_a, cross_mask=mask_a)
    with cross_lm.streaming(batch_size=2) as stream:
        stream.set_cross(prompt_a, mask_a)
        assert (stream.prefill(x[:, :, :7]) - full_a[:, :, 6]).abs().max() < TOL
        cached = stream.cache.kv[:, :, :, :, :7].clone()
        stream.set_cross(prompt_b)  # a new prompt, shorter, no padding
        swapped = stream.step(x[:, :, 7:])
        assert torch.equal(stream.cache.kv[:, :, :, :, :7], cached)
        new_frame = stream.cache.kv[:, :, :, :, 7].clone()  # (L, 2, B, H, hd)
    with cross_lm.streaming(batch_size=2) as stream:
        stream.set_cross(prompt_a, mask_a)
        stream.prefill(x[:, :, :8])
        kept_frame = stream.cache.kv[:, :, :, :, 7]
    assert (new_frame[0] - kept_frame[0]).abs().max() < TOL  # layer 0 sees only the tokens
    assert (new_frame[1] - kept_frame[1]).abs().max() > 1e-3  # layer 1 saw the new prompt
    assert (swapped - full_a[:, :, 7]).abs().max() > 1e-3


def test_padding_in_cross_mask_is_ignored(cross_lm: TokenLM) -> None:
    x = tokens(1, 4)
    states = torch.randn(1, 4, 12, generator=torch.Generator().manual_seed(0))
    masked = cross_lm(x, cross_states=states, cross_mask=torch.tensor([[1, 1, 0, 0]]))
    cut = cross_lm(x, cross_states=states[:, :2])
    assert (masked - cut).abs().max() < TOL


def test_cache_full_then_sliding_window_reprime(lm: TokenLM) -> None:
    x = tokens(1, 30)
    window, stride = 24, 8
    with lm.streaming(batch_size=1) as stream:
        stream.prefill(x[:, :, :20])
        for t in range(20, 24):
            stream.step(x[:, :, t : t + 1])
        with pytest.raises(CacheFullError, match="reset"):
            stream.step(x[:, :, 24:25])
        assert stream.length == 24
        stream.reset()
        keep = x[:, :, 24 - (window - stride) : 24]  # the last window - stride frames, positions from 0
        assert (stream.prefill(keep) - lm(keep)[:, :, -1]).abs().max() < TOL
        assert stream.length == window - stride


def test_select_rows_rebatches_history(lm: TokenLM) -> None:
    x = tokens(2, 6)
    with lm.streaming(batch_size=2) as stream:
        stream.prefill(x[:, :, :5])
        stream.select_rows([1, 0, 0])
        got = stream.step(x[:, :, 5:][[1, 0, 0]])
    full = lm(x)[:, :, -1]
    assert (got - full[[1, 0, 0]]).abs().max() < TOL


def test_bad_inputs_raise_value_errors(lm: TokenLM, cross_lm: TokenLM) -> None:
    with pytest.raises(ValueError, match="tokens must be"):
        lm(torch.zeros(2, 3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        lm(torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match=r"\[0, 32\]"):
        lm(torch.full((1, 4, 2), 33))
    with pytest.raises(ValueError, match="cond"):
        lm(tokens(2, 3), torch.zeros(2, 5))
    with pytest.raises(ValueError, match="max_len"):
        lm(tokens(1, 25))
    with pytest.raises(ValueError, match="style_weights"):
        lm.condition(torch.ones(2, 4))
    with pytest.raises(ValueError, match="cross"):
        lm.encode_cross(torch.zeros(1, 2, 12))
    with pytest.raises(ValueError, match="encoder states"):
        cross_lm(tokens(1, 2), cross_states=torch.zeros(1, 2, 11))
    with lm.streaming(batch_size=2) as stream:
        with pytest.raises(ValueError, match="rows"):
            stream.prefill(tokens(3, 2))
        with pytest.raises(ValueError, match="1 frame"):
            stream.step(tokens(2, 2))
        with pytest.raises(ValueError, match="rows"):
            stream.select_rows([2])
        assert stream.length == 0
    with pytest.raises(StreamClosedError):
        stream.step(tokens(2, 1))


def test_training_forward_backward_and_dropout() -> None:
    lm = TokenLM(LMConfig(**{**TINY.__dict__, "dropout": 0.1}))
    x = tokens(2, 8)
    logits = lm(x, mix(lm, 2, 0))
    loss = torch.nn.functional.cross_entropy(logits[:, :, :-1].reshape(-1, 32), x[:, :, 1:].clamp(max=31).reshape(-1))
    loss.backward()
    assert lm.style_emb is not None and lm.style_emb.weight.grad is not None
    lm.eval()
    assert torch.equal(lm(x), lm(x))


# ---- classifier-free guidance ------------------------------------------------------------------------------


def test_combine_guidance_formula() -> None:
    uncond, c1, c2 = torch.tensor([0.0, 1.0]), torch.tensor([2.0, 1.0]), torch.tensor([0.0, 5.0])
    logits = torch.stack([uncond, c1, c2])[None, :, None, :]  # (G=1, R=3, K=1, card=2)
    got = combine_guidance(logits, [0.25, 0.75], scale=3.0)
    # uncond + 3 * (0.25 * (c1 - u) + 0.75 * (c2 - u)) = [0, 1] + 3 * ([0.5, 0] + [0, 3])
    assert torch.allclose(got, torch.tensor([[[1.5, 10.0]]]))
    with pytest.raises(ValueError, match="weights"):
        combine_guidance(logits, [1.0], scale=3.0)


def test_guided_step_equals_manual_rows(lm: TokenLM) -> None:
    x = tokens(1, 6)
    weights = torch.tensor([[0.2, 0.5, 0.3]])
    cond, w = style_rows(lm, weights, torch.zeros(1, 2), per_style=True)  # rows: null + 3 styles
    assert cond.shape == (4, 32) and torch.equal(w, weights)
    with lm.streaming(batch_size=4) as stream:
        guided_prefill(stream, x[:, :, :5], w, 3.0, cond)
        got = guided_step(stream, x[:, :, 5:], w, 3.0, cond)
    rows = lm(x.expand(4, -1, -1), cond)[:, :, -1]  # (R, K, card)
    want = rows[0] + 3.0 * sum(weights[0, i] * (rows[1 + i] - rows[0]) for i in range(3))
    assert (got[0] - want).abs().max() < 1e-4


def test_two_row_style_guidance_at_scale_one_is_the_mix(lm: TokenLM) -> None:
    weights = torch.tensor([[0.0, 1.0, 0.0]])
    cond, w = style_rows(lm, weights)
    x = tokens(1, 3)
    with lm.streaming(batch_size=2) as stream:
        got = guided_prefill(stream, x, w, 1.0, cond)
    assert (got[0] - lm(x, lm.condition(weights))[0, :, -1]).abs().max() < TOL


@pytest.mark.parametrize("mode", [torch.inference_mode, torch.no_grad, torch.enable_grad])
def test_stream_works_under_any_grad_mode(lm: TokenLM, mode: type) -> None:
    x = tokens(2, 6)
    with lm.streaming(batch_size=2) as stream:
        with mode():
            stream.prefill(x[:, :, :4])
            stream.select_rows([1, 0])
        got = stream.step(x[:, :, 4:5][[1, 0]])  # outside the mode
        with mode():
            got = stream.step(x[:, :, 5:6][[1, 0]])
    assert (got - lm(x).detach()[[1, 0], :, -1]).abs().max() < TOL


def test_bfloat16_stream_is_close_to_float32(lm: TokenLM) -> None:
    x = tokens(2, 8)
    cond = mix(lm, 2, 0)
    want = lm(x, cond).detach()[:, :, -1]
    half = TokenLM(TINY, seed=0).eval().to(torch.bfloat16)
    with half.streaming(batch_size=2) as stream:
        stream.prefill(x[:, :, :7], cond)  # a float32 cond is cast to the model's dtype
        got = stream.step(x[:, :, 7:], cond)
    assert got.dtype == torch.bfloat16 and (got.float() - want).abs().max() < 0.05


def test_a_half_precision_model_attends_in_float32_on_cpu(lm: TokenLM) -> None:
    half = TokenLM(TINY, seed=0).eval().to(torch.bfloat16)
    assert lm.attention_dtype == torch.float32 and half.attention_dtype == torch.float32
    with half.streaming(batch_size=2) as stream:
        assert stream.cache.kv.dtype == torch.float32  # bf16 attention is several times slower on CPU
        stream.prefill(tokens(2, 3), mix(half, 2, 0))
        assert stream.cache.kv[:, :, :, :, :3].abs().sum() > 0  # written through the dtype change


@pytest.mark.parametrize("which", ["style", "cross"])
def test_decode_step_is_the_general_pass_for_one_frame(lm: TokenLM, cross_lm: TokenLM, which: str) -> None:
    """The hot path (`engine.lm.step.decode_step`) gives run()'s logits and writes the same cache."""
    model = lm if which == "style" else cross_lm
    x = tokens(3, 9)
    g = torch.Generator().manual_seed(5)
    cond = mix(lm, 3, 4) if which == "style" else None
    with model.streaming(batch_size=3) as fast, model.streaming(batch_size=3) as slow, torch.inference_mode():
        if which == "cross":
            states, mask = torch.randn(3, 4, 12, generator=g), torch.tensor([[1, 1, 0, 0], [1] * 4, [0] * 4])
            fast.set_cross(states, mask)
            slow.set_cross(states, mask)
        fast.prefill(x[:, :, :4], cond)
        slow.prefill(x[:, :, :4], cond)
        for t in range(4, 9):
            got = decode_step(model, x[:, :, t : t + 1], cond, fast.cache, fast.cross)  # (B, K, card)
            want = model.run(x[:, :, t : t + 1], cond, slow.cache, slow.cross, last_only=True)[:, :, 0]
            assert (got - want).abs().max() < TOL
        assert fast.length == slow.length == 9
        assert (fast.cache.kv - slow.cache.kv).abs().max() < TOL


def test_int8_stream_is_close_to_float32(lm: TokenLM) -> None:
    x = tokens(2, 8)
    cond = mix(lm, 2, 0)
    want = lm(x, cond).detach()[:, :, -1]  # (B, K, card) float32 weights
    q = TokenLM(TINY, seed=0).eval().quantize_int8().to(torch.bfloat16)
    assert all(m.int8 is not None for m in q.modules() if isinstance(m, StepLinear))
    with q.streaming(batch_size=2) as stream:
        stream.prefill(x[:, :, :7], cond)
        got = stream.step(x[:, :, 7:], cond)  # every linear on the int8 kernel
    assert got.dtype == torch.bfloat16 and (got.float() - want).abs().max() < 0.05
    assert bool((got.float().argmax(-1) == want.argmax(-1)).float().mean() >= 0.75)


def test_two_row_guidance_is_the_formula() -> None:
    logits = torch.randn(3, 2, 4, 8, generator=torch.Generator().manual_seed(0))  # (G, R=2, K, card)
    w = torch.tensor([[0.5], [1.0], [2.0]])  # (G, 1)
    want = logits[:, 0] + 3.0 * w[:, :, None] * (logits[:, 1] - logits[:, 0])
    assert (combine_guidance(logits, w, scale=3.0) - want).abs().max() < 1e-5
