"""Moderation of free-text style suggestions from phones (pure; word lists are passed in).

`moderate` cleans a suggestion and returns it, or raises `SuggestionRefused`
with a `code` and a human `message` saying why and what to type instead:

* ``empty``: nothing (or no letters or digits) left after cleaning;
* ``too_long``: more than `max_chars` characters after cleaning;
* ``abusive``: a blocked word (profanity, slurs), also when disguised;
* ``artist``: a request to imitate a named artist: a name from the curated
  list, or phrasing such as "in the style of X", "sounds like X", "by X",
  "à la X", "X-style", "X's sound" where X looks like a proper name.

Disguises undone before matching words: case, accents, look-alike Cyrillic and
Greek letters, leetspeak ("d4ft", "sh1t", "a$$"), repeated letters ("fuuuck"),
separators ("Daft-Punk", "f.u.c.k", "f u c k") and joined words ("DAFTPUNK").
Matching is by whole word or phrase, so "bass", "assess" and "Scunthorpe" pass.
The name heuristic trusts capitals only where the writer uses lower case too,
so ALL CAPS and Title Case suggestions rely on the curated list alone.

Word lists are package data read by `load_wordlist` once at the entry point.
Escaping is the display layer's job (the web sets textContent); `escape_html`
serves server-rendered pages.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType

from engine.music.styles import GENRES

REFUSAL_CODES: tuple[str, ...] = ("empty", "too_long", "artist", "abusive")
_EXAMPLE = "'dark rolling techno' or 'warm lo-fi with rain'"

_INVISIBLE = "\u115f\u1160\u3164\uffa0\u2800"  # blank "letters" that are not whitespace
_MAX_MARKS = 2  # combining marks kept per base character (more is "zalgo" text)
_LOOKALIKES = "аaеeоoрpсcуyхxіiјjѕsкkмmнhтtвbοoαaεeιiκkνvρpτtυuχxðdøołlđdþp"  # (look-alike, Latin) pairs
_FOLD = MappingProxyType(str.maketrans(_LOOKALIKES[0::2], _LOOKALIKES[1::2]))
_I_OR_L = "1!|"  # read as "i" in one reading of the text and as "l" in another
_LEET = tuple(  # readings: (symbols inside a word with letters, digits inside a token with letters) → letters
    (MappingProxyType(str.maketrans("@$€!|", f"ase{c}{c}")), MappingProxyType(str.maketrans(digits, letters)))
    for c, digits, letters in (("i", "03457891", "oeastbgi"), ("l", "03457891", "oeastbgl"), ("i", "", ""))
)  # the last reading keeps digits as digits ("21savage")
_EDGE = "\"'.,;:?!()[]{}<>«»“”‘’`…*_~-"  # punctuation stripped from the ends of a word
_SUFFIXES = ("", "s", "es", "er", "ers", "ed", "ing", "in")  # endings a blocked "word*" also matches

# Capitalised words that are not artist names: music words, places and scenes, times, common words.
_NOT_NAMES = frozenset(
    """
    a an the this that these those it its i me my we us our you your they them their he she his her
    some something anything everything nothing more less much very really just so too quite bit lot
    like love loves want need give make play bring keep let please can could would should
    and or but with without for from into onto over under up down in on at to of by as than then
    music sound sounds song songs track tracks tune tunes beat beats vibe vibes vibey style feel
    bass drums drum kick snare hats synth synths piano guitar strings vocals vocal choir orchestra
    orchestral brass sax saxophone violin cello flute pads pad lead chords melody groove rhythm
    jazz funk funky soul disco reggae dub dubstep garage grime drill trap jungle acid rave club
    pop rock metal punk indie folk country blues gospel classical opera latin afro afrobeat
    afrobeats amapiano kpop k-pop jpop j-pop edm idm breakbeat breaks electro electronic dance
    hardstyle hardcore gabber psytrance goa progressive minimal tech deep tribal dark light
    summer winter spring autumn fall night nights day days morning evening midnight sunset sunrise
    rain storm thunder ocean sea beach island space stars moon sun sky heaven hell fire ice
    movie movies film films cinema cinematic soundtrack game games gaming video arcade anime cartoon
    christmas halloween easter xmas holiday party festival wedding birthday
    old new classic vintage retro modern future futuristic school oldschool old-school
    berlin detroit chicago ibiza london uk manchester bristol glasgow paris tokyo osaka seoul
    miami nyc york brooklyn la vegas jamaica jamaican brazil brazilian africa african cuba cuban
    india indian japan japanese korea korean france french german germany british english
    american america europe european spain spanish italy italian irish scottish nordic swedish
    berghain fabric tresor ministry
    monday tuesday wednesday thursday friday saturday sunday weekend
    january february march april may june july august september october november december
    sixties seventies eighties nineties 60s 70s 80s 90s 00s 2000s 2010s y2k
    god jesus lord mother nature everyone everybody anyone crowd dj djs mc
    bach mozart beethoven chopin vivaldi debussy satie handel tchaikovsky brahms schubert wagner
    liszt haydn ravel grieg holst rachmaninoff stravinsky mahler verdi puccini dvorak pachelbel
    """.split()
    + [w for g in GENRES for w in (g.id, g.label.lower(), *g.keywords)]
)

_WORD = r"[^\W\d_][\w'’.&-]*"  # a word that starts with a letter
_TRIGGER = re.compile(
    r"(?i:\b(?:in\s+the\s+(?:style|vein|manner|spirit|mould|mold)\s+of|sound(?:s|ing)?\s+like|like|"
    rf"by|[àa]\s+la))\s+(?P<x>{_WORD}(?:\s+{_WORD}){{0,2}})"
)
_SUFFIXED = re.compile(rf"\b(?P<x>{_WORD}?)(?i:-(?:style|esque|inspired|type|like)|\s+style)\b")
_POSSESSIVE = re.compile(
    rf"\b(?P<x>{_WORD}?)['’]s\s+(?i:style|sound|vibes?|music|songs?|beats?|tracks?|album|voice|production)\b"
)


RAW_FACTOR = 4  # characters a suggestion may hold before cleaning, and after NFKC, per character kept (max_chars)
# U+FDFA alone grows 18-fold under NFKC: 400 of them became 7,200 characters and 9 ms of event-loop time


@dataclass(frozen=True)
class ModerationConfig:
    max_chars: int = 80  # longest suggestion accepted, characters after cleaning
    check_phrasing: bool = True  # refuse "in the style of <Name>"-type phrasing, not only listed names

    def __post_init__(self) -> None:
        if isinstance(self.max_chars, bool) or not isinstance(self.max_chars, int) or self.max_chars < 1:
            raise ValueError(f"max_chars must be an integer >= 1, got {self.max_chars!r}")


class SuggestionRefused(ValueError):
    """A suggestion that cannot be used; `code` says why (one of REFUSAL_CODES), `message` tells the user."""

    def __init__(self, code: str, message: str) -> None:
        if code not in REFUSAL_CODES:
            raise ValueError(f"refusal code must be one of {REFUSAL_CODES}, got {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message


def load_wordlist(name: str) -> frozenset[str]:
    """Entries of the package word list `concert/data/<name>.txt` ("artists", "blocked_words").

    One entry per line; blank lines and lines starting with "#" are skipped.
    Raises ValueError naming `name` for a bad or unknown list name.
    """
    stem = name.removesuffix(".txt") if isinstance(name, str) else ""
    if not re.fullmatch(r"[a-z][a-z_]*", stem):
        raise ValueError(f"word list name must be lower-case letters and underscores, got {name!r}")
    try:
        text = (resources.files("concert") / "data" / f"{stem}.txt").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"no word list named {name!r} in concert/data") from None
    lines = (line.strip() for line in text.splitlines())
    return frozenset(line for line in lines if line and not line.startswith("#"))


def escape_html(text: str) -> str:
    """`text` safe to place in HTML text or a quoted attribute (&, <, >, " and ' escaped)."""
    return html.escape(text, quote=True)


def clean(text: str) -> str:
    """NFKC-normalised `text` without control, format (zero-width, bidi) or invisible characters,
    at most two combining marks per character, whitespace collapsed to single spaces and trimmed.
    Idempotent: clean(clean(x)) == clean(x)."""
    for _ in range(4):  # removing a character can let NFKC compose its neighbours: run to a fixed point
        nxt = _clean_once(text)
        if nxt == text:
            break
        text = nxt
    return text


def _clean_once(text: str) -> str:
    out: list[str] = []
    marks = 0
    for ch in unicodedata.normalize("NFKC", text):
        if ch.isspace():
            out.append(" ")
        elif unicodedata.category(ch)[0] == "C" or ch in _INVISIBLE:
            continue
        elif unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me"):
            marks += 1
            if marks <= _MAX_MARKS:
                out.append(ch)
            continue
        else:
            out.append(ch)
        marks = 0
    return " ".join("".join(out).split())


def moderate(text: str, cfg: ModerationConfig, artists: frozenset[str], blocked: frozenset[str]) -> str:
    """The cleaned suggestion, or SuggestionRefused (checked in order: empty, too_long, abusive, artist).

    Input that is not a string is refused as "empty". `artists` and `blocked` are
    `load_wordlist("artists")` and `load_wordlist("blocked_words")`. This indexes
    both lists on every call (~20 ms); a server builds one `Moderator` instead.
    """
    return Moderator(cfg, artists, blocked).moderate(text)


_Index = dict[str, list[tuple[tuple[int, ...], str]]]  # squeezed form → (letter run lengths, entry)


@dataclass(frozen=True)
class Moderator:
    """`moderate` with the word lists indexed once: build at the entry point, share, call per suggestion."""

    cfg: ModerationConfig
    artists: frozenset[str]  # artist names, as load_wordlist("artists")
    blocked: frozenset[str]  # words ("word*": with endings) and phrases, as load_wordlist("blocked_words")
    _artists: _Index = field(init=False, repr=False, compare=False)
    _words: _Index = field(init=False, repr=False, compare=False)
    _phrases: _Index = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        artists: _Index = {}
        words: _Index = {}
        phrases: _Index = {}
        for name in sorted(self.artists):
            _add(artists, _key(name), name, min_len=2)
        for entry in sorted(self.blocked):
            base = entry.rstrip("*")
            if len(base.split()) > 1:
                _add(phrases, _key(base), entry, min_len=2)
            else:
                for suffix in _SUFFIXES if entry.endswith("*") else ("",):
                    _add(words, _key(base) + suffix, entry, min_len=1)
        object.__setattr__(self, "_artists", artists)
        object.__setattr__(self, "_words", words)
        object.__setattr__(self, "_phrases", phrases)

    def moderate(self, text: str) -> str:
        """The cleaned suggestion, or SuggestionRefused (checked in order: empty, too_long, abusive, artist)."""
        if not isinstance(text, str):
            raise SuggestionRefused("empty", f"A suggestion must be text, not {type(text).__name__}. Try {_EXAMPLE}.")
        bound = RAW_FACTOR * self.cfg.max_chars  # bounded work per suggestion, whatever NFKC makes of it
        normalized = unicodedata.normalize("NFKC", text) if len(text) <= bound else text
        if len(normalized) > bound:
            raise SuggestionRefused(
                "too_long",
                f"Your suggestion is too long; the limit is {self.cfg.max_chars} characters. "
                f"Say it in a few words, e.g. {_EXAMPLE}.",
            )
        cleaned = clean(normalized)  # the same as clean(text): cleaning starts with NFKC, which is idempotent
        if not cleaned:
            raise SuggestionRefused("empty", f"Your suggestion is empty. Type a style or mood, e.g. {_EXAMPLE}.")
        if len(cleaned) > self.cfg.max_chars:
            raise SuggestionRefused(
                "too_long",
                f"Your suggestion is {len(cleaned)} characters long; the limit is {self.cfg.max_chars}. "
                f"Say it in a few words, e.g. {_EXAMPLE}.",
            )
        if not any(ch.isalnum() for ch in cleaned):
            raise SuggestionRefused("empty", f"Your suggestion has no words. Type a style or mood, e.g. {_EXAMPLE}.")
        readings = _readings(cleaned)
        if self._is_abusive(readings):
            raise SuggestionRefused(
                "abusive",
                "Your suggestion has words we can't put on the big screen. "
                f"Keep it friendly and describe the music instead, e.g. {_EXAMPLE}.",
            )
        name = self._artist(readings) or (_name_phrase(cleaned) if self.cfg.check_phrasing else None)
        if name is not None:
            raise SuggestionRefused(
                "artist",
                f"Suggestions can't ask to copy an artist ({name}). Describe the sound instead: "
                "genre, mood, tempo or instruments, e.g. 'euphoric trance with big pads'.",
            )
        return cleaned

    def _artist(self, readings: list[list[list[str]]]) -> str | None:
        """The listed artist the text names (joined, hyphenated, spaced out or in leet), if any."""
        longest = max(map(len, self._artists), default=0)
        for words in readings:
            for cat in _runs([t for word in words for t in word], longest):
                hit = _lookup(self._artists, cat)
                if hit is not None:
                    return hit
        return None

    def _is_abusive(self, readings: list[list[list[str]]]) -> bool:
        """Whether the text holds a blocked word (a whole token or word, or spelled out) or phrase."""
        longest = max(map(len, self._phrases), default=0)
        for words in readings:
            flat = [t for word in words for t in word]
            candidates = flat + ["".join(word) for word in words]  # "sh.it" is one word of two tokens
            for i in range(len(flat)):  # runs of single letters: "f u c k", "f.u.c.k"
                j = i
                while j < len(flat) and len(flat[j]) == 1:
                    j += 1
                    candidates.append("".join(flat[i:j]))
            if any(_lookup(self._words, c) is not None for c in candidates):
                return True
            if any(_lookup(self._phrases, c) is not None for c in _runs(flat, longest)):
                return True
        return False


# ---------------------------------------------------------------- word matching


def _fold(text: str) -> str:
    """Case-, accent- and look-alike-folded text (for matching only)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).translate(_FOLD)


def _readings(text: str) -> list[list[list[str]]]:
    """Each plausible reading of `text` (1, !, | as "i"; as "l"; digits as digits): words, each a list of tokens.

    A word is a whitespace-separated chunk, edge punctuation stripped and
    apostrophes removed; in a word with letters, leet symbols become letters.
    Tokens are a word's runs of letters and digits; in a token with letters,
    digits become letters ("d4ft" → "daft"; "1975" and "50" stay numbers).
    """
    folded = _fold(text)
    out = []
    wanted = (True, any(c in folded for c in _I_OR_L), any(c.isdigit() for c in folded))
    for (symbols, digits), want in zip(_LEET, wanted, strict=True):
        if not want:
            continue
        words = []
        for chunk in folded.split():
            chunk = chunk.strip(_EDGE).replace("'", "").replace("’", "")
            if any(c.isalpha() for c in chunk):
                chunk = chunk.translate(symbols)
            tokens = [t.translate(digits) if any(c.isalpha() for c in t) else t for t in re.findall(r"[^\W_]+", chunk)]
            if tokens:
                words.append(tokens)
        out.append(words)
    return out


def _key(entry: str) -> str:
    """A list entry as the text it matches: its first reading's tokens, joined."""
    return "".join(t for word in _readings(entry)[0] for t in word)


def _runlengths(s: str) -> tuple[str, tuple[int, ...]]:
    """("fuck", (1, 3, 1, 1)) for "fuuuck": the squeezed string and each letter's run length."""
    runs = [m.group(0) for m in re.finditer(r"(.)\1*", s, flags=re.DOTALL)]
    return "".join(r[0] for r in runs), tuple(map(len, runs))


def _add(index: _Index, form: str, entry: str, min_len: int) -> None:
    if len(form) >= min_len:
        squeezed, lengths = _runlengths(form)
        index.setdefault(squeezed, []).append((lengths, entry))


def _lookup(index: _Index, candidate: str) -> str | None:
    """The entry `candidate` spells, letting a letter repeat 3+ times ("fuuuck") but not twice ("assess")."""
    squeezed, lengths = _runlengths(candidate)
    for want, entry in index.get(squeezed, ()):
        if all(n == w or n >= 3 for n, w in zip(lengths, want, strict=True)):
            return entry
    return None


def _runs(tokens: list[str], longest: int) -> list[str]:
    """Concatenations of contiguous tokens, while their squeezed length is at most `longest`."""
    out = []
    for i in range(len(tokens)):
        cat = ""
        for tok in tokens[i:]:
            cat += tok
            if len(_runlengths(cat)[0]) > longest:
                break
            out.append(cat)
    return out


def _name_phrase(text: str) -> str | None:
    """X in "in the style of X", "sounds like X", "like X", "by X", "à la X", "X-style", "X's sound",
    when X looks like a proper name; None otherwise."""
    if not any(w[0].islower() for w in re.findall(r"[^\W\d_]+", text)):
        return None  # ALL CAPS or Title Case: capitals say nothing about names
    for pattern in (_TRIGGER, _SUFFIXED, _POSSESSIVE):
        for m in pattern.finditer(text):
            if m.start("x") == 0 and pattern is not _TRIGGER:
                continue  # the first word of a sentence is capitalised anyway
            name = _proper_name(m.group("x").split())
            if name:
                return name
    return None


def _proper_name(words: list[str]) -> str | None:
    """The leading capitalised words of `words` if they look like a name (after "the", "DJ", "MC")."""
    while len(words) > 1 and words[0].strip(_EDGE).casefold() in ("the", "dj", "mc"):
        words = words[1:]
    name: list[str] = []
    for w in words:
        w = w.strip(_EDGE)
        bare = w.casefold().removesuffix("'s").removesuffix("’s")
        if len(w) < 2 or not w[0].isupper() or bare in _NOT_NAMES or bare.split("-")[0] in _NOT_NAMES:
            break
        name.append(w)
    return " ".join(name) or None
