"""TrainingRun on real metric histories: the diagnosis written, the noise kept out,
the curves kept, and exactly one closing line for every ending.

The overfitting history is the recorded scikit-learn MLP run of
``tests/data/mlp_overfit.json`` (how it was recorded: see ``test_detect.py``).
Journals are real JSONL files read back.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_training import Journal, feed, progress_lines, run_of, train_only

from audit_logging.training import TrainingRun

from helpers import REPO, journal_files
from test_detect import MLP_OVERFIT, assert_not_invented

CLOSING = ("TRAINING_COMPLETED", "TRAINING_FAILED", "TRAINING_STOPPED")


@pytest.fixture
def journal(logger: logging.Logger, tmp_path: Path) -> Journal:
    return Journal(logger, tmp_path / "logs")


def issue_lines(journal: Journal) -> list[dict[str, Any]]:
    return [line for line in journal.lines() if line["event"] == "ISSUE_DETECTED"]


def closing_line(journal: Journal) -> dict[str, Any]:
    [line] = [line for line in journal.lines() if line["event"] in CLOSING]
    assert journal.lines()[-1] is not None
    return line


# ---------------------------------------------------------------- the diagnosis


def test_recorded_mlp_run_is_logged_as_overfitting_not_a_plateau(journal: Journal) -> None:
    history = [{k: r[k] for k in ("step", "train_loss", "val_loss")} for r in MLP_OVERFIT]
    with run_of(journal) as run:
        for row in history:
            metrics = dict(row)
            run.progress(metrics.pop("step"), **metrics)
            assert not run.should_stop  # a plateau would stop it; there is none
    [line] = issue_lines(journal)
    snapshot = line["metrics_snapshot"]
    assert snapshot["issue"] == "overfitting"
    assert line["decision"] == "Flagged for review; training continues"
    reasoning, cause = line["reasoning"].split(" Probable cause: ")
    assert cause.startswith("the model fits the training data better while validation gets worse")
    assert "probably" not in line["reasoning"]
    assert_not_invented(snapshot, reasoning + " " + cause, history)
    closing = closing_line(journal)
    assert closing["reasoning"].startswith("Finished normally at step 79")
    assert closing["metrics_snapshot"]["ending"] == "completed"
    assert closing["metrics_snapshot"]["val_loss"] == history[-1]["val_loss"]


def test_stopping_on_overfitting_is_one_early_stop(journal: Journal) -> None:
    with run_of(journal, stop_on=("overfitting",)) as run:
        for row in MLP_OVERFIT:
            metrics = dict(row)
            run.progress(metrics.pop("step"), **metrics)
            if run.should_stop:
                break
    [line] = issue_lines(journal)
    assert line["decision"] == "Early stopping triggered"
    closing = closing_line(journal)
    assert closing["event"] == "TRAINING_COMPLETED"
    assert closing["metrics_snapshot"]["ending"] == "early_stopped"
    assert closing["reasoning"].startswith(
        f"Stopped early on the overfitting detected at step {line['metrics_snapshot']['step']}"
    )
    assert "Finished normally" not in closing["reasoning"]


# ---------------------------------------------------------------- noise


def slowly_improving(steps: int) -> Callable[[TrainingRun], None]:
    def drive(run: TrainingRun) -> None:
        progress = run.progress
        for s in range(steps):
            progress(s, train_loss=1.0 / (1 + s))  # relative gain per step 1/s: slower and slower

    return drive


def test_a_slowly_improving_200k_step_run_writes_at_most_5_issue_lines(journal: Journal) -> None:
    # The plateau rule matches, clears on each small improvement, and matches
    # again exactly patience checks later: one plateau (the old detector wrote
    # 2,949 ISSUE_DETECTED lines for this run).
    with run_of(journal, stop_on=()) as run:
        slowly_improving(200_000)(run)
    issues = issue_lines(journal)
    assert 1 <= len(issues) <= 5
    assert run.issue_counts["plateau"] == len(issues)
    assert closing_line(journal)["metrics_snapshot"]["progress_calls"] == 200_000


def test_an_issue_returning_sooner_than_progress_every_is_counted_not_logged(
    journal: Journal,
) -> None:
    with run_of(journal, progress_every=50, stop_on=()) as run:
        value = 1.0
        for _episode in range(9):
            for _ in range(12):  # more than patience clear checks: the episode ends
                value *= 0.9
                run.progress(train_loss=value)
            for _ in range(10):  # flat for patience checks: a new episode
                run.progress(train_loss=value)
    # Episodes start every 22 calls; a line at most every 50 calls: every third.
    assert run.issue_counts == {"plateau": 9}
    steps = [line["metrics_snapshot"]["step"] for line in issue_lines(journal)]
    assert steps == [21, 87, 153]
    closing = closing_line(journal)["metrics_snapshot"]
    assert closing["issues_detected"] == {"plateau": 9}
    assert closing["issues_logged"] == {"plateau": 3}


# ---------------------------------------------------------------- curves kept


def _history(n: int) -> list[dict[str, Any]]:
    """A training loss every step, an evaluation (val_loss) every 25 steps."""
    rows: list[dict[str, Any]] = []
    for s in range(n):
        row: dict[str, Any] = {"step": s, "train_loss": 2.0 * math.exp(-s / 80) + 0.01 * (s % 7)}
        if s % 25 == 24:
            row["val_loss"] = 2.2 * math.exp(-s / 90)
        rows.append(row)
    return rows


def test_evaluations_are_always_written_and_the_rest_summarised(journal: Journal) -> None:
    history = _history(260)
    with run_of(journal, progress_every=100, progress_seconds=math.inf) as run:
        feed(run, history)
    lines = progress_lines(journal)
    written = [line["metrics_snapshot"]["step"] for line in lines]
    evaluations = [row["step"] for row in history if "val_loss" in row]
    assert set(evaluations) <= set(written)  # every evaluation, whatever progress_every says
    assert written == sorted({0, *evaluations})  # no 100-call line: evaluations come sooner
    # Each line summarises exactly the calls since the previous line.
    by_step = {row["step"]: row for row in history}
    seen = [0]
    for previous, line in itertools.pairwise(lines):
        snap = line["metrics_snapshot"]
        between = [
            by_step[s] for s in range(previous["metrics_snapshot"]["step"] + 1, snap["step"])
        ]
        summary = snap["since_last_line"]
        assert summary["calls"] == len(between)
        assert summary["first_step"] == between[0]["step"]
        assert summary["last_step"] == between[-1]["step"]
        losses = [row["train_loss"] for row in between]
        assert summary["metrics"]["train_loss"] == {
            "count": len(losses),
            "min": min(losses),
            "max": max(losses),
            "mean": pytest.approx(sum(losses) / len(losses), rel=1e-12),
            "last": losses[-1],
        }
        assert "val_loss" not in summary["metrics"]
        seen.extend(s["step"] for s in between)
        seen.append(snap["step"])
    # The calls after the last line are in the closing line: every call is accounted for.
    tail = closing_line(journal)["metrics_snapshot"]["since_last_line"]
    assert tail["first_step"] == lines[-1]["metrics_snapshot"]["step"] + 1
    assert tail["last_step"] == 259
    assert len(seen) + tail["calls"] == len(history)


def test_training_only_lines_carry_the_summary_of_the_calls_between(journal: Journal) -> None:
    history = train_only(_history(35))
    with run_of(journal, progress_every=10, progress_seconds=math.inf) as run:
        feed(run, history)
    line = progress_lines(journal)[1]
    assert line["metrics_snapshot"]["step"] == 10
    summary = line["metrics_snapshot"]["since_last_line"]
    losses = [row["train_loss"] for row in history[1:10]]
    assert summary["calls"] == 9 and summary["first_step"] == 1 and summary["last_step"] == 9
    assert summary["metrics"]["train_loss"]["min"] == min(losses)
    assert summary["metrics"]["train_loss"]["max"] == max(losses)
    assert summary["metrics"]["train_loss"]["last"] == losses[-1]


def test_metrics_marked_as_validation_are_always_written(journal: Journal) -> None:
    with run_of(journal, validation_metrics=["eval_loss"], progress_seconds=math.inf) as run:
        for s in range(30):
            metrics: dict[str, Any] = {"loss": 1.0 / (s + 1)}
            if s % 10 == 9:
                metrics["eval_loss"] = 1.1 / (s + 1)
            run.progress(s, **metrics)
    steps = [line["metrics_snapshot"]["step"] for line in progress_lines(journal)]
    assert steps == [0, 9, 19, 29]


# ---------------------------------------------------------------- endings


class Boom(Exception):
    pass


def _completed(run: TrainingRun) -> None:
    feed(run, train_only(_history(5)))


def _failed(run: TrainingRun) -> None:
    _completed(run)
    raise Boom("loss is nan")


def _ctrl_c(run: TrainingRun) -> None:
    _completed(run)
    raise KeyboardInterrupt


def _exit(run: TrainingRun) -> None:
    _completed(run)
    raise SystemExit(3)


def _stop(run: TrainingRun) -> None:
    _completed(run)
    run.stop("budget reached")
    run.stop("asked twice")


def _stop_then_fail(run: TrainingRun) -> None:
    _stop(run)
    raise Boom("after the stop")


def _should_stop_acted_on(run: TrainingRun) -> None:
    for s in range(100):
        run.progress(s, val_loss=0.5)
        if run.should_stop:
            break


def _should_stop_ignored(run: TrainingRun) -> None:
    for s in range(20):
        run.progress(s, val_loss=0.5)  # should_stop is set at step 10 and not looked at


@pytest.mark.parametrize(
    ("body", "event", "ending", "reason", "warning"),
    [
        (_completed, "TRAINING_COMPLETED", "completed", "Finished normally at step 4", None),
        (
            _failed,
            "TRAINING_FAILED",
            "failed",
            "Boom: loss is nan raised at step 4",
            "training_failed",
        ),
        (
            _ctrl_c,
            "TRAINING_STOPPED",
            "interrupted",
            "Interrupted by the user",
            "training_interrupted",
        ),
        (_exit, "TRAINING_STOPPED", "exited", "SystemExit: 3", None),
        (_stop, "TRAINING_STOPPED", "stopped", "budget reached", None),
        (_stop_then_fail, "TRAINING_STOPPED", "stopped", "budget reached", "training_failed"),
        (
            _should_stop_acted_on,
            "TRAINING_COMPLETED",
            "early_stopped",
            "Stopped early on the plateau detected at step 10",
            None,
        ),
        (
            _should_stop_ignored,
            "TRAINING_COMPLETED",
            "completed",
            "Finished at step 19 after 20 progress calls",
            None,
        ),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else None,
)
def test_every_ending_writes_exactly_one_closing_line(
    journal: Journal,
    body: Callable[[TrainingRun], None],
    event: str,
    ending: str,
    reason: str,
    warning: str | None,
) -> None:
    try:
        with run_of(journal) as run:
            body(run)
    except (Boom, KeyboardInterrupt, SystemExit):
        pass
    closing = [line for line in journal.lines() if line["event"] in CLOSING]
    assert len(closing) == 1, [line["event"] for line in closing]
    [line] = closing
    assert line["event"] == event
    assert line["metrics_snapshot"]["ending"] == ending == run.ending
    assert reason in line["reasoning"]
    assert line is not None and journal.lines()[-1]["event"] in CLOSING
    assert line["metrics_snapshot"]["step"] == run.last_step
    for name, value in run.last_metrics.items():
        assert line["metrics_snapshot"][name] == value
    warnings = [r.__dict__["warning_type"] for r in journal.captured.warnings()]
    assert warnings == ([warning] if warning else [])
    if body is _should_stop_ignored:
        assert "not acted on: 9 progress calls followed it" in line["reasoning"]


_SIGTERM_SCRIPT = """
import logging, sys
import audit_logging
from audit_logging import TrainingRun
audit_logging.configure(formats="jsonl,warnings")
audit_logging.install_hooks()
with TrainingRun(dataset="d.csv", model="m", git=None) as run:
    step = 0
    while True:
        run.progress(step, train_loss=1.0 / (step + 1), val_loss=1.2 / (step + 1))
        if step == 3:
            print("ready", flush=True)
        step += 1
