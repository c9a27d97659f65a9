"""Failover: the synth covers for a token engine that falls behind, with crossfades and one bar clock.

Time runs SCALE times faster than real time here: the reader takes a block every block * SCALE seconds,
and the throttled primary sleeps SCALE x its real-time factor x the audio it renders, so real-time factors
as the lookahead measures them (wall seconds per audio second) are scaled by SCALE too.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from engine.music.prompt import Prompt, PromptError
from engine.playback.failover import FALLBACK, PRIMARY, Failover, FailoverConfig
from engine.playback.lookahead import Lookahead, LookaheadConfig
from engine.source import Chunk
from engine.synth.source import StyleSynth, SynthConfig

SCALE = 0.1  # wall seconds per audio second of playback in these tests
SR = 16000  # Hz, a lighter rate for speed
BLOCK = 0.1  # seconds


class Throttled:
    """A real synth that takes `rtf` x SCALE wall seconds per audio second, like a model under load."""

    def __init__(self, seed: int, prompt: Prompt) -> None:
        self.inner = StyleSynth(SynthConfig(sample_rate=SR, seed=seed), prompt)
        self.rtf = 0.0
        self.fail = threading.Event()
        self.stall = 0.0  # audio seconds the next chunk hangs for (scaled like everything else), once

    @property
    def sample_rate(self) -> int:
        return self.inner.sample_rate

    @property
    def next_bar(self) -> int:
        return self.inner.next_bar

    def set_prompt(self, prompt: Prompt, at_bar: int | None = None) -> int:
        return self.inner.set_prompt(prompt, at_bar)

    def next_chunk(self) -> Chunk:
        if self.fail.is_set():
            raise RuntimeError("model exploded")
        t0 = time.perf_counter()
        stall, self.stall = self.stall, 0.0
        time.sleep(stall * SCALE)
        chunk = self.inner.next_chunk()
        time.sleep(max(0.0, self.rtf * SCALE * chunk.seconds - (time.perf_counter() - t0)))
        return chunk


def make(prompt: Prompt | None = None) -> tuple[Failover, Throttled]:
    prompt = prompt or Prompt.of("house")
    primary_src = Throttled(seed=1, prompt=prompt)
    primary = Lookahead(primary_src, LookaheadConfig(lookahead=1.5, block=BLOCK))
    # at 10x accelerated playback 0.6 s of lookahead is 60 ms of wall time; the synth renders a bar in ~10 ms, but
    # its thread shares the GIL with the throttled primary and the reader and now and then came back too late
    # (measured: 1 run in 6 had a block of dead air, with the old code too), so it keeps 3 s ahead here
    fallback = Lookahead(StyleSynth(SynthConfig(sample_rate=SR, seed=2), prompt), LookaheadConfig(3.0, BLOCK))
    failover = Failover(primary, fallback, FailoverConfig(crossfade=0.4, resume_rtf=0.85 * SCALE))
    return failover, primary_src


def play(failover: Failover, seconds: float) -> list[Chunk | None]:
    """Read `seconds` of audio at SCALE x real-time pace, like the player."""
    out: list[Chunk | None] = []
    for _ in range(round(seconds / BLOCK)):
        out.append(failover.read())
        time.sleep(BLOCK * SCALE)
    return out


def test_a_healthy_engine_plays_alone_and_bit_exact() -> None:
    failover, _ = make()
    reference = StyleSynth(SynthConfig(sample_rate=SR, seed=1), Prompt.of("house"))
    failover.start()
    try:
        assert failover.wait_ready(10)
        blocks = play(failover, 8.0)
    finally:
        failover.close()
    assert all(b is not None for b in blocks)
    pcm = np.concatenate([b.pcm for b in blocks if b is not None])  # (samples,)
    ref = np.concatenate([reference.next_chunk().pcm for _ in range(6)])[: len(pcm)]
    np.testing.assert_array_equal(pcm, ref)  # the primary's own audio, untouched
    assert failover.stats.handovers == 0 and failover.stats.fallback_seconds == 0
    assert failover.primary.stats.underruns == 0


def test_a_lagging_engine_hands_over_with_a_crossfade_and_comes_back() -> None:
    failover, src = make()
    failover.start()
    try:
        assert failover.wait_ready(10)
        healthy = play(failover, 3.0)
        src.rtf = 3.0  # three times slower than real time
        lagging = play(failover, 8.0)
        assert failover.state == FALLBACK
        src.rtf = 0.2
        recovered = play(failover, 18.0)
    finally:
        failover.close()
    blocks = healthy + lagging + recovered
    assert all(b is not None for b in blocks), "no dead air: every block has audio"
    chunks = [b for b in blocks if b is not None]
    stats = failover.stats
    assert stats.handovers == 1 and stats.returns == 1 and stats.gaps == 0
    assert failover.state == PRIMARY
    assert 2.0 < stats.fallback_seconds < 24.0
    # sound all the way through: no quarter second is near-silent
    pcm = np.concatenate([c.pcm for c in chunks])  # (samples,)
    win = SR // 4
    rms = np.sqrt((pcm[: len(pcm) // win * win].reshape(-1, win) ** 2).mean(axis=1))  # (windows,)
    assert rms.min() > 0.1 * np.median(rms)
    # one clock: samples count up and bars go up one at a time across both handovers
    assert [c.start_sample for c in chunks] == [i * len(chunks[0].pcm) for i in range(len(chunks))]
    bars = [bar for c in chunks for _, bar in c.bar_starts]
    assert bars == list(range(bars[0], bars[0] + len(bars))) and len(bars) >= 8


def test_an_engine_that_hangs_for_5_s_is_covered_without_a_silent_block() -> None:
    failover, src = make()
    failover.start()
    try:
        assert failover.wait_ready(10)
        before = play(failover, 3.0)
        src.stall = 5.0  # the model hangs for 5 s of the set (a GC storm, a swapped-out page, a stuck kernel)
        during = play(failover, 12.0)
    finally:
        failover.close()
    blocks = before + during
    assert all(b is not None for b in blocks), "no dead air: every block has audio"
    assert failover.stats.handovers >= 1 and failover.stats.gaps == 0
    pcm = np.concatenate([b.pcm for b in blocks if b is not None])  # (samples,)
    win = SR // 4
    rms = np.sqrt((pcm[: len(pcm) // win * win].reshape(-1, win) ** 2).mean(axis=1))  # (windows,)
    assert rms.min() > 0.1 * np.median(rms)  # sound all through the hang: the synth crossfaded in


class Spy:
    """Records what a lookahead's `read` returned, so a test can say what each source contributed."""

    def __init__(self, la: Lookahead) -> None:
        self.read = la.read
        self.last: Chunk | None = None
        la.read = self  # type: ignore[method-assign]

    def __call__(self) -> Chunk | None:
        self.last = self.read()
        return self.last


