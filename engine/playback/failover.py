"""The audible deck: what the player reads, whatever the backend; the synth covers when the token engine lags.

    primary Lookahead (token model, or the synth itself) ──┐
                                                            ├──▶ Failover.read() ──▶ player
    fallback Lookahead (the synth, for a token engine) ─────┘     (stamped by the set's BarClock)

The runtime always holds one of these: a synth set is a Failover with no fallback (nothing to fail over to),
so nothing above it branches on the backend, and its health and metrics have one shape.

Both sources get every prompt and both run in step with playback: a fallback block is read (and dropped)
even while the primary is audible, so at a handover the synth is already playing the live prompt at the
same place on its bar clock. The states:

    primary ──(primary buffer < crossfade + block, or its producer failed)──▶ to_fallback ──▶ fallback
    fallback ──(primary buffer full, its recent chunks faster than resume_rtf)──▶ to_primary ──▶ primary

The booth's panic (`hold_fallback(True)`) crossfades to the fallback at once and keeps it there until released;
then the primary returns by the usual rule.

A handover is an equal-power crossfade over `crossfade` seconds: there is never dead air. While the synth
plays, the primary keeps rendering (one of its blocks is dropped whenever its buffer is full), so its
real-time factor stays measured and its music keeps following the prompt.

Bars: each source counts bars on its own render clock. The deck owns the set's one bar clock
(`engine.playback.clock.BarClock`): every block it hands out carries bars that only move forward, one at a time, and
its bar position (`Chunk.bar`); `set_prompt`'s bar is translated into each source's count. Read from one
consumer thread (the player); `set_prompt` may come from any thread.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace

import numpy as np

from engine.music.interpret import resolve
from engine.music.prompt import Prompt
from engine.playback.clock import BarClock
from engine.playback.lookahead import Lookahead
from engine.source import Chunk

log = logging.getLogger(__name__)

PRIMARY, TO_FALLBACK, FALLBACK, TO_PRIMARY = "primary", "to_fallback", "fallback", "to_primary"
RECOVERY_CHUNKS = 3  # the primary's last this-many chunks must all beat resume_rtf before it returns


@dataclass(frozen=True)
class FailoverConfig:
    crossfade: float = 0.4  # seconds of equal-power crossfade at each handover
    resume_rtf: float = 0.85  # the primary returns once its recent chunks took at most this many s per audio s

    def __post_init__(self) -> None:
        if not 0 < self.crossfade <= 10:
            raise ValueError(f"crossfade must be within (0, 10] seconds, got {self.crossfade!r}")
        if not 0 < self.resume_rtf < 1:
            raise ValueError(f"resume_rtf must be within (0, 1) to leave headroom, got {self.resume_rtf!r}")


@dataclass
class FailoverStats:
    handovers: int = 0  # times the synth took over from the token engine
    returns: int = 0  # times the token engine came back
    gaps: int = 0  # blocks the primary could not supply at a handover (faded in from silence): audible underruns
    panics: int = 0  # times the booth's panic sent the set to the fallback
    primary_seconds: float = 0.0  # audio the primary led (its crossfades included)
    fallback_seconds: float = 0.0  # audio the fallback led (its crossfades included)


class Failover:
    """Plays `primary` while it keeps up, `fallback` (if any) while it does not. A `BlockReader` and a `Steerable`."""

    def __init__(self, primary: Lookahead, fallback: Lookahead | None, config: FailoverConfig) -> None:
        if fallback is not None and (
            primary.sample_rate != fallback.sample_rate or primary.block_samples != fallback.block_samples
        ):
            raise ValueError(
                f"primary and fallback must share rate and block: {primary.sample_rate} Hz x {primary.block_samples}"
                f" vs {fallback.sample_rate} Hz x {fallback.block_samples}"
            )
        self.primary = primary
        self.fallback = fallback
        self.config = config
        self.sample_rate = primary.sample_rate
        self.block_samples = primary.block_samples
        self._fade = max(self.block_samples, round(config.crossfade * self.sample_rate))  # samples
        if fallback is not None and primary.target_samples < self._fade + 2 * self.block_samples:
            raise ValueError(
                f"the primary's lookahead ({primary.target_samples / self.sample_rate:.2f} s) must hold the "
                f"crossfade ({config.crossfade} s) plus two blocks"
            )
        self.stats = FailoverStats()
        self._state = PRIMARY
        self._pos = 0  # samples into the current crossfade
        self._played = 0  # samples handed out
        self._lock = threading.Lock()  # guards the clock
        self._held = False  # the booth's panic: the fallback plays until released
        self.clock = BarClock()  # the set's bar clock

    # ----- lifecycle ----------------------------------------------------------------------------------------
    def _sources(self) -> list[tuple[str, Lookahead]]:
        return [(PRIMARY, self.primary)] + ([(FALLBACK, self.fallback)] if self.fallback is not None else [])

    def start(self) -> None:
        for _, la in reversed(self._sources()):  # the synth first: it is ready at once
            la.start()

    def close(self) -> None:
        for _, la in self._sources():
            la.close()

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """Block (off the event loop) until there is something to play; True when ready.

        The synth is ready within moments. If the primary cannot fill its lookahead within `timeout`, the
        set opens on the synth and the primary takes over when it has caught up.
        """
        if self.fallback is None:
            return self.primary.wait_ready(timeout)
        if not self.fallback.wait_ready(timeout):
            return False
        if not self.primary.wait_ready(timeout):
            log.warning("the token engine did not fill its lookahead in %.0f s; opening on the synth", timeout)
            self._switch(FALLBACK)
        return True

    def hold_fallback(self, held: bool) -> None:
        """The booth's panic: crossfade to the fallback now and stay there (True), or let the primary return
        once it keeps up (False). ValueError on a set with no fallback (the synth already plays)."""
        if self.fallback is None:
            raise ValueError("this set plays the synth itself: panic has no other source to crossfade to")
        self._held = bool(held)

    @property
    def held(self) -> bool:
        return self._held

    # ----- Steerable ------------------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    @property
    def error(self) -> BaseException | None:
        """What stopped the audible chain: with a fallback, its error (the primary's failure only ends the
        primary's turn, see `primary_error`); without one, the primary's."""
        return self.primary.error if self.fallback is None else self.fallback.error

    @property
    def primary_error(self) -> BaseException | None:
        """What stopped the primary (the token engine), even while the fallback covers for it."""
        return self.primary.error

    @property
    def audible(self) -> str:
        """Whose audio the listener hears now: "primary" or "fallback" (the lead of a crossfade)."""
        return self._lead()

    def health(self) -> dict[str, object]:
        """The truth for /healthz: who plays, whether the primary died, how much is buffered."""
        primary = self.primary_error
        return {
            "audible": self._lead(),
            "state": self._state,
            "fallback": self.fallback is not None,
            "panic": self._held,
            "primary_error": None if primary is None else repr(primary),
            "buffered_seconds": round(self.buffered_seconds, 3),
        }

    @property
    def buffered_seconds(self) -> float:
        return self._source(self._lead()).buffered_seconds

    @property
    def next_bar(self) -> int:
        with self._lock:
            lead = self._lead()
            return self._source(lead).next_bar + self.clock.offset(lead)

    def set_prompt(self, prompt: Prompt, at_bar: int | None = None) -> int:
        resolve(prompt)  # refuse a bad prompt before either source sees it
        with self._lock:
            offsets = {name: self.clock.offset(name) for name, _ in self._sources()}
            lead = self._lead()
        landed = {}
        for name, la in self._sources():
            bar = None if at_bar is None else max(0, at_bar - offsets[name])
            landed[name] = la.set_prompt(prompt, at_bar=bar) + offsets[name]
        return landed[lead]

    # ----- the player's side ------------------------------------------------------------------------------------
    def read(self) -> Chunk | None:
        """The next block: the primary's, the fallback's or a crossfade of both. None only if neither has one."""
        if self.fallback is None:
            return self._emit(self.primary.read(), PRIMARY)
        fb = self.fallback.read()  # always: the fallback stays in step with playback
        if self._held and self._state in (PRIMARY, TO_PRIMARY):
            self.stats.panics += 1
            self._switch(TO_FALLBACK, panic=True)
        elif self._state == PRIMARY and self._primary_failing():
            self._switch(TO_FALLBACK)
        elif self._state == FALLBACK:
            if not self._held and self._primary_recovered():
                self._switch(TO_PRIMARY)
            elif self.primary.buffered_samples >= self.primary.target_samples:
                self.primary.read()  # drop a block so the primary keeps rendering (and being measured)
        pr: Chunk | None = None
        if self._state in (PRIMARY, TO_PRIMARY):
            pr = self.primary.read()  # counts an underrun if it comes up short
        elif self._state == TO_FALLBACK:
            if self.primary.buffered_samples >= self.block_samples:
                pr = self.primary.read()
            else:
                self.stats.gaps += 1
        lead = self._lead()
        head = pr if lead == PRIMARY else fb
        if head is None:  # the lead has nothing: play what the other one has rather than silence
            head, lead = (fb, FALLBACK) if lead == PRIMARY else (pr, PRIMARY)
            if head is None:
                return None
        return self._emit(replace(head, pcm=self._mix(pr, fb)), lead)  # (block,)

    # ----- internals ----------------------------------------------------------------------------------------------
    def _emit(self, block: Chunk | None, lead: str) -> Chunk | None:
        """`block` moved onto the set's timeline and stamped by its bar clock."""
        if block is None:
            return None
        seconds = len(block.pcm) / self.sample_rate
        if lead == FALLBACK:
            self.stats.fallback_seconds += seconds
        else:
            self.stats.primary_seconds += seconds
        with self._lock:
            chunk = self.clock.stamp(replace(block, start_sample=self._played), lead)
        self._played += len(block.pcm)
        return chunk

    def _source(self, name: str) -> Lookahead:
        if name == FALLBACK and self.fallback is not None:
            return self.fallback
        return self.primary

    def _lead(self) -> str:
        """Whose bars and now-playing the listener follows."""
        return PRIMARY if self._state in (PRIMARY, TO_PRIMARY) else FALLBACK

    def _primary_failing(self) -> bool:
        la = self.primary
        return la.error is not None or la.buffered_samples < self._fade + self.block_samples

    def _primary_recovered(self) -> bool:
        la = self.primary
        recent = la.stats.recent_rtf[-RECOVERY_CHUNKS:]
        return (
            la.error is None
            and la.buffered_samples >= la.target_samples
            and len(recent) == RECOVERY_CHUNKS
            and max(recent) <= self.config.resume_rtf
        )

    def _switch(self, state: str, panic: bool = False) -> None:
        if panic:
            log.warning("panic from the booth: crossfading to the synth until it is released")
        elif state == TO_FALLBACK:
            self.stats.handovers += 1
            if self.primary.error is not None:
                log.error("the token engine failed (%r); the synth plays on", self.primary.error)
            else:
                recent = self.primary.stats.recent_rtf
                log.warning("the token engine fell behind (rtf %.2f); crossfading to the synth", max(recent, default=0))
        elif state == TO_PRIMARY:
            self.stats.returns += 1
            log.info("the token engine caught up; crossfading back")
        reversing = {self._state, state} == {TO_FALLBACK, TO_PRIMARY}
        self._state = state
        self._pos = max(0, self._fade - self._pos) if reversing else 0  # a crossfade turned back keeps its gains

    def _mix(self, pr: Chunk | None, fb: Chunk | None) -> np.ndarray:
        n = self.block_samples
        if self._state == PRIMARY:
            return pr.pcm if pr is not None else _pcm(fb, n)
        if self._state == FALLBACK:
            return fb.pcm if fb is not None else _pcm(pr, n)
        t = np.minimum(1.0, (self._pos + np.arange(n)) / self._fade)  # (n,) 0 → 1 across the crossfade
        fade_in = np.sin(0.5 * np.pi * t).astype(np.float32)  # (n,) equal power
        fade_out = np.cos(0.5 * np.pi * t).astype(np.float32)  # (n,)
        incoming, outgoing = (fb, pr) if self._state == TO_FALLBACK else (pr, fb)
        pcm = _pcm(incoming, n) * fade_in + _pcm(outgoing, n) * fade_out  # (n,)
        self._pos += n
        if self._pos >= self._fade:
            self._state = FALLBACK if self._state == TO_FALLBACK else PRIMARY
        return pcm


def _pcm(chunk: Chunk | None, n: int) -> np.ndarray:
    return chunk.pcm if chunk is not None else np.zeros(n, np.float32)
