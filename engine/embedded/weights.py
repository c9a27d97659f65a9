"""The embedded model's weights: one folder, written by training, shipped in the package, loaded offline.

    <folder>/codec/config.json        the codec, Hugging Face EncodecModel format (float16 safetensors)
    <folder>/codec/model.safetensors
    <folder>/lm.safetensors           the TokenLM, float16; its LMConfig is in the file's metadata
    <folder>/MODEL_CARD.md            data, steps, hours and figures
    <folder>/training.json            steps and compute hours each part has had (a run resuming from here adds on)

A missing, truncated, corrupt or mismatched file raises `WeightsError` naming it; nothing falls back to random
weights. The package ships one such folder (`SHIPPED`), the `embedded` backend's default.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from engine.codec.model import Codec, CodecError
from engine.lm.model import LMConfig, TokenLM

SHIPPED = Path(__file__).resolve().parent / "shipped"  # the weights inside the installed package
LM_FILE = "lm.safetensors"
CODEC_DIR = "codec"
CARD_FILE = "MODEL_CARD.md"
TRAINING_FILE = "training.json"
LM_FORMAT = "concert-token-lm/1"


class WeightsError(Exception):
    """Weights that cannot be loaded; the message names the file at fault."""


def save_lm(lm: TokenLM, path: Path, dtype: torch.dtype = torch.float16, extra: dict[str, str] | None = None) -> None:
    """Write `lm`'s weights in `dtype` with its config in the metadata (atomically: temp file, then rename)."""
    state = {name: t.detach().to("cpu", dtype).contiguous() for name, t in lm.state_dict().items()}
    meta = {"format": LM_FORMAT, "config": json.dumps(asdict(lm.config)), **(extra or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)


def lm_metadata(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise WeightsError(f"token model weights {path} do not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f"token model weights {path} are unreadable (truncated or corrupt?): {error}") from error


def load_lm(path: Path) -> TokenLM:
    """A float32 TokenLM from `path`; WeightsError names the file if anything is wrong with it."""
    meta = lm_metadata(path)
    if meta.get("format") != LM_FORMAT:
        raise WeightsError(f"{path} is not a concert token model (format {meta.get('format')!r}, want {LM_FORMAT!r})")
    try:
        raw = json.loads(meta["config"])
        if not isinstance(raw, dict):
            raise TypeError(f"the config is a JSON {type(raw).__name__}, not an object")
        known = {f.name for f in fields(LMConfig)}
        config = LMConfig(**{k: v for k, v in raw.items() if k in known})
    except (KeyError, ValueError, TypeError) as error:
        raise WeightsError(f"{path} has no valid LMConfig in its metadata: {error}") from error
    lm = TokenLM(config, seed=None)
    try:
        with safe_open(str(path), framework="pt") as f:
            state = {name: f.get_tensor(name).to(torch.float32) for name in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f"token model weights {path} are unreadable (truncated or corrupt?): {error}") from error
    expected = lm.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(n for n in set(expected) & set(state) if expected[n].shape != state[n].shape)
    if missing or unexpected or wrong:
        raise WeightsError(
            f"{path} does not match its own config: missing {missing[:3]}, unexpected {unexpected[:3]}, "
            f"wrong shapes {wrong[:3]}"
        )
    lm.load_state_dict(state)
    return lm.eval()


def save_codec(codec: Codec, folder: Path, dtype: torch.dtype = torch.float16) -> None:
    """Write the codec in Hugging Face format in `dtype` (the loaded codec runs in float32)."""
    import copy

    model: Any = copy.deepcopy(codec.model)
    model.to(dtype).save_pretrained(folder)


def load_codec(folder: Path) -> Codec:
    try:
        return Codec.from_pretrained(folder)
    except CodecError as error:
        raise WeightsError(str(error)) from error


def save_embedded(
    folder: Path, lm: TokenLM, codec: Codec, card: str | None = None, training: dict[str, TrainedFor] | None = None
) -> None:
    """The whole folder: codec, token model, model card, training record (float16)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_codec(codec, folder / CODEC_DIR)
    save_lm(lm, folder / LM_FILE)
    if card is not None:
        (folder / CARD_FILE).write_text(card, encoding="utf-8")
    if training is not None:
        record = {
            part: {"steps": t.steps, "hours": t.hours, **({"held_out": dict(t.held_out)} if t.held_out else {})}
            for part, t in training.items()
        }
        (folder / TRAINING_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class TrainedFor:
    steps: int  # optimizer steps, over every run that led to these weights
    hours: float  # compute hours of those steps
    held_out: dict[str, float] = field(default_factory=dict)  # the run's last held-out figures, by name


def trained_for(folder: Path, part: str) -> TrainedFor:
    """How long `part` ("codec" or "lm") of the weights in `folder` was trained; zero if there is no record."""
    path = folder / TRAINING_FILE
    if not path.is_file():
        return TrainedFor(0, 0.0)
    try:
        entry = json.loads(path.read_text(encoding="utf-8")).get(part, {"steps": 0, "hours": 0.0})
        held_out = {str(k): float(v) for k, v in entry.get("held_out", {}).items()}
        return TrainedFor(int(entry["steps"]), float(entry["hours"]), held_out)
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise WeightsError(f"training record {path} is unreadable: {error}") from error


def load_embedded(folder: Path = SHIPPED) -> tuple[TokenLM, Codec]:
    """(float32 TokenLM, Codec) from a weights folder, checked against each other."""
    if not folder.is_dir():
        raise WeightsError(f"embedded weights folder {folder} does not exist; train them (concert train) or pass one")
    codec = load_codec(folder / CODEC_DIR)
    lm = load_lm(folder / LM_FILE)
    if lm.config.num_codebooks != codec.num_codebooks or lm.config.card != codec.codebook_size:
        raise WeightsError(
            f"{folder / LM_FILE} expects {lm.config.num_codebooks} codebooks of {lm.config.card}, but "
            f"{folder / CODEC_DIR} has {codec.num_codebooks} of {codec.codebook_size}"
        )
    return lm, codec
