"""The crowd's words: which style a suggestion plays, and what phones are shown it was understood as.

A suggestion that names a genre ("dark rolling techno") plays as written. Any other description goes to the
text model (`engine.text.understand`, when installed): it is understood as a keyword style ("rainy day piano" →
"lofi", shown as "Lo-fi"), or refused when it sounds like no style. Without the model such text is refused, as
before. What was understood is kept per text while the suggestion is on the board, and carried in the
conductor's snapshot, so a successor plays the same thing without a model of its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.music.interpret import resolve
from engine.music.prompt import Prompt, PromptError
from engine.music.styles import UnknownStyleError

KEPT = 1000  # texts whose reading is kept at most (the board holds far fewer)


@dataclass(frozen=True)
class Reading:
    style: str  # what plays: keyword style the interpreter resolves
    label: str  # what phones are shown it was understood as


Understand = Callable[[str], Awaitable[Reading]]  # UnknownStyleError when the text sounds like no style


class Words:
    def __init__(self, understand: Understand | None = None) -> None:
        self.understand = understand
        self._read: dict[str, Reading] = {}

    async def read(self, text: str) -> Reading | None:
        """None: `text` plays as written. A Reading: what the model understood. UnknownStyleError or PromptError
        (with the message for the phone) when it can be played neither way."""
        try:
            resolve(Prompt.of(text))
            return None
        except (UnknownStyleError, PromptError):
            if self.understand is None:
                raise
        reading = await self.understand(text)
        if len(self._read) >= KEPT:
            self._read.pop(next(iter(self._read)))
        self._read[text] = reading
        return reading

    def style(self, text: str) -> str:
        """What a suggestion's text plays (as written unless the model read it)."""
        reading = self._read.get(text)
        return text if reading is None else reading.style

    def label(self, text: str) -> str | None:
        reading = self._read.get(text)
        return None if reading is None else reading.label

    def keep(self, texts: Iterable[str]) -> None:
        """Forget the readings of texts no longer on the board."""
        wanted = set(texts)
        self._read = {t: r for t, r in self._read.items() if t in wanted}

    def snapshot(self) -> dict[str, list[str]]:
        return {t: [r.style, r.label] for t, r in self._read.items()}

    def restore(self, snap: Mapping[str, Any]) -> None:
        self._read = {str(t): Reading(str(v[0]), str(v[1])) for t, v in snap.items() if len(v) == 2}


def load_understanding(folder: Any = None) -> tuple[Understand, Callable[[], None]]:
    """The text model, loaded (seconds: call it off the event loop), as an `Understand` that runs each reading on
    one worker thread of its own (a few milliseconds each, never on the loop), and a function that stops it.
    engine.text.encoder.TextModelError when it cannot be loaded."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from engine.text.encoder import SentenceEncoder
    from engine.text.understand import Understander

    model = Understander(SentenceEncoder(folder))
    pool = ThreadPoolExecutor(1, thread_name_prefix="concert-words")

    def read(text: str) -> Reading:
        understood = model.understand(text)
        return Reading(understood.style, understood.label)

    async def understand(text: str) -> Reading:
        return await asyncio.get_running_loop().run_in_executor(pool, read, text)

    return understand, lambda: pool.shutdown(wait=False, cancel_futures=True)
