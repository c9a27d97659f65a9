"""The training loop on a small real job: resume equals an unbroken run, atomic checkpoints, logs, signals, errors."""

from __future__ import annotations

import csv
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from engine.train.loop import (
    CHECKPOINT,
    CURVES,
    LOG,
    CheckpointError,
    RunConfig,
    load_checkpoint,
    read_log,
    run,
    save_checkpoint,
)

KIND = "linear"


class LinearJob:
    """Linear regression, Adam, a numpy Generator data stream, and noise from all three global RNGs."""

    def __init__(self, seed: int = 0, sleep: float = 0.0, on_step: Any = None) -> None:
        g = torch.Generator().manual_seed(1234)
        self.model = torch.nn.Linear(3, 1)
        with torch.no_grad():
            self.model.weight.copy_(torch.randn(1, 3, generator=g))
            self.model.bias.zero_()
        self.optim = torch.optim.Adam(self.model.parameters(), lr=0.05)
        self.rng = np.random.default_rng(seed)
        self.true_w = np.array([[1.5], [-2.0], [0.5]])
        held = np.random.default_rng(99)
        self.hx = held.normal(size=(64, 3))
        self.hy = self.hx @ self.true_w
        self.sleep = sleep
        self.on_step = on_step
        self.steps: list[int] = []
        self.evaluations = 0
        self.snapshots: list[tuple[int, float]] = []

    def step(self, step: int) -> dict[str, float]:
        self.steps.append(step)
        if self.on_step is not None:
            self.on_step(step)
        if self.sleep:
            time.sleep(self.sleep)
        x = self.rng.normal(size=(16, 3))
        y = x @ self.true_w + 0.05 * np.random.normal(size=(16, 1)) + 0.01 * random.random()
        xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y).float()
        yt = yt + 0.01 * torch.randn(16, 1)
        loss = torch.nn.functional.mse_loss(self.model(xt), yt)
        self.optim.zero_grad()
        loss.backward()
        self.optim.step()
        return {"loss": float(loss.detach()), "w0": float(self.model.weight[0, 0].detach())}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.evaluations += 1
        pred = self.model(torch.from_numpy(self.hx).float())
        return {"holdout_mse": float(torch.nn.functional.mse_loss(pred, torch.from_numpy(self.hy).float()))}

    def state_dict(self) -> dict[str, Any]:
        data = self.rng.bit_generator.state
        return {"model": self.model.state_dict(), "optim": self.optim.state_dict(), "data": data}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optim.load_state_dict(state["optim"])
        self.rng.bit_generator.state = state["data"]

    def snapshot(self, step: int, hours: float) -> None:
        self.snapshots.append((step, hours))


def _config(run_dir: Path, **kwargs: Any) -> RunConfig:
    defaults: dict[str, Any] = {"log_every": 1, "eval_every": 3, "progress": False}
    return RunConfig(run_dir=run_dir, **{**defaults, **kwargs})


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / LOG).open(newline="") as f:
        return list(csv.DictReader(f))


def _without_hours(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k != "hours"} for row in rows]


def _weights(job: LinearJob) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in job.model.state_dict().items()}


# --- resume -------------------------------------------------------------------------------------------------------


def test_stopping_and_resuming_gives_the_same_weights(tmp_path: Path) -> None:
    whole = LinearJob()
    result = run(whole, KIND, _config(tmp_path / "whole", max_steps=6), seed=5)
    assert (result.step, result.resumed_from) == (6, 0)

    first = LinearJob()
    r1 = run(first, KIND, _config(tmp_path / "split", max_steps=3), seed=5)
    assert (r1.step, r1.resumed_from) == (3, 0)
    second = LinearJob()  # a fresh process: new objects, state from the checkpoint only
    r2 = run(second, KIND, _config(tmp_path / "split", max_steps=6), seed=5)
    assert (r2.step, r2.resumed_from) == (6, 3)
    assert second.steps == [3, 4, 5]  # the step counter carries on

    for name, tensor in _weights(whole).items():
        assert torch.equal(tensor, second.model.state_dict()[name]), name
    assert r2.last == result.last and r2.held_out == result.held_out
    assert r2.hours >= r1.hours > 0
    whole_rows, split_rows = _rows(tmp_path / "whole"), _rows(tmp_path / "split")
    assert len(whole_rows) == len(split_rows) == 6 + 2  # 6 loss rows, evaluations at steps 3 and 6
    assert _without_hours(whole_rows) == _without_hours(split_rows)