def test_the_crossfade_blends_both_sources() -> None:
    failover, src = make()
    assert failover.fallback is not None
    pr, fb = Spy(failover.primary), Spy(failover.fallback)
    failover.start()
    try:
        assert failover.wait_ready(10)
        play(failover, 2.0)
        src.rtf = 50.0
        states, blocks, parts = [], [], []
        for _ in range(60):
            pr.last = fb.last = None
            blocks.append(failover.read())
            parts.append((pr.last, fb.last))
            states.append(failover.state)
            time.sleep(BLOCK * SCALE)
    finally:
        failover.close()
    first = states.index("to_fallback") if "to_fallback" in states else states.index(FALLBACK)
    # the block that started the handover was computed during the fade: neither source's audio alone
    block, (p, f) = blocks[first], parts[first]
    assert block is not None and p is not None and f is not None
    t = np.minimum(1.0, np.arange(len(block.pcm)) / round(0.4 * SR))  # 0 -> 1 over the 0.4 s crossfade
    mix = f.pcm * np.sin(0.5 * np.pi * t) + p.pcm * np.cos(0.5 * np.pi * t)  # equal power, fallback fading in
    np.testing.assert_allclose(block.pcm, mix, atol=1e-6)
    assert not np.allclose(block.pcm, p.pcm, atol=1e-3) and not np.allclose(block.pcm, f.pcm, atol=1e-3)
    assert FALLBACK in states[first:]
    assert failover.stats.handovers == 1 and failover.stats.gaps == 0  # the fade used the primary's last audio


def test_a_crashed_engine_leaves_the_synth_playing() -> None:
    failover, src = make()
    failover.start()
    try:
        assert failover.wait_ready(10)
        play(failover, 1.0)
        src.fail.set()
        blocks = play(failover, 6.0)
    finally:
        failover.close()
    assert all(b is not None for b in blocks)
    assert failover.state == FALLBACK and failover.error is None
    assert isinstance(failover.primary.error, RuntimeError)
    health = failover.health()  # the truth: the synth plays because the engine died
    assert health["audible"] == FALLBACK and "model exploded" in str(health["primary_error"])
    assert failover.primary_error is failover.primary.error


