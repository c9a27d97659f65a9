from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from concert.crowd.moderation import (
    REFUSAL_CODES,
    ModerationConfig,
    Moderator,
    SuggestionRefused,
    clean,
    escape_html,
    load_wordlist,
    moderate,
)
from engine.music.styles import GENRES

ARTISTS = load_wordlist("artists")
BLOCKED = load_wordlist("blocked_words")
CFG = ModerationConfig()
MOD = Moderator(CFG, ARTISTS, BLOCKED)


def refusal(text: str, mod: Moderator = MOD) -> str | None:
    try:
        mod.moderate(text)
    except SuggestionRefused as e:
        assert e.code in REFUSAL_CODES and e.message == str(e)
        return e.code
    return None


# ---------------------------------------------------------------- word lists


def test_word_lists_load_from_package_data() -> None:
    assert len(ARTISTS) >= 300 and {"Daft Punk", "Hans Zimmer", "Kendrick Lamar", "Taylor Swift"} <= ARTISTS
    assert "fuck*" in BLOCKED and not any(w.startswith("#") or not w.strip() for w in ARTISTS | BLOCKED)
    assert load_wordlist("artists.txt") == ARTISTS


@pytest.mark.parametrize("name", ["../pyproject", "Artists", "", "nope"])
def test_load_wordlist_refuses_bad_names(name: str) -> None:
    with pytest.raises(ValueError, match=repr(name).replace(".", r"\.")):
        load_wordlist(name)


# ---------------------------------------------------------------- cleaning


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("  warm   lo-fi\twith\nrain  ", "warm lo-fi with rain"),
        ("deep\u200bhouse\u200d", "deephouse"),  # zero-width characters
        ("\u202edark\u202c techno", "dark techno"),  # bidi overrides
        ("ｆｕｌｌｗｉｄｔｈ ﬁlter", "fullwidth filter"),  # NFKC
        ("acid\x00\x07 bass", "acid bass"),
        ("z\u0301\u0302\u0303\u0304\u0305", "\u017a\u0302\u0303"),  # zalgo: two marks after ź at most
        ("a\u3164b", "ab"),  # Hangul filler: an invisible "letter"
    ],
)
def test_clean(raw: str, cleaned: str) -> None:
    assert clean(raw) == cleaned


# ---------------------------------------------------------------- accepted and refused


@pytest.mark.parametrize(
    "text",
    [
        "dark rolling techno",
        "Detroit techno",
        "something like Berlin techno at 4am",
        "sounds like summer rain",
        "baroque in the style of Bach",
        "SOUNDS LIKE THUNDER",  # all caps: capitals say nothing about names
        "Sounds Like Thunder",  # title case, likewise
        "more bass",
        "assess the class, passion, cocktail",
        "Scunthorpe house",
        "spicy latin percussion with spices",
        "80's hits",
        "drum+bass with a r&b feel",
        "Dubstep style wobble",
        "the DJ's style",
        "future garage with pink noise",  # artist names that are ordinary words are not listed
        "Ibiza sunset, Chicago-style house",
        "like Hip-Hop but faster",
        "as slow as possible",
        "euphoric 138 bpm",
    ],
)
def test_accepted(text: str) -> None:
    assert refusal(text) is None
    assert MOD.moderate(text) == clean(text)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "empty"),
        (" \u200b\t\n ", "empty"),
        ("🔥🔥🔥", "empty"),
        ("x" * 81, "too_long"),
        ("daft punk", "artist"),
        ("d4ft punk", "artist"),
        ("Daft-Punk vibes", "artist"),
        ("DAFTPUNK", "artist"),
        ("d a f t  p u n k", "artist"),
        ("daaaaft punk", "artist"),
        ("a bit of Beyoncé", "artist"),
        ("björk and bass", "artist"),
        ("deadmau5 plucks", "artist"),
        ("Guns N' Roses riffs", "artist"),
        ("blink 182", "artist"),
        ("A$AP Rocky beat", "artist"),
        ("s1ipknot", "artist"),
        ("hans zimmer braams", "artist"),
        ("in the style of Amelie Lens", "artist"),
        ("sounds like Justice", "artist"),  # unlisted ordinary word, caught by the phrasing
        ("techno like Zorblax Quint", "artist"),
        ("a track by the Obscurists", "artist"),
        ("à la Jarre", "artist"),
        ("big Zorblax-style drop", "artist"),
        ("some Zorblax's sound", "artist"),
        ("like DJ Zorblax", "artist"),
        ("fuck this", "abusive"),
        ("sh1t music", "abusive"),
        ("kick a$$", "abusive"),
        ("fuuuuck", "abusive"),
        ("f.u.c.k", "abusive"),
        ("f u c k", "abusive"),
        ("fücking loud", "abusive"),
        ("fuсk", "abusive"),  # Cyrillic "с"
        ("motherfucker", "abusive"),
        ("b!tch", "abusive"),
        ("kill your self", "abusive"),
        ("daft punk shit", "abusive"),  # abusive is checked first
    ],
)
def test_refused(text: str, code: str) -> None:
    assert refusal(text) == code


