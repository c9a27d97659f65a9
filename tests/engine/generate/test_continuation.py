"""The continuation loop over tiny seeded random models (no weights, no network)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.codec.model import Codec, CodecConfig
from engine.generate.conditioning import NUM_CONTROLS
from engine.generate.continuation import ContinuationConfig, TokenSource
from engine.lm.model import LMConfig, TokenLM
from engine.music.prompt import Prompt
from engine.music.styles import UnknownStyleError

SR = 24000


def tiny_lm(seed: int = 0, num_controls: int = NUM_CONTROLS, num_layers: int = 2) -> TokenLM:
    """A seeded 2-codebook x 16 style model, 32 wide."""
    cfg = LMConfig(
        num_codebooks=2,
        card=16,
        dim=32,
        num_layers=num_layers,
        num_heads=2,
        ffn_dim=64,
        max_len=64,
        num_styles=8,
        num_controls=num_controls,
    )
    return TokenLM(cfg, seed=seed)


def tiny(window: int = 48, stride: int = 16, seed: int = 0, chunk: int = 10, bpm: float = 200.0) -> TokenSource:
    lm = tiny_lm(seed)
    codec = Codec.random(CodecConfig(num_filters=4, codebook_size=16, num_codebooks=2, hidden_size=16), seed=seed)
    cfg = ContinuationConfig(window=window, stride=stride, chunk_frames=chunk, seed=seed, top_k=8)
    return TokenSource(lm, codec, Prompt.of("drum-and-bass", bpm=bpm), cfg)


def test_chunks_are_contiguous_and_bars_follow_the_tempo() -> None:
    src = tiny()
    assert src.sample_rate == SR
    chunks = [src.next_chunk() for _ in range(30)]  # 300 frames = 6 s = 5 bars at 200 bpm
    starts = [c.start_sample for c in chunks]
    assert starts == list(np.cumsum([0] + [len(c.pcm) for c in chunks[:-1]]))
    bars = [(c.start_sample + off, bar) for c in chunks for off, bar in c.bar_starts]
    assert [b for _, b in bars] == list(range(len(bars))) and len(bars) >= 5
    gaps = np.diff([s for s, _ in bars])
    assert np.all(np.abs(gaps - 1.2 * SR) <= 480)  # a bar at 200 bpm is 1.2 s, to within one frame
    assert all(c.pcm.dtype == np.float32 and np.isfinite(c.pcm).all() for c in chunks)


def test_sliding_window_reprimes_and_chunked_decode_matches_whole_decode() -> None:
    src = tiny(window=24, stride=12)
    frames: list[torch.Tensor] = []
    push = src._decoder.push

    def spy(codes: torch.Tensor) -> torch.Tensor:
        frames.append(codes.clone())
        return push(codes)

    src._decoder.push = spy  # type: ignore[method-assign]
    lengths = []
    pcm = []
    for _ in range(12):  # 120 frames through a 24-step window: several re-primes
        pcm.append(src.next_chunk().pcm)
        lengths.append(src._stream.length)
    assert max(lengths) <= 24 and min(lengths) >= 12
    codes = torch.cat(frames, dim=2)  # (1, K, 120)
    assert codes.shape == (1, 2, 120) and int(codes.max()) < 16  # no special token leaks into audio
    whole = src.codec.decode(codes)[0].numpy()  # (120 * hop,)
    got = np.concatenate(pcm)
    n = len(got)
    assert n > 0.9 * len(whole)
    assert np.max(np.abs(got - np.clip(whole[:n], -1, 1))) < 1e-4


def test_prompt_change_keeps_the_context_and_glides_in_from_its_bar() -> None:
    src = tiny()
    for _ in range(6):
        src.next_chunk()
    before = src._stream.length
    land = src.set_prompt(Prompt.of("ambient", bpm=200.0, ramp_bars=1), at_bar=src.next_bar + 1)
    assert land >= 2
    assert src._stream.length == before  # nothing thrown away: only the conditioning changes
    playing = []
    for _ in range(40):
        c = src.next_chunk()
        playing.append(c.now_playing)
        if c.now_playing.genre == "ambient" and dict(c.now_playing.mix).get("ambient") == pytest.approx(1.0):
            break
    genres = [p.genre for p in playing]
    assert genres[0] == "drum-and-bass" and genres[-1] == "ambient"
    shares = [dict(p.mix).get("ambient", 0.0) for p in playing]
    assert shares == sorted(shares)  # a glide, not a cut


def test_bad_prompts_are_refused_and_the_music_goes_on() -> None:
    src = tiny()
    src.next_chunk()
    with pytest.raises(UnknownStyleError, match="polka"):
        src.set_prompt(Prompt.of("polka"))
    assert src.next_chunk().now_playing.genre == "drum-and-bass"


def test_seeded_and_validated() -> None:
    a = np.concatenate([tiny(seed=3).next_chunk().pcm for _ in range(1)])
    b = np.concatenate([tiny(seed=3).next_chunk().pcm for _ in range(1)])
    c = np.concatenate([tiny(seed=4).next_chunk().pcm for _ in range(1)])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    with pytest.raises(ValueError, match="window=8, stride=8"):
        ContinuationConfig(window=8, stride=8)
    with pytest.raises(ValueError, match="codebooks"):
        TokenSource(
            TokenLM(LMConfig(num_codebooks=3, card=16, dim=32, num_layers=1, num_heads=2, ffn_dim=64, max_len=64)),
            Codec.random(CodecConfig(num_filters=4, codebook_size=16, num_codebooks=2, hidden_size=16), seed=0),
            Prompt.of("house"),
            ContinuationConfig(window=32, stride=8),
        )


def test_the_rows_carry_the_bar_clock_phase_of_the_frame_being_started() -> None:
    """Each step is conditioned on the beat/bar phase at the centre of the frame whose first codebook it starts,
    the same clock the corpus labels carry (`Labels.bar`), so the model plays to the conductor's bar clock."""
    from engine.generate.conditioning import frame_controls, phase_matrix

    src = tiny(window=40, stride=20, bpm=150.0)
    seen: list[float] = []
    rows = src.conditioner.rows

    def spy(stream, start, end, a, bar):  # type: ignore[no-untyped-def]
        seen.append(bar)
        return rows(stream, start, end, a, bar)

    src.conditioner.rows = spy  # type: ignore[method-assign]
    for _ in range(6):
        src.next_chunk()
    bars_per_frame = 150.0 / 60.0 / 4 / 50
    expected = (np.arange(len(seen)) + 0.5) * bars_per_frame  # step s starts frame s
    np.testing.assert_allclose(seen, expected, atol=1e-9)
    glide = src._steering.glide
    cond, _ = rows(src._stream, glide.start, glide.end, 1.0, 0.3)  # (2, dim): [null, condition]
    features = frame_controls(glide.end.features[None].numpy(), np.array([0.3]))
    want = src.lm.condition(glide.end.weights[None], torch.from_numpy(features))
    torch.testing.assert_close(cond[1:], want)
    assert not np.allclose(phase_matrix(np.array([0.3])), phase_matrix(np.array([0.3 + 1 / 8])))


