"""The corpus as the token model sees it: codec tokens and per-frame conditioning, one file per piece.

    <dir>/tokens.json         the codec it was made with (a hash of its weights) and the pieces
    <dir>/<piece>.npz         codes (K, F) uint16, weights (F, num_genres) float16, controls (F, PROMPT_CONTROLS)
                              float16, bar (F,) float32

The controls come from `engine.generate.conditioning.control_matrix` and the phase from `phase_matrix` at train
time, the same functions the running source uses, so the model is trained on exactly what it is fed live. A tokenisation
that was stopped resumes; one made with another codec is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from engine.codec.model import Codec
from engine.generate.conditioning import control_matrix
from engine.train.corpus import SPLITS, Corpus, CorpusError
from engine.train.files import atomic_path

MANIFEST = "tokens.json"
ENCODE_SECONDS = 30.0  # audio encoded per call, seconds (bounded memory)
CONTEXT_SECONDS = 2.0  # audio before each call's span that is encoded again and dropped, so spans join exactly


def codec_fingerprint(codec: Codec) -> str:
    """A short hash of the codec's encoder and codebooks, which alone decide the tokens: tokens are valid for any
    codec with the same fingerprint (a decoder trained further with `--decoder-only` keeps it)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(codec.model.state_dict().items()):
        if name.startswith("decoder.") or name.endswith(("embed_avg", "cluster_size")):
            continue  # the decoder and the codebooks' EMA statistics do not change which code a frame gets
        digest.update(name.encode())
        digest.update(tensor.detach().to(torch.float32).cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class TokenPiece:
    codes: np.ndarray  # (K, F) int64 codec tokens
    weights: np.ndarray  # (F, num_genres) float32 genre weights
    controls: np.ndarray  # (F, PROMPT_CONTROLS) float32 prompt features
    bar: np.ndarray  # (F,) float32 bar clock at each frame's centre


def encode_piece(codec: Codec, corpus: Corpus, name: str) -> TokenPiece:
    labels = corpus.labels(name)
    audio = corpus.audio(name)
    hop = codec.hop_length
    step = int(ENCODE_SECONDS * codec.sample_rate) // hop * hop
    context = int(CONTEXT_SECONDS * codec.sample_rate) // hop * hop  # whole frames of left context
    parts = []
    for start in range(0, len(audio), step):
        lead = min(start, context)
        span = np.asarray(audio[start - lead : start + step], dtype=np.float32) / 32767.0
        parts.append(codec.encode(torch.from_numpy(span)[None])[0, :, lead // hop :])  # (K, F')
    codes = torch.cat(parts, dim=1).numpy()[:, : labels.frames]  # (K, F)
    frames = codes.shape[1]
    controls = control_matrix(labels.bpm, labels.energy, labels.brightness, labels.minor, labels.section)
    return TokenPiece(codes.astype(np.int64), labels.weights[:frames], controls[:frames], labels.bar[:frames])


def tokenize_corpus(corpus: Corpus, codec: Codec, folder: Path, progress: bool = True) -> TokenSet:
    """Encode every piece of `corpus` with `codec` into `folder` (resumable); returns the token set."""
    c = corpus.config
    if codec.sample_rate != c.sample_rate or codec.hop_length != c.hop_length:
        raise CorpusError(
            f"the codec runs at {codec.sample_rate} Hz with hops of {codec.hop_length} samples, the corpus in "
            f"{corpus.folder} at {c.sample_rate} Hz with {c.hop_length}: its labels would not line up with the tokens"
        )
    folder.mkdir(parents=True, exist_ok=True)
    fingerprint = codec_fingerprint(codec)
    manifest = folder / MANIFEST
    if manifest.is_file():
        try:
            old = json.loads(manifest.read_text())
        except (OSError, ValueError) as error:
            raise CorpusError(f"{manifest} is unreadable ({error}); remove the folder to tokenise afresh") from error
        if old.get("codec") != fingerprint:
            raise CorpusError(f"{folder} holds tokens of another codec ({old.get('codec')}); use a new folder")
        if old.get("corpus") != asdict(c):
            raise CorpusError(f"{folder} holds tokens of another corpus ({old.get('corpus')}); use a new folder")
    else:
        manifest.write_text(
            json.dumps({"codec": fingerprint, "corpus": asdict(c), "complete": False, "pieces": corpus.names})
        )
    from tqdm import tqdm

    names = list(corpus)
    for name in tqdm(names, desc="tokens", unit="piece", disable=not progress):
        path = folder / f"{name}.npz"
        if path.is_file():
            continue
        piece = encode_piece(codec, corpus, name)
        with atomic_path(path, ".npz") as tmp:
            np.savez(
                tmp,
                codes=piece.codes.astype(np.uint16),
                weights=piece.weights.astype(np.float16),
                controls=piece.controls.astype(np.float16),
                bar=piece.bar.astype(np.float32),
            )
    with atomic_path(manifest) as tmp:
        record = {"codec": fingerprint, "corpus": asdict(c), "complete": True, "pieces": corpus.names}
        tmp.write_text(json.dumps(record))
    return TokenSet(folder)


class TokenSet:
    """A finished tokenisation, loaded into memory (10 h of 4 x 50 Hz tokens is ~30 MB)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        try:
            raw = json.loads((self.folder / MANIFEST).read_text())
        except (OSError, ValueError) as error:
            raise CorpusError(f"{self.folder / MANIFEST} is missing or unreadable: {error}") from error
        if not raw.get("complete"):
            raise CorpusError(f"tokenisation in {self.folder} is unfinished; run it again to complete it")
        self.codec = str(raw["codec"])
        self.pieces: dict[str, list[TokenPiece]] = {split: [] for split in SPLITS}
        for split in SPLITS:
            for name in raw["pieces"][split]:
                path = self.folder / f"{name}.npz"
                try:
                    with np.load(path) as data:
                        piece = TokenPiece(
                            data["codes"].astype(np.int64),
                            data["weights"].astype(np.float32),
                            data["controls"].astype(np.float32),
                            data["bar"].astype(np.float32),
                        )
                except (OSError, KeyError, ValueError, EOFError) as error:
                    raise CorpusError(f"token file {path} is unreadable: {error}") from error
                self.pieces[split].append(piece)