def test_messages_say_why_and_what_to_do() -> None:
    with pytest.raises(SuggestionRefused) as e:
        MOD.moderate("y" * 95)
    assert e.value.code == "too_long" and "95" in e.value.message and "80" in e.value.message
    with pytest.raises(SuggestionRefused) as e:
        MOD.moderate("D4FT PUNK please")
    assert e.value.code == "artist" and "Daft Punk" in e.value.message and "Describe the sound" in e.value.message
    with pytest.raises(SuggestionRefused) as e:
        MOD.moderate("")
    assert "e.g." in e.value.message


def test_phrasing_check_can_be_turned_off() -> None:
    relaxed = Moderator(ModerationConfig(check_phrasing=False), ARTISTS, BLOCKED)
    assert relaxed.moderate("sounds like Justice") == "sounds like Justice"
    assert refusal("sounds like Daft Punk", relaxed) == "artist"  # the list still applies


def test_moderate_function_matches_the_moderator() -> None:
    assert moderate(" dark  techno ", CFG, ARTISTS, BLOCKED) == "dark techno"
    with pytest.raises(SuggestionRefused, match="Daft Punk"):
        moderate("daft punk", CFG, ARTISTS, BLOCKED)


def test_non_text_is_refused() -> None:
    with pytest.raises(SuggestionRefused, match="int"):
        MOD.moderate(42)  # type: ignore[arg-type]


def test_config_and_refusal_validation() -> None:
    with pytest.raises(ValueError, match="0"):
        ModerationConfig(max_chars=0)
    with pytest.raises(ValueError, match="'rude'"):
        SuggestionRefused("rude", "no")


def test_escape_html() -> None:
    assert escape_html("<b>\"Tom\" & 'Jerry'</b>") == "&lt;b&gt;&quot;Tom&quot; &amp; &#x27;Jerry&#x27;&lt;/b&gt;"


# ---------------------------------------------------------------- properties


@settings(max_examples=300)
@given(st.text(max_size=120))
def test_never_crashes_and_respects_the_cap(text: str) -> None:
    try:
        out = MOD.moderate(text)
    except SuggestionRefused as e:
        assert e.code in REFUSAL_CODES and e.message
        return
    assert 0 < len(out) <= CFG.max_chars
    assert out == out.strip() and "  " not in out


@settings(max_examples=300)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=100) | st.sampled_from(sorted(ARTISTS)))
def test_moderate_is_idempotent(text: str) -> None:
    try:
        once = MOD.moderate(text)
    except SuggestionRefused:
        return
    assert MOD.moderate(once) == once


@given(st.text(max_size=200))
def test_clean_is_idempotent(text: str) -> None:
    assert clean(clean(text)) == clean(text)


def test_every_listed_artist_is_refused_however_written() -> None:
    for name in sorted(ARTISTS):
        words = name.replace("!", "").split()  # "!" inside a word is read as the letter i ("sh!t")
        for form in (name.lower(), name.upper(), "".join(words), "-".join(words).upper()):
            assert refusal(f"something {form} ish") == "artist", form


VOCAB = sorted(
    {w for g in GENRES for w in (g.id, g.label, *g.keywords)}
    | set("dark warm bass kick with and more less faster rain summer night pads piano 138 bpm in the of".split())
    | {"like", "sounds like", "in the style of", "by", "style", "Berlin", "Detroit", "UK", "Ibiza"}
)


@given(st.lists(st.sampled_from(VOCAB), min_size=1, max_size=8))
def test_style_vocabulary_is_never_refused(words: list[str]) -> None:
    text = " ".join(words)
    assume(len(text) <= CFG.max_chars)
    assert refusal(text) is None, text


def test_text_that_nfkc_blows_up_is_refused_before_any_cleaning(monkeypatch: pytest.MonkeyPatch) -> None:
    from concert.crowd import moderation

    m = moderation.Moderator(
        moderation.ModerationConfig(), moderation.load_wordlist("artists"), moderation.load_wordlist("blocked_words")
    )
    cleaned: list[str] = []
    real_clean = moderation.clean
    monkeypatch.setattr(moderation, "clean", lambda text: cleaned.append(text) or real_clean(text))
    for bomb in ("\ufdfa" * 400, "\ufdfa" * 18):  # 400 and 18 characters: 7,200 and 324 after NFKC
        with pytest.raises(moderation.SuggestionRefused) as e:
            m.moderate(bomb)
        assert e.value.code == "too_long"
    assert cleaned == []  # the per-character cleaning never ran on them: bounded work per frame
    assert m.moderate("\ufdfa techno") == real_clean("\ufdfa techno")  # one is fine: 18 + 7 characters
    assert cleaned
