"""The embedded weights folder: float16 round trip, and a WeightsError naming the path for every broken file."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from engine.codec.model import Codec, CodecConfig
from engine.embedded.weights import (
    CARD_FILE,
    CODEC_DIR,
    LM_FILE,
    LM_FORMAT,
    WeightsError,
    lm_metadata,
    load_codec,
    load_embedded,
    load_lm,
    save_embedded,
    save_lm,
)
from engine.generate.conditioning import NUM_CONTROLS
from engine.lm.model import LMConfig, TokenLM

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/engine/conftest.py

TINY_CODEC = CodecConfig(num_filters=4, hidden_size=16, codebook_size=64, num_codebooks=2)
TINY_LM = LMConfig(
    num_codebooks=2,
    card=64,
    dim=32,
    num_layers=1,
    num_heads=2,
    ffn_dim=64,
    max_len=200,
    num_styles=8,
    num_controls=NUM_CONTROLS,
)


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec.random(TINY_CODEC, seed=0)


@pytest.fixture(scope="module")
def lm() -> TokenLM:
    return TokenLM(TINY_LM, seed=0)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, lm: TokenLM, codec: Codec) -> Path:
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("weights") / "embedded"
    save_embedded(folder, lm, codec, card="# the card\n")
    return folder


@pytest.fixture
def folder(tmp_path: Path, saved: Path) -> Path:
    """A private copy of the saved folder, to break."""
    out = tmp_path / "embedded"
    shutil.copytree(saved, out)
    return out


def _halved(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.half().float() if v.is_floating_point() else v for k, v in state.items()}


def _state_tensors(lm: TokenLM) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous() for k, v in lm.state_dict().items()}


# --- round trip ---------------------------------------------------------------------------------------------------


def test_the_folder_layout(saved: Path) -> None:
    files = {str(p.relative_to(saved)) for p in saved.rglob("*") if p.is_file()}
    assert files == {LM_FILE, CARD_FILE, f"{CODEC_DIR}/config.json", f"{CODEC_DIR}/model.safetensors"}
    assert (saved / CARD_FILE).read_text(encoding="utf-8") == "# the card\n"
    meta = lm_metadata(saved / LM_FILE)
    assert meta["format"] == LM_FORMAT and json.loads(meta["config"]) == json.loads(json.dumps(asdict(TINY_LM)))


def test_save_and_load_embedded_round_trip(saved: Path, lm: TokenLM, codec: Codec) -> None:
    loaded_lm, loaded_codec = load_embedded(saved)
    assert loaded_lm.config == TINY_LM and not loaded_lm.training
    expected = _halved(lm.state_dict())
    for name, tensor in loaded_lm.state_dict().items():
        assert tensor.dtype == expected[name].dtype, name
        assert torch.equal(tensor, expected[name]), name  # float16 on disk, float32 in memory
    assert any(not torch.equal(t, lm.state_dict()[n]) for n, t in loaded_lm.state_dict().items())  # it was rounded
    assert (loaded_codec.num_codebooks, loaded_codec.codebook_size) == (2, 64)
    expected = _halved(codec.model.state_dict())
    state = loaded_codec.model.state_dict()
    assert set(state) == set(expected)
    for name, tensor in state.items():
        assert torch.equal(tensor.float(), expected[name].float()), name


def test_the_loaded_pair_runs(saved: Path) -> None:
    lm, codec = load_embedded(saved)
    wav = 0.1 * torch.randn(1, 4800, generator=torch.Generator().manual_seed(0))
    codes = codec.encode(wav)
    assert codes.shape == (1, 2, 10)
    assert codec.decode(codes).shape == (1, 4800)
    cond = lm.condition(torch.full((1, 8), 1 / 8), torch.zeros(1, NUM_CONTROLS))[:, None].expand(1, 10, -1)
    with torch.no_grad():
        assert lm(codes, cond).shape == (1, 2, 10, 64)


def test_save_lm_float32_is_exact_and_atomic(tmp_path: Path, lm: TokenLM) -> None:
    path = tmp_path / "deep" / "lm.safetensors"
    save_lm(lm, path, dtype=torch.float32, extra={"step": "12"})
    assert [p.name for p in path.parent.iterdir()] == ["lm.safetensors"]
    loaded = load_lm(path)
    for name, tensor in lm.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    assert lm_metadata(path)["step"] == "12"


def test_no_card_no_card_file(tmp_path: Path, lm: TokenLM, codec: Codec) -> None:
    save_embedded(tmp_path / "w", lm, codec)
    assert not (tmp_path / "w" / CARD_FILE).exists()
    assert load_embedded(tmp_path / "w")[0].config == TINY_LM


def test_unknown_config_keys_are_ignored(tmp_path: Path, lm: TokenLM) -> None:
    """A newer writer's extra LMConfig field does not stop an older reader."""
    path = tmp_path / "lm.safetensors"
    config = {**asdict(TINY_LM), "future_knob": 3}
    save_file(_state_tensors(lm), str(path), metadata={"format": LM_FORMAT, "config": json.dumps(config)})
    assert load_lm(path).config == TINY_LM