"""


def test_sigterm_with_install_hooks_writes_one_closing_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.Popen(
        [sys.executable, "-c", _SIGTERM_SCRIPT],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM, err
    [journal] = journal_files(tmp_path / "logs")
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    closing = [line for line in lines if line["event"] in CLOSING]
    assert [line["event"] for line in closing] == ["TRAINING_STOPPED"]
    [line] = closing
    assert line is lines[-1]
    snap = line["metrics_snapshot"]
    assert snap["ending"] == "terminated"
    assert line["reasoning"].startswith(f"Terminated by SIGTERM at step {snap['step']}")
    last_progress = [p for p in lines if p["event"] == "TRAINING_PROGRESS"][-1]["metrics_snapshot"]
    assert snap["step"] >= last_progress["step"] >= 3
    assert snap["train_loss"] == 1.0 / (snap["step"] + 1)
    warnings = [
        json.loads(p.read_text()) for p in (tmp_path / "training_logs" / "warnings").glob("*.json")
    ]
    assert [w["type"] for w in warnings] == ["training_interrupted"]


def test_the_summary_counts_only_finite_numbers_and_keeps_every_name() -> None:
    from audit_logging.training_summary import Summary

    summary = Summary()
    calls: list[dict[str, Any]] = [
        {"loss": 1.0, "lr": 0.1},
        {"loss": math.nan, "grad_norm": 3},
        {"loss": 0.5, "lr": 0.05, "note": "warm"},
        {"loss": 2.0, "lr": "n/a"},
    ]
    for step, metrics in enumerate(calls, start=7):
        summary.add(step, metrics)
    taken = summary.take()
    assert taken is not None
    assert (taken["calls"], taken["first_step"], taken["last_step"]) == (4, 7, 10)
    metrics = taken["metrics"]
    assert metrics["loss"] == {"count": 3, "min": 0.5, "max": 2.0, "mean": 3.5 / 3, "last": 2.0}
    assert metrics["lr"] == {
        "count": 2,
        "min": 0.05,
        "max": 0.1,
        "mean": pytest.approx(0.075),
        "last": "n/a",
    }
    assert metrics["grad_norm"] == {"count": 1, "min": 3, "max": 3, "mean": 3.0, "last": 3}
    assert metrics["note"] == {"count": 0, "min": None, "max": None, "mean": None, "last": "warm"}
    assert summary.take() is None