def test_the_seed_matters(tmp_path: Path) -> None:
    """The global RNGs feed the job, so the equality above is not trivially true: another seed, other weights."""
    a, b = LinearJob(), LinearJob()
    run(a, KIND, _config(tmp_path / "a", max_steps=4), seed=5)
    run(b, KIND, _config(tmp_path / "b", max_steps=4), seed=6)
    assert not torch.equal(a.model.weight, b.model.weight)


def test_a_finished_run_does_nothing_more(tmp_path: Path) -> None:
    job = LinearJob()
    done = run(job, KIND, _config(tmp_path, max_steps=4), seed=0)
    stamp = (tmp_path / CHECKPOINT).stat().st_mtime_ns
    again = LinearJob()
    result = run(again, KIND, _config(tmp_path, max_steps=4), seed=0)
    assert (result.step, result.resumed_from, result.last) == (4, 4, {})
    assert result.held_out == done.held_out  # from the checkpoint
    assert again.steps == [] and again.evaluations == 0 and again.snapshots == []
    assert (tmp_path / CHECKPOINT).stat().st_mtime_ns == stamp
    for name, tensor in _weights(job).items():
        assert torch.equal(tensor, again.model.state_dict()[name])  # loaded


def test_a_hard_kill_between_checkpoints_does_not_duplicate_log_rows(tmp_path: Path) -> None:
    run(LinearJob(), KIND, _config(tmp_path, max_steps=3, eval_every=100), seed=0)
    at_three = (tmp_path / CHECKPOINT).read_bytes()
    run(LinearJob(), KIND, _config(tmp_path, max_steps=5, eval_every=100), seed=0)  # logs steps 4 and 5 ...
    (tmp_path / CHECKPOINT).write_bytes(at_three)  # ... but is killed (SIGKILL) before their checkpoint lands
    run(LinearJob(), KIND, _config(tmp_path, max_steps=5, eval_every=100), seed=0)
    steps = [r["step"] for r in _rows(tmp_path) if r["loss"]]
    assert steps == ["1", "2", "3", "4", "5"]


# --- files --------------------------------------------------------------------------------------------------------


def test_checkpoint_log_and_curves(tmp_path: Path) -> None:
    job = LinearJob()
    result = run(job, KIND, _config(tmp_path, max_steps=5), seed=0, meta={"codec": "abc"})
    assert {p.name for p in tmp_path.iterdir()} == {CHECKPOINT, LOG, CURVES}  # no temp files left
    assert (tmp_path / CURVES).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    payload = load_checkpoint(tmp_path / CHECKPOINT, KIND)
    assert payload["kind"] == KIND and payload["step"] == 5 and payload["meta"] == {"codec": "abc"}
    assert payload["hours"] == pytest.approx(result.hours)
    assert payload["held_out"] == result.held_out == {"holdout_mse": pytest.approx(result.held_out["holdout_mse"])}
    assert job.evaluations == 2  # at step 3 (eval_every) and at the end (step 5)
    assert job.snapshots == [(5, payload["hours"])]  # after the checkpoint

    rows = _rows(tmp_path)
    assert list(rows[0]) == ["step", "hours", "loss", "w0", "holdout_mse"]  # a new column rewrote the header
    assert [r["step"] for r in rows] == ["1", "2", "3", "3", "4", "5", "5"]
    assert rows[0]["holdout_mse"] == "" and rows[3]["loss"] == "" and rows[3]["holdout_mse"] != ""
    curves = read_log(tmp_path / LOG)
    assert set(curves) == {"loss", "w0", "holdout_mse"}
    assert [s for s, _ in curves["loss"]] == [1, 2, 3, 4, 5]
    assert [s for s, _ in curves["holdout_mse"]] == [3, 5]
    assert curves["holdout_mse"][-1][1] == pytest.approx(result.held_out["holdout_mse"], rel=1e-6)
    assert curves["loss"][-1][1] == pytest.approx(result.last["loss"], rel=1e-6)


def test_the_job_learns_under_the_loop(tmp_path: Path) -> None:
    job = LinearJob()
    first = job.evaluate()["holdout_mse"]
    result = run(job, KIND, _config(tmp_path, max_steps=60, log_every=10, eval_every=1000), seed=0)
    assert result.held_out["holdout_mse"] < 0.1 * first
    assert len(_rows(tmp_path)) == 6 + 1


def test_checkpoints_on_the_clock(tmp_path: Path) -> None:
    """A tiny checkpoint interval checkpoints (and snapshots) after every step, and leaves no temp file."""
    job = LinearJob()
    run(job, KIND, _config(tmp_path, max_steps=4, checkpoint_minutes=1e-9), seed=0)
    assert [s for s, _ in job.snapshots] == [1, 2, 3, 4, 4]  # each step, then the final checkpoint
    assert {p.name for p in tmp_path.iterdir()} == {CHECKPOINT, LOG, CURVES}


