"""Atomic file writes for run state: a reader (or a resumed run) sees the old file or the new, never half of one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside `path` (ending in `suffix`) to write to; renamed onto `path` when the block ends
    without an exception, removed otherwise. Same folder, so the rename is atomic."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