def test_a_deck_without_fallback_plays_its_source_and_owns_the_bar_clock() -> None:
    prompt = Prompt.of("techno")
    deck = Failover(
        Lookahead(StyleSynth(SynthConfig(sample_rate=SR, seed=3), prompt), LookaheadConfig(0.6, BLOCK)),
        None,
        FailoverConfig(),
    )
    twin = StyleSynth(SynthConfig(sample_rate=SR, seed=3), prompt)
    deck.start()
    try:
        assert deck.wait_ready(10)
        blocks = play(deck, 6.0)
    finally:
        deck.close()
    assert all(b is not None for b in blocks)
    pcm = np.concatenate([b.pcm for b in blocks if b is not None])
    expected = np.concatenate([twin.next_chunk().pcm for _ in range(4)])[: len(pcm)]
    np.testing.assert_array_equal(pcm, expected)  # the source's own audio, untouched
    bars = [bar for b in blocks if b is not None for _, bar in b.bar_starts]
    assert bars == list(range(len(bars))) and len(bars) >= 2
    positions = [b.bar for b in blocks if b is not None and b.bar is not None]
    assert positions == sorted(positions) and positions[-1] > 1.0
    assert deck.health() == {
        "audible": PRIMARY,
        "state": PRIMARY,
        "fallback": False,
        "panic": False,
        "primary_error": None,
        "buffered_seconds": deck.health()["buffered_seconds"],
    }
    assert deck.stats.fallback_seconds == 0 and deck.stats.primary_seconds == pytest.approx(6.0)


def test_prompts_reach_both_sources_and_bad_ones_neither() -> None:
    failover, src = make()
    failover.start()
    try:
        assert failover.wait_ready(10)
        with pytest.raises(PromptError, match="nan"):
            failover.set_prompt(Prompt.of("house").with_controls(bpm=float("nan")))
        with pytest.raises(ValueError, match="'polka'"):
            failover.set_prompt(Prompt.of("polka"))
        landing = failover.set_prompt(Prompt.of("ambient", ramp_bars=0))
        assert landing >= 1
        blocks = play(failover, 12.0)
    finally:
        failover.close()
    assert all(b is not None for b in blocks)
    after = [b.now_playing.genre for b in blocks if b is not None][-5:]
    assert after == ["ambient"] * 5
    for la in (failover.primary, failover.fallback):  # both sources play the new prompt (producers stopped)
        assert la.source.next_chunk().now_playing.genre == "ambient"


def test_misconfiguration_is_refused() -> None:
    prompt = Prompt.of("house")
    primary = Lookahead(StyleSynth(SynthConfig(sample_rate=SR), prompt), LookaheadConfig(0.4, BLOCK))
    fallback = Lookahead(StyleSynth(SynthConfig(sample_rate=SR), prompt), LookaheadConfig(0.6, BLOCK))
    with pytest.raises(ValueError, match="crossfade"):
        Failover(primary, fallback, FailoverConfig(crossfade=0.4))
    other = Lookahead(StyleSynth(SynthConfig(sample_rate=24000), prompt), LookaheadConfig(0.6, BLOCK))
    with pytest.raises(ValueError, match="16000 Hz"):
        Failover(primary, other, FailoverConfig(crossfade=0.1))
    with pytest.raises(ValueError, match="resume_rtf"):
        FailoverConfig(resume_rtf=1.5)


def test_panic_holds_the_synth_with_crossfades_until_released() -> None:
    failover, _ = make()
    failover.start()
    try:
        assert failover.wait_ready(10)
        before = play(failover, 2.0)
        failover.hold_fallback(True)
        held = play(failover, 6.0)
        assert failover.state == FALLBACK and failover.health()["panic"] is True  # a healthy engine stays off
        failover.hold_fallback(False)
        released = play(failover, 10.0)
    finally:
        failover.close()
    assert failover.state == PRIMARY and failover.health()["panic"] is False
    stats = failover.stats
    assert stats.panics == 1 and stats.handovers == 0 and stats.returns == 1 and stats.gaps == 0
    blocks = before + held + released
    assert all(b is not None for b in blocks), "no dead air through the panic and back"
    pcm = np.concatenate([b.pcm for b in blocks if b is not None])  # (samples,)
    win = SR // 4
    rms = np.sqrt((pcm[: len(pcm) // win * win].reshape(-1, win) ** 2).mean(axis=1))  # (windows,)
    assert rms.min() > 0.1 * np.median(rms)


def test_panic_on_a_deck_without_fallback_is_refused() -> None:
    deck = Failover(
        Lookahead(StyleSynth(SynthConfig(sample_rate=SR, seed=3), Prompt.of("techno")), LookaheadConfig(0.6, BLOCK)),
        None,
        FailoverConfig(),
    )
    with pytest.raises(ValueError, match="panic has no other source"):
        deck.hold_fallback(True)