# --- errors -------------------------------------------------------------------------------------------------------


def test_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=str(tmp_path / "nowhere")):
        load_embedded(tmp_path / "nowhere")


def test_a_missing_lm_file(folder: Path) -> None:
    (folder / LM_FILE).unlink()
    with pytest.raises(WeightsError, match=str(folder / LM_FILE)):
        load_embedded(folder)


@pytest.mark.parametrize("damage", ["truncate", "random", "empty"])
def test_a_damaged_lm_file(folder: Path, damage: str) -> None:
    path = folder / LM_FILE
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "random": os.urandom(len(data)), "empty": b""}[damage])
    with pytest.raises(WeightsError, match=str(path)):
        load_embedded(folder)


def test_a_wrong_format_tag(folder: Path, lm: TokenLM) -> None:
    path = folder / LM_FILE
    meta = {"format": "someone-else/2", "config": json.dumps(asdict(TINY_LM))}
    save_file(_state_tensors(lm), str(path), metadata=meta)
    with pytest.raises(WeightsError, match=str(path)) as info:
        load_embedded(folder)
    assert "someone-else/2" in str(info.value)


def test_no_metadata_at_all(folder: Path, lm: TokenLM) -> None:
    path = folder / LM_FILE
    save_file(_state_tensors(lm), str(path))
    with pytest.raises(WeightsError, match=str(path)):
        load_embedded(folder)


@pytest.mark.parametrize(
    "config",
    [
        pytest.param(None, id="missing"),
        pytest.param("{not json", id="not-json"),
        pytest.param(
            json.dumps([1, 2]),
            id="not-a-dict",
        ),
        pytest.param(json.dumps({**asdict(TINY_LM), "dim": 33}), id="invalid-config"),
    ],
)
def test_a_bad_config_in_the_metadata(folder: Path, lm: TokenLM, config: str | None) -> None:
    path = folder / LM_FILE
    meta = {"format": LM_FORMAT} if config is None else {"format": LM_FORMAT, "config": config}
    save_file(_state_tensors(lm), str(path), metadata=meta)
    with pytest.raises(WeightsError, match=str(path)):
        load_embedded(folder)


def test_tensors_that_do_not_match_the_config(folder: Path, lm: TokenLM) -> None:
    path = folder / LM_FILE
    state = _state_tensors(lm)
    dropped = sorted(state)[0]
    del state[dropped]
    save_file(state, str(path), metadata={"format": LM_FORMAT, "config": json.dumps(asdict(TINY_LM))})
    with pytest.raises(WeightsError, match=str(path)) as info:
        load_lm(path)
    assert dropped in str(info.value)
    wider = TokenLM(replace(TINY_LM, ffn_dim=96), seed=0)  # same names, other shapes
    save_file(_state_tensors(wider), str(path), metadata={"format": LM_FORMAT, "config": json.dumps(asdict(TINY_LM))})
    with pytest.raises(WeightsError, match="wrong shapes"):
        load_lm(path)


@pytest.mark.parametrize("change", [{"num_codebooks": 3}, {"card": 128}], ids=["codebooks", "card"])
def test_an_lm_that_does_not_fit_the_codec(folder: Path, change: dict[str, int]) -> None:
    other = TokenLM(replace(TINY_LM, **change), seed=0)
    save_lm(other, folder / LM_FILE)
    with pytest.raises(WeightsError, match=str(folder / LM_FILE)) as info:
        load_embedded(folder)
    assert str(folder / CODEC_DIR) in str(info.value)


def test_a_codec_folder_without_weights(folder: Path) -> None:
    (folder / CODEC_DIR / "model.safetensors").unlink()
    with pytest.raises(WeightsError, match=str(folder / CODEC_DIR)):
        load_embedded(folder)


def test_a_missing_codec_folder(folder: Path) -> None:
    shutil.rmtree(folder / CODEC_DIR)
    with pytest.raises(WeightsError, match=str(folder / CODEC_DIR)):
        load_embedded(folder)


@pytest.mark.parametrize("damage", ["truncate", "random"])
def test_a_damaged_codec_file(folder: Path, damage: str) -> None:
    path = folder / CODEC_DIR / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else os.urandom(len(data)))
    with pytest.raises(WeightsError, match=str(folder / CODEC_DIR)):
        load_embedded(folder)


def test_a_corrupt_codec_config(folder: Path) -> None:
    (folder / CODEC_DIR / "config.json").write_text("{oops")
    with pytest.raises(WeightsError, match=str(folder / CODEC_DIR / "config.json")):
        load_codec(folder / CODEC_DIR)


def test_an_lm_file_that_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / LM_FILE).mkdir()
    with pytest.raises(WeightsError, match=str(tmp_path / LM_FILE)):
        load_lm(tmp_path / LM_FILE)
