"""The one training loop: budgets, progress, atomic checkpoints, automatic resume, logged curves.

A `Job` (the codec's or the token model's) owns its model, optimizer and data; this loop owns time:

    run_dir/checkpoint.pt   model + optimizer + step + RNG + data position, replaced atomically
    run_dir/log.csv         one row per logged step (step, compute hours, losses, held-out figures)
    run_dir/curves.png      the curves of log.csv, redrawn at every checkpoint

`run` resumes from `checkpoint.pt` when it exists, trains until `minutes` or `max_steps` run out, and checkpoints
every `checkpoint_minutes`, at the end, and on SIGTERM/SIGINT (so `kill` loses nothing). Same seed and same steps
give the same weights whether or not the run was stopped and resumed in between.
"""

from __future__ import annotations

import csv
import math
import random
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from engine.train.files import atomic_path

CHECKPOINT = "checkpoint.pt"
LOG = "log.csv"
CURVES = "curves.png"
# A step's compute time. On CPU it is the process's CPU time: a run paused by SIGSTOP, or starved by other work,
# does not count hours it did not train (the model card reports CPU hours). On an accelerator the host mostly waits,
# so there it is wall time.
CLOCKS = {"process": time.process_time, "wall": time.perf_counter}


class CheckpointError(Exception):
    """A checkpoint that cannot be resumed; the message names the file."""