def test_save_checkpoint_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    path = tmp_path / CHECKPOINT
    save_checkpoint(path, {"kind": KIND, "step": 1})
    with pytest.raises(Exception):  # noqa: B017 - whatever pickle raises for a lambda
        save_checkpoint(path, {"kind": KIND, "step": 2, "bad": lambda: 0})
    assert load_checkpoint(path, KIND)["step"] == 1


# --- budgets and signals ------------------------------------------------------------------------------------------


def test_the_minutes_budget_stops_the_run(tmp_path: Path) -> None:
    job = LinearJob(sleep=0.02)
    t0 = time.monotonic()
    result = run(job, KIND, _config(tmp_path, minutes=0.3 / 60, eval_every=1000), seed=0)
    elapsed = time.monotonic() - t0
    assert 2 <= result.step <= 20 and 0.3 <= elapsed < 5
    assert load_checkpoint(tmp_path / CHECKPOINT, KIND)["step"] == result.step


@pytest.mark.parametrize("clock", ["wall", "process"])
def test_hours_count_compute_not_waiting(tmp_path: Path, clock: str) -> None:
    # A step that sleeps stands in for a run paused by SIGSTOP: CPU time does not count the pause; wall time does.
    job = LinearJob(sleep=0.05)
    result = run(job, KIND, _config(tmp_path, max_steps=6, eval_every=1000, clock=clock), seed=0)
    slept_hours = result.step * 0.05 / 3600
    if clock == "wall":
        assert result.hours >= slept_hours
    else:
        assert 0 < result.hours < slept_hours / 2


def test_an_unknown_clock_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="clock"):
        RunConfig(run_dir=tmp_path, max_steps=1, clock="sundial")


def test_sigterm_checkpoints_and_returns(tmp_path: Path) -> None:
    caught: list[int] = []

    def ours(signum: int, frame: object) -> None:  # stands in if run() did not install its own
        caught.append(signum)

    def stop(step: int) -> None:
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, ours)
    try:
        job = LinearJob(on_step=stop)
        result = run(job, KIND, _config(tmp_path, max_steps=50), seed=0)
        assert signal.getsignal(signal.SIGTERM) is ours  # restored after the run
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert caught == []  # run() handled it
    assert result.step == 3  # the step in progress finished, then the loop stopped
    assert load_checkpoint(tmp_path / CHECKPOINT, KIND)["step"] == 3
    rest = LinearJob()
    assert run(rest, KIND, _config(tmp_path, max_steps=5), seed=0).resumed_from == 3
    assert rest.steps == [3, 4]


# --- errors -------------------------------------------------------------------------------------------------------


def test_a_checkpoint_of_another_kind_is_refused(tmp_path: Path) -> None:
    run(LinearJob(), "codec", _config(tmp_path, max_steps=1), seed=0)
    with pytest.raises(CheckpointError, match=str(tmp_path / CHECKPOINT)) as info:
        run(LinearJob(), "lm", _config(tmp_path, max_steps=2), seed=0)
    assert "'codec'" in str(info.value) and "'lm'" in str(info.value)


def test_a_checkpoint_that_is_not_a_dict_is_refused(tmp_path: Path) -> None:
    torch.save([1, 2, 3], tmp_path / CHECKPOINT)
    with pytest.raises(CheckpointError, match="list"):
        load_checkpoint(tmp_path / CHECKPOINT, KIND)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_damaged_checkpoint_is_refused(tmp_path: Path, damage: str) -> None:
    run(LinearJob(), KIND, _config(tmp_path, max_steps=2), seed=0)
    path = tmp_path / CHECKPOINT
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": os.urandom(2000), "empty": b""}[damage])
    with pytest.raises(CheckpointError, match=str(path)):
        run(LinearJob(), KIND, _config(tmp_path, max_steps=4), seed=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "budget"),
        ({"minutes": 0}, "minutes"),
        ({"minutes": -1.0}, "minutes"),
        ({"max_steps": 0}, "max_steps"),
        ({"max_steps": 5, "checkpoint_minutes": 0}, "checkpoint_minutes"),
        ({"max_steps": 5, "checkpoint_minutes": 10.5}, "checkpoint_minutes"),
    ],
)
def test_run_config_validation(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RunConfig(run_dir=tmp_path, **kwargs)


def test_run_config_accepts_either_budget(tmp_path: Path) -> None:
    assert RunConfig(run_dir=tmp_path, minutes=1.0).max_steps is None
    assert RunConfig(run_dir=tmp_path, max_steps=1, checkpoint_minutes=10).minutes is None
