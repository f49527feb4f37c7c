"""TrainingRun in a distributed job: run-level lines from rank 0, per-rank lines where they happen."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest

import audit_logging
from audit_logging import context

from helpers import journal_files, read_jsonl


@pytest.fixture(autouse=True)
def _no_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in context.WATCHED:
        monkeypatch.delenv(name, raising=False)
    context.clear_rank()


def _train(
    root: Path, fail: bool = False
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """A short run of every kind of line; the journal lines and the warning bodies written."""
    log = logging.getLogger(f"ranks.{root.name}")
    log.propagate = False
    handler = audit_logging.configure(root, "jsonl,warnings", logger=log)
    assert handler is not None
    try:
        with audit_logging.TrainingRun(log, dataset="d.csv", model="m", git=None) as run:
            run.hyperparameters({"lr": 0.1})
            run.progress(0, train_loss=1.0, val_loss=1.1)
            run.progress(1, train_loss=math.nan, val_loss=1.2)  # a NaN seen on this rank
            if fail:
                raise RuntimeError("boom on this rank")
            run.evaluated(metrics={"val_accuracy": 0.8})
    except RuntimeError:
        pass
    finally:
        handler.close()
        log.removeHandler(handler)
    lines = [line for path in journal_files(root / "logs") for line in read_jsonl(path)]
    warnings = [
        json.loads(p.read_text())
        for p in sorted((root / "training_logs" / "warnings").glob("*.json"))
    ]
    return lines, warnings


def _events(lines: list[dict[str, object]]) -> list[object]:
    return [line["event"] for line in lines]


@pytest.mark.parametrize("env", [{}, {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2"}])
def test_rank_zero_and_a_single_process_write_the_whole_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    lines, _ = _train(tmp_path / "run")
    assert _events(lines) == [
        "TRAINING_STARTED", "HYPERPARAMETERS_SET", "TRAINING_PROGRESS", "TRAINING_PROGRESS",
        "ISSUE_DETECTED", "MODEL_EVALUATED", "TRAINING_COMPLETED",
    ]  # fmt: skip


def test_another_rank_writes_only_what_happened_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    lines, warnings = _train(tmp_path / "ok")
    # Its NaN is its own; the run's start, progress, evaluation and end are rank 0's.
    assert _events(lines) == ["ISSUE_DETECTED"]
    assert lines[0]["metrics_snapshot"]["issue"] == "divergence"  # type: ignore[index]
    assert warnings == []

    lines, warnings = _train(tmp_path / "failed", fail=True)
    assert _events(lines) == ["ISSUE_DETECTED", "TRAINING_FAILED"]
    assert "RuntimeError: boom on this rank" in str(lines[1]["exception"])
    assert [w["type"] for w in warnings] == ["training_failed"]


def test_the_rank_a_callback_sets_decides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Lightning on node 1: no RANK in the environment until the callback says it.
    for name, value in {"LOCAL_RANK": "0", "WORLD_SIZE": "4", "NODE_RANK": "1"}.items():
        monkeypatch.setenv(name, value)
    lines, _ = _train(tmp_path / "unknown")  # rank 0 is on node 0: not this one
    assert _events(lines) == ["ISSUE_DETECTED"]
    context.set_rank(2)
    try:
        lines, _ = _train(tmp_path / "node1")
    finally:
        context.clear_rank()
    assert _events(lines) == ["ISSUE_DETECTED"]
    context.set_rank(0, 0, 4)  # what a framework knows wins over the environment
    try:
        lines, _ = _train(tmp_path / "told-zero")
    finally:
        context.clear_rank()
    assert _events(lines)[0] == "TRAINING_STARTED"
