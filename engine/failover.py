"""Hand the set to the synth when the token engine falls behind, and back when it catches up.

    primary Lookahead (token model) ──┐
                                      ├──▶ Failover.read() ──▶ player
    fallback Lookahead (synth) ───────┘

Both sources get every prompt and both run in step with playback: a fallback block is read (and dropped)
even while the primary is audible, so at a handover the synth is already playing the live prompt at the
same place on its bar clock. The states:

    primary ──(primary buffer < crossfade + block, or its producer failed)──▶ to_fallback ──▶ fallback
    fallback ──(primary buffer full, its recent chunks faster than resume_rtf)──▶ to_primary ──▶ primary

A handover is an equal-power crossfade over `crossfade` seconds: there is never dead air. While the synth
plays, the primary keeps rendering (one of its blocks is dropped whenever its buffer is full), so its
real-time factor stays measured and its music keeps following the prompt.

Bars: each source counts bars on its own clock. Failover renumbers them so the player and the conductor see
one clock that only moves forward, one bar at a time, and translates `set_prompt`'s bar into each source's
count. Read from one consumer thread (the player); `set_prompt` may come from any thread.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np

from engine.interpret import resolve
from engine.lookahead import Lookahead
from engine.prompt import Prompt
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
    fallback_seconds: float = 0.0  # audio the fallback led (its crossfades included)


class Failover:
    """Plays `primary` while it keeps up, `fallback` while it does not. A `BlockReader` and a `Steerable`."""

    def __init__(self, primary: Lookahead, fallback: Lookahead, config: FailoverConfig) -> None:
        if primary.sample_rate != fallback.sample_rate or primary.block_samples != fallback.block_samples:
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
        if primary.target_samples < self._fade + 2 * self.block_samples:
            raise ValueError(
                f"the primary's lookahead ({primary.target_samples / self.sample_rate:.2f} s) must hold the "
                f"crossfade ({config.crossfade} s) plus two blocks"
            )
        self.stats = FailoverStats()
        self._state = PRIMARY
        self._pos = 0  # samples into the current crossfade
        self._played = 0  # samples handed out
        self._lock = threading.Lock()  # guards the bar bookkeeping below
        self._offset = {PRIMARY: 0, FALLBACK: 0}  # emitted bar = source bar + offset
        self._rebase = {PRIMARY: False, FALLBACK: False}  # renumber from the next bar this source starts
        self._last_bar = -1  # last bar handed out

    # ----- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> None:
        self.fallback.start()
        self.primary.start()

    def close(self) -> None:
        self.primary.close()
        self.fallback.close()

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """Block (off the event loop) until there is something to play; True when ready.

        The synth is ready within moments. If the primary cannot fill its lookahead within `timeout`, the
        set opens on the synth and the primary takes over when it has caught up.
        """
        if not self.fallback.wait_ready(timeout):
            return False
        if not self.primary.wait_ready(timeout):
            log.warning("the token engine did not fill its lookahead in %.0f s; opening on the synth", timeout)
            self._switch(FALLBACK)
        return True

    # ----- Steerable ------------------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    @property
    def error(self) -> BaseException | None:
        """What stopped the audible chain: the fallback's producer error (the primary's only ends its turn)."""
        return self.fallback.error

    @property
    def buffered_seconds(self) -> float:
        lead = self.primary if self._lead() == PRIMARY else self.fallback
        return lead.buffered_seconds

    @property
    def next_bar(self) -> int:
        with self._lock:
            lead = self._lead()
            return self._source(lead).source.next_bar + self._offset[lead]

    def set_prompt(self, prompt: Prompt, at_bar: int | None = None) -> int:
        resolve(prompt)  # refuse a bad prompt before either source sees it
        with self._lock:
            offsets = dict(self._offset)
            lead = self._lead()
        landed = {}
        for name in (PRIMARY, FALLBACK):
            bar = None if at_bar is None else max(0, at_bar - offsets[name])
            landed[name] = self._source(name).source.set_prompt(prompt, at_bar=bar) + offsets[name]
        return landed[lead]

    # ----- the player's side ------------------------------------------------------------------------------------
    def read(self) -> Chunk | None:
        """The next block: the primary's, the fallback's or a crossfade of both. None only if neither has one."""
        fb = self.fallback.read()  # always: the fallback stays in step with playback
        if self._state == PRIMARY and self._primary_failing():
            self._switch(TO_FALLBACK)
        elif self._state == FALLBACK:
            if self._primary_recovered():
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
        pcm = self._mix(pr, fb)  # (block,)
        if lead == FALLBACK:
            self.stats.fallback_seconds += len(pcm) / self.sample_rate
        with self._lock:
            bars = tuple(self._renumber(lead, head.bar_starts))
        chunk = Chunk(pcm, self.sample_rate, self._played, bars, head.now_playing)
        self._played += len(pcm)
        return chunk

    # ----- internals ----------------------------------------------------------------------------------------------
    def _source(self, name: str) -> Lookahead:
        return self.primary if name == PRIMARY else self.fallback

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

    def _switch(self, state: str) -> None:
        if state == TO_FALLBACK:
            self.stats.handovers += 1
            if self.primary.error is not None:
                log.error("the token engine failed (%r); the synth plays on", self.primary.error)
            else:
                recent = self.primary.stats.recent_rtf
                log.warning("the token engine fell behind (rtf %.2f); crossfading to the synth", max(recent, default=0))
        elif state == TO_PRIMARY:
            self.stats.returns += 1
            log.info("the token engine caught up; crossfading back")
        previous = self._lead()
        self._state = state
        self._pos = 0
        with self._lock:
            if self._lead() != previous:
                self._rebase[self._lead()] = True

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

    def _renumber(self, lead: str, bars: tuple[tuple[int, int], ...]) -> list[tuple[int, int]]:
        out = []
        for off, bar in bars:
            if self._rebase[lead] or bar + self._offset[lead] <= self._last_bar:
                self._offset[lead] = self._last_bar + 1 - bar
                self._rebase[lead] = False
            self._last_bar = bar + self._offset[lead]
            out.append((off, self._last_bar))
        return out


def _pcm(chunk: Chunk | None, n: int) -> np.ndarray:
    return chunk.pcm if chunk is not None else np.zeros(n, np.float32)
