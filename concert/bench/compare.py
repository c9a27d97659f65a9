"""`concert bench … --against DIR`: the same benchmark on this checkout and another one, side by side, one run.

Both sides run as subprocesses (`python -m concert bench … --json` with PYTHONPATH pointing at the checkout),
alternating `rounds` times so drift in the machine's load falls on both; each side's figures are the medians
of its rounds. DIR is any checkout of this project, e.g. `git worktree add /tmp/main main`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


class CompareError(RuntimeError):
    """The other checkout cannot run the benchmark; the message says why."""


def run_side(checkout: Path, argv: Sequence[str]) -> dict[str, object]:
    """One benchmark run in `checkout`; its last output line parsed as JSON."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    proc = subprocess.run(
        [sys.executable, "-m", "concert", "bench", *argv, "--json"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise CompareError(f"the benchmark failed in {checkout} (rc {proc.returncode}): {proc.stderr.strip()[-800:]}")
    try:
        result = json.loads(lines[-1])
    except json.JSONDecodeError as e:
        raise CompareError(f"the benchmark in {checkout} did not end with a JSON line: {lines[-1][:200]!r}") from e
    if not isinstance(result, dict):
        raise CompareError(f"the benchmark in {checkout} printed {type(result).__name__}, not a JSON object")
    return result


def medians(runs: Sequence[dict[str, object]]) -> dict[str, object]:
    """Per key: the median of the numeric values, else the first run's value."""
    out: dict[str, object] = {}
    for key, first in runs[0].items():
        values = [r.get(key) for r in runs]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        out[key] = statistics.median(numbers) if len(numbers) == len(values) else first
    return out


def compare(this: Path, against: Path, argv: Sequence[str], rounds: int = 1) -> dict[str, object]:
    """Alternate the benchmark between the two checkouts; medians per side and this / against per figure."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if not (against / "concert" / "__main__.py").is_file():
        raise CompareError(f"{against} is not a checkout of this project (no concert/__main__.py)")
    ours: list[dict[str, object]] = []
    theirs: list[dict[str, object]] = []
    for _ in range(rounds):
        theirs.append(run_side(against, argv))
        ours.append(run_side(this, argv))
    a, b = medians(ours), medians(theirs)
    ratio = {
        k: round(v / w, 3)
        for k, v in a.items()
        if isinstance(v, int | float) and isinstance(w := b.get(k), int | float) and not isinstance(v, bool) and w
    }
    return {"this": a, "against": b, "this_over_against": ratio, "against_path": str(against), "rounds": rounds}