def test_repriming_feeds_each_kept_step_the_rows_it_was_generated_with() -> None:
    src = tiny(window=24, stride=12)
    calls: list[tuple[int, torch.Tensor]] = []  # every prefill: (frames, rows)
    prefill = src._stream.prefill

    def spy(tokens: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        assert cond is not None
        calls.append((tokens.shape[2], cond.clone()))
        return prefill(tokens, cond)

    src._stream.prefill = spy  # type: ignore[method-assign]
    for _ in range(3):
        src.next_chunk()  # 30 frames: the window of 24 re-primes at least once
    r = next(i for i, (frames, _) in enumerate(calls) if frames > 1)  # the first re-prime
    kept = calls[r][1]  # (R, 12, dim): rows of the last window - stride = 12 steps, r - 12 .. r - 1
    assert kept.shape[:2] == (2, 12)
    # calls[0] is the BOS frame; calls[1 + s] fed step s one frame at a time with the rows it was generated with
    one_by_one = torch.stack([rows for _, rows in calls[r - 11 : r]], dim=1)  # steps r - 12 .. r - 2
    torch.testing.assert_close(kept[:, :11], one_by_one)
    assert not torch.allclose(kept[:, 0], kept[:, 10])  # the phase moved between them


def test_rows_are_rebuilt_every_frame_only_for_a_model_that_hears_the_bar_phase() -> None:
    from engine.generate.conditioning import PROMPT_CONTROLS, StyleCondition
    from engine.generate.continuation import StyleConditioner

    def conditioner(controls: int) -> StyleConditioner:
        return StyleConditioner(tiny_lm(num_controls=controls, num_layers=1))

    state = StyleCondition.of(Prompt.of("techno"))
    plain, phased = conditioner(PROMPT_CONTROLS), conditioner(NUM_CONTROLS)
    first = plain.rows(None, state, state, 1.0, 0.1)  # type: ignore[arg-type]
    assert plain.rows(None, state, state, 1.0, 0.6) is first  # same glide point: the cached rows
    assert plain.rows(None, state, state, 0.5, 0.6) is not first  # the glide moved: new rows
    a = phased.rows(None, state, state, 1.0, 0.1)  # type: ignore[arg-type]
    b = phased.rows(None, state, state, 1.0, 0.6)  # type: ignore[arg-type]
    assert not torch.equal(a[0], b[0])  # the phase moved: the rows follow it
