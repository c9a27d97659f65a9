"""Shared by the training tests: one torch thread (a trainer may share the machine) and a tiny corpus."""

from __future__ import annotations

import pytest
import torch

from engine.train.corpus import Corpus, CorpusConfig, build_corpus


@pytest.fixture(autouse=True)
def _on_one_thread(one_thread: None) -> None:
    """Every training test runs torch on one thread."""


TINY_CORPUS = CorpusConfig(train_hours=16 / 3600, piece_seconds=8.0, holdout_pieces=1)  # 2 + 1 pieces of 8 s


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """TINY_CORPUS, built once per test module."""
    torch.set_num_threads(1)
    return build_corpus(tmp_path_factory.mktemp("corpus") / "c", TINY_CORPUS, progress=False)