@dataclass(frozen=True)
class RunConfig:
    run_dir: Path  # where the checkpoint, log and curves live (outside the repository)
    minutes: float | None = None  # compute budget of this invocation, minutes; None = until max_steps
    max_steps: int | None = None  # stop at this total step count; None = until the budget
    checkpoint_minutes: float = 5.0  # wall minutes between checkpoints (the brief asks for at most 10)
    log_every: int = 10  # steps between log rows
    eval_every: int = 250  # steps between held-out evaluations (and at the end)
    progress: bool = True  # tqdm progress bar with ETA
    clock: str = "process"  # a step's compute time: "process" CPU seconds (a pause counts nothing) or "wall" (cuda)

    def __post_init__(self) -> None:
        if self.minutes is None and self.max_steps is None:
            raise ValueError("give a budget: minutes, max_steps or both")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError(f"minutes must be > 0, got {self.minutes}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if not 0 < self.checkpoint_minutes <= 10:
            raise ValueError(f"checkpoint_minutes must be in (0, 10], got {self.checkpoint_minutes}")
        if self.clock not in CLOCKS:
            raise ValueError(f"clock must be one of {sorted(CLOCKS)}, got {self.clock!r}")


class Job(Protocol):
    """One kind of training: a step, a held-out evaluation, and everything needed to resume."""

    def step(self, step: int) -> dict[str, float]:
        """Train on one batch; return the losses to log."""
        ...

    def evaluate(self) -> dict[str, float]:
        """Held-out figures (no training)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Model, optimizer and data position."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def snapshot(self, step: int, hours: float) -> None:
        """Called after each checkpoint: export inference weights (optional work)."""
        ...


def _rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically: a temporary file in the same folder, then one rename."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path, kind: str) -> dict[str, Any]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises many types for a truncated or foreign file
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(error).__name__}: {error})") from error
    if not isinstance(payload, dict) or payload.get("kind") != kind:
        found = payload.get("kind") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"checkpoint {path} holds a {found!r} run, not a {kind!r} run; use another --run-dir")
    return payload


@contextmanager
def _stop_signals() -> Iterator[list[int]]:
    """Turn SIGTERM/SIGINT into a flag the loop checks after each step (then it checkpoints and returns)."""
    caught: list[int] = []
    previous = {}

    def handler(signum: int, frame: object) -> None:
        caught.append(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: signals stay as they are
            pass
    try:
        yield caught
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@dataclass
class RunResult:
    step: int  # total steps done (over every resumed run, and the initial weights' own)
    hours: float  # total compute hours over every resumed run (and the initial weights' own)
    resumed_from: int  # step this invocation started at (`start`'s steps for a fresh run)
    last: dict[str, float]  # the last logged losses
    held_out: dict[str, float]  # the last held-out figures


def run(
    job: Job,
    kind: str,
    config: RunConfig,
    seed: int,
    meta: dict[str, Any] | None = None,
    start: tuple[int, float] = (0, 0.0),
) -> RunResult:
    """Train `job` under `config`, resuming from `run_dir/checkpoint.pt` if there is one.

    start: (steps, compute hours) a fresh run counts on from — the training its initial weights already had.
    """
    run_dir = config.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = run_dir / CHECKPOINT
    step, hours, held_out = int(start[0]), float(start[1]), {}
    if ckpt.is_file():
        payload = load_checkpoint(ckpt, kind)
        job.load_state_dict(payload["job"])
        _set_rng_state(payload["rng"])
        step, hours, held_out = int(payload["step"]), float(payload["hours"]), dict(payload.get("held_out", {}))
        _truncate_log(run_dir / LOG, step)  # rows logged after this checkpoint belong to steps about to be redone
    else:
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
    resumed_from = step
    last: dict[str, float] = {}

    def checkpoint() -> None:
        payload = {"kind": kind, "job": job.state_dict(), "rng": _rng_state(), "step": step, "hours": hours}
        payload.update(held_out=held_out, meta=meta or {})
        save_checkpoint(ckpt, payload)
        plot_curves(run_dir / LOG, run_dir / CURVES, kind)
        job.snapshot(step, hours)

    from tqdm import tqdm

    target = config.max_steps
    budget_s = math.inf if config.minutes is None else config.minutes * 60
    total = None if target is None else max(0, target - step)
    bar = tqdm(total=total, desc=kind, unit="step", disable=not config.progress, dynamic_ncols=True)
    started = last_ckpt = time.monotonic()
    clock = CLOCKS[config.clock]
    with _stop_signals() as stop:
        while (target is None or step < target) and time.monotonic() - started < budget_s and not stop:
            t0 = clock()
            losses = job.step(step)
            hours += (clock() - t0) / 3600
            step += 1
            last = losses
            bar.update()
            if step % config.log_every == 0:
                bar.set_postfix({k: f"{v:.3g}" for k, v in list(losses.items())[:4]})
                _log_row(run_dir / LOG, {"step": step, "hours": round(hours, 5), **losses})
            if step % config.eval_every == 0:
                held_out = job.evaluate()
                _log_row(run_dir / LOG, {"step": step, "hours": round(hours, 5), **held_out})
            if time.monotonic() - last_ckpt > config.checkpoint_minutes * 60:
                checkpoint()
                last_ckpt = time.monotonic()
    bar.close()
    if step > resumed_from:
        if not held_out or step % config.eval_every:
            held_out = job.evaluate()
            _log_row(run_dir / LOG, {"step": step, "hours": round(hours, 5), **held_out})
        checkpoint()
    return RunResult(step, hours, resumed_from, last, held_out)


def _truncate_log(path: Path, step: int) -> None:
    """Drop the rows of steps after `step` (a run killed between checkpoints logged them; they are redone)."""
    if not path.is_file():
        return
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    kept = [row for row in rows if float(row["step"]) <= step]
    if len(kept) == len(rows):
        return
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(kept)


def _log_row(path: Path, row: dict[str, float]) -> None:
    """Append one row; a new column rewrites the file with the union of columns."""
    rows: list[dict[str, str]] = []
    fields: list[str] = []
    if path.is_file():
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            fields = list(reader.fieldnames or [])
            rows = list(reader)
    new = [k for k in row if k not in fields]
    if new or not path.is_file():
        fields += new
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    with path.open("a", newline="") as f:
        csv.DictWriter(f, fieldnames=fields).writerow({k: row.get(k, "") for k in fields})


def read_log(path: Path) -> dict[str, list[tuple[float, float]]]:
    """Each column of log.csv as (step, value) pairs, empty cells skipped."""
    curves: dict[str, list[tuple[float, float]]] = {}
    if not path.is_file():
        return curves
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key in ("step", "hours") or value in ("", None):
                    continue
                curves.setdefault(key, []).append((float(row["step"]), float(value)))
    return curves


def plot_curves(log: Path, out: Path, title: str) -> None:
    """One panel per logged column (train losses and held-out figures), steps on x."""
    curves = read_log(log)
    if not curves:
        return
    from matplotlib.figure import Figure

    cols = 3
    rows = math.ceil(len(curves) / cols)
    fig = Figure(figsize=(4 * cols, 2.6 * rows), dpi=80)
    for i, (name, points) in enumerate(sorted(curves.items())):
        ax = fig.add_subplot(rows, cols, i + 1)
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, lw=1)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(out, ".png") as tmp:
        fig.savefig(tmp)
