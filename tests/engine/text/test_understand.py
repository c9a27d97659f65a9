"""The crowd's words read into the style space: the pure reading (property-tested), then the real shipped
MiniLM on phrases a crowd types, and a weights file that is not the published one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.music.interpret import resolve
from engine.music.prompt import Prompt
from engine.music.styles import GENRE_IDS, UnknownStyleError
from engine.text.encoder import INSTALL, SentenceEncoder, TextModelError, model_folder
from engine.text.understand import AXES, ReadingConfig, Understander, reading

sims = st.fixed_dictionaries({g: st.floats(-0.2, 0.9) for g in GENRE_IDS})
leans = st.fixed_dictionaries({a: st.floats(-0.3, 0.3) for a in AXES})


@given(sims, leans)
def test_a_reading_plays_its_closest_genre_or_is_refused(sim: dict[str, float], lean: dict[str, float]) -> None:
    config = ReadingConfig()
    best = max(sim.values())
    try:
        r = reading("words", sim, lean, config)
    except UnknownStyleError as e:
        assert best < config.sure_similarity and "sounds like no style" in str(e)
        return
    top = r.mix[0][0]
    assert sim[top] == best and 1 <= len(r.mix) <= 2
    assert abs(sum(w for _, w in r.mix) - 1) < 1e-9 and r.mix[0][1] >= r.mix[-1][1]
    assert resolve(Prompt.of(r.style)).dominant() == top  # the keyword style plays the same genre first
    for axis, ((_, low), (_, high)) in AXES.items():
        bar = config.mood_threshold if axis == "mood" else config.axis_threshold
        assert (high in r.leanings) == (lean[axis] >= bar) and (low in r.leanings) == (lean[axis] <= -bar)


def test_two_close_genres_are_both_in_the_mix() -> None:
    sim = {g: 0.1 for g in GENRE_IDS} | {"lofi": 0.55, "ambient": 0.54}
    r = reading("rain", sim, {a: 0.0 for a in AXES})
    assert [g for g, _ in r.mix] == ["lofi", "ambient"] and r.label == "Lo-fi + Ambient"
    assert r.style == "lofi lofi lofi ambient ambient"  # 3:2: the closer genre leads


@pytest.fixture(scope="module")
def understander() -> Understander:
    if model_folder() is None:
        pytest.fail(f"the text model is not installed ({INSTALL}; bash .ci/setup installs it)")
    return Understander(SentenceEncoder())


@pytest.mark.parametrize(
    ("words", "genre", "leaning"),
    [
        ("rainy day piano", "lofi", None),
        ("dark rolling techno", "techno", "dark"),
        ("meditation", "ambient", "soft"),
        ("angry fast breakbeats", "drum-and-bass", "energetic"),
        ("hands in the air euphoria", "trance", None),
        ("gentle morning coffee", "lofi", "soft"),
        ("sad slow piano", "lofi", "sad"),
    ],
)
def test_what_a_crowd_types_is_understood(understander: Understander, words: str, genre: str, leaning: str) -> None:
    r = understander.understand(words)
    assert r.mix[0][0] == genre, r
    if leaning is not None:
        assert leaning in r.leanings, r
    assert resolve(Prompt.of(r.style)).dominant() == genre


@pytest.mark.parametrize("words", ["my tax return", "qwertyuiop", "pizza", "i love you", "the"])
def test_text_with_nothing_musical_in_it_is_refused(understander: Understander, words: str) -> None:
    with pytest.raises(UnknownStyleError, match="sounds like no style"):
        understander.understand(words)


def test_weights_that_are_not_the_published_file_are_refused_by_name(tmp_path: Path) -> None:
    real = model_folder()
    if real is None:
        pytest.fail(f"the text model is not installed ({INSTALL})")
    for f in real.iterdir():
        if f.is_file() and f.name != "model.safetensors":
            shutil.copy(f, tmp_path / f.name)
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 1024)
    with pytest.raises(TextModelError, match=r"model\.safetensors.*SHA-256"):
        SentenceEncoder(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(TextModelError, match="missing"):
        SentenceEncoder(tmp_path)
