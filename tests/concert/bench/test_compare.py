"""`concert bench … --against DIR`: one run, two checkouts, side by side (real subprocesses, real benchmark)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from concert.bench.compare import CompareError, compare, medians

ROOT = Path(__file__).resolve().parents[3]


def test_medians_take_numbers_per_key_and_keep_the_rest() -> None:
    runs = [{"rtf": 0.3, "name": "a", "n": 1}, {"rtf": 0.1, "name": "b", "n": 3}, {"rtf": 0.2, "name": "c", "n": 2}]
    assert medians(runs) == {"rtf": 0.2, "name": "a", "n": 2}


def test_the_same_benchmark_runs_on_both_checkouts_through_the_cli(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "concert", "bench", "synth", "--seconds", "2", "--against", str(ROOT), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result["this"]) == set(result["against"]) and result["against_path"] == str(ROOT)
    numeric = [k for k, v in result["this"].items() if isinstance(v, int | float) and v]
    assert numeric and set(numeric) <= set(result["this_over_against"])
    assert all(v > 0 for v in result["this_over_against"].values())


def test_a_folder_that_is_no_checkout_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CompareError, match="not a checkout"):
        compare(ROOT, tmp_path, ["synth", "--seconds", "1"])
    with pytest.raises(ValueError, match="rounds"):
        compare(ROOT, ROOT, ["synth"], rounds=0)
