"""``audit-logging sql``: DuckDB views over real runs written by the library."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

import audit_logging
from audit_logging import context, sql
from audit_logging.cli import main

from helpers import REPO

pytest.importorskip("duckdb")

DAY = 86_400.0
# The start of each run, in days before now: weeks apart, so that weekly counts differ.
RUNS = {
    "churn-rf-1": ("RandomForest", 35.0, "healthy"),
    "churn-mlp-1": ("MLP", 28.0, "overfitting"),
    "churn-mlp-2": ("MLP", 21.0, "failed"),
    "churn-mlp-3": ("MLP", 6.0, "healthy"),
    "fraud-gbm-1": ("GBM", 5.0, "overfitting"),
}


class _Shift(logging.Filter):
    """Dates a record ``days`` earlier, as if the run had happened then."""

    def __init__(self, days: float) -> None:
        super().__init__()
        self.seconds = days * DAY

    def filter(self, record: logging.LogRecord) -> bool:
        record.created -= self.seconds
        return True


def _rows(kind: str, n: int = 120, turn: int = 60) -> list[dict[str, float]]:
    rows = []
    for s in range(n):
        base = 2.0 * math.exp(-s / 100)
        acc = 0.5 + 0.45 * (1 - math.exp(-s / 60))
        rows.append(
            {
                "train_loss": base,
                "val_loss": base * 1.1,
                "train_accuracy": acc,
                "val_accuracy": acc - 0.03,
            }
        )
    if kind == "overfitting":
        for s, row in enumerate(rows[turn:], start=turn):
            row["val_loss"] = rows[turn]["val_loss"] + 0.01 * (s - turn)
    return rows


def write_runs(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Five real runs, one folder each, as ``configure()`` lays them out (every output)."""
    for name, (model, days_ago, kind) in RUNS.items():
        monkeypatch.setenv("AUDIT_SESSION_ID", f"{name}-{uuid.uuid4().hex[:6]}")
        log = logging.getLogger(f"sqltest.{uuid.uuid4().hex[:8]}")
        log.propagate = False
        log.addFilter(_Shift(days_ago))
        handler = audit_logging.configure(root / name, "jsonl,json,csv,warnings", logger=log)
        assert handler is not None
        dataset = "fraud.parquet" if name.startswith("fraud") else "churn.csv"
        log.warning(
            "Working tree has uncommitted changes",
            extra={"warning_type": "dirty_git", "git_commit": "3f2a9c1", "fingerprint": name},
        )
        log.info(
            "lr",
            extra={"action_type": "hp_change", "details": {"param": "lr", "old": 0.1, "new": 0.05}},
        )
        try:
            with audit_logging.TrainingRun(log, dataset=dataset, model=model) as run:
                run.hyperparameters({"lr": 0.05, "batch_size": 64})
                for step, metrics in enumerate(_rows(kind)):
                    run.progress(step, **metrics)
                    if kind == "failed" and step == 80:
                        log.info(
                            "batch",
                            extra={
                                "action_type": "hp_change",
                                "details": {"param": "batch_size", "old": 64, "new": 512},
                            },
                        )
                        raise MemoryError("CUDA out of memory at batch_size 512")
                run.evaluated(metrics={"val_accuracy": metrics["val_accuracy"]})
        except MemoryError:
            pass
        handler.close()
        log.removeHandler(handler)


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in context.WATCHED:
        monkeypatch.delenv(name, raising=False)
    root = tmp_path / "runs"
    write_runs(root, monkeypatch)
    monkeypatch.delenv("AUDIT_SESSION_ID")
    return root


def _query(place: Path, query: str, fmt: str = "json") -> Any:
    out = io.StringIO()
    sql.run_query(place, query, fmt, out)
    return json.loads(out.getvalue()) if fmt == "json" else out.getvalue()


# The README's three questions, asked of real runs.
OVERFITTING = """
SELECT model, session_id, folder, min(timestamp) AS first_seen, count(*) AS lines
FROM journal
WHERE event = 'ISSUE_DETECTED' AND (metrics_snapshot->>'$.issue') = 'overfitting'
  AND timestamp >= now() - INTERVAL 30 DAY
GROUP BY ALL ORDER BY first_seen
"""
HP_BEFORE_FAILURE = """
SELECT f.folder, a.timestamp, a.details->>'$.param' AS param,
       a.details->'$.old' AS old, a.details->'$.new' AS new, f.reasoning AS failure
FROM actions a JOIN journal f ON a.folder = f.folder
WHERE f.event = 'TRAINING_FAILED' AND a.action_type = 'hp_change' AND a.timestamp < f.timestamp
ORDER BY a.timestamp
"""
DIRTY_GIT_PER_WEEK = """
SELECT date_trunc('week', timestamp)::DATE AS week, count(*) AS warnings, count(DISTINCT folder) AS runs
FROM warnings WHERE type = 'dirty_git' GROUP BY 1 ORDER BY 1
"""


def test_the_runs_of_a_model_with_an_overfitting_issue(runs: Path) -> None:
    rows = _query(runs, OVERFITTING)
    # churn-mlp-1 overfit 28 days ago, fraud-gbm-1 5 days ago; the others never did.
    assert [(r["folder"], r["model"]) for r in rows] == [
        ("churn-mlp-1", "MLP"),
        ("fraud-gbm-1", "GBM"),
    ]
    assert rows[0]["session_id"].startswith("churn-mlp-1-")
    assert rows[0]["first_seen"].endswith("Z") and rows[0]["lines"] >= 1


def test_the_hyperparameter_changes_before_a_failed_run(runs: Path) -> None:
    rows = _query(runs, HP_BEFORE_FAILURE)
    assert [(r["folder"], r["param"], r["old"], r["new"]) for r in rows] == [
        ("churn-mlp-2", "lr", 0.1, 0.05),
        ("churn-mlp-2", "batch_size", 64, 512),  # numbers stay numbers
    ]
    assert "MemoryError: CUDA out of memory" in rows[0]["failure"]


def test_dirty_git_warnings_per_week(runs: Path) -> None:
    rows = _query(runs, DIRTY_GIT_PER_WEEK)
    assert sum(r["warnings"] for r in rows) == 5
    assert sum(r["runs"] for r in rows) == 5
    # 35, 28 and 21 days ago are three different weeks; 6 and 5 days ago at most two.
    assert 4 <= len(rows) <= 5


def test_an_action_in_both_the_array_and_the_csv_is_one_row(runs: Path) -> None:
    (row,) = _query(
        runs,
        "SELECT count(*) AS n, count(DISTINCT source) AS sources, sum((source = 'csv')::INT) AS csv "
        "FROM actions",
    )
    # 5 runs x 1 lr change + 1 batch_size change, each written to audit_log.json and .csv.
    assert (row["n"], row["sources"], row["csv"]) == (6, 1, 0)
    # Without its array, a folder's CSV rows are read (formula guard undone).
    (runs / "churn-rf-1" / "audit_log.json").unlink()
    rows = _query(runs, "SELECT source, details, status FROM actions WHERE folder = 'churn-rf-1'")
    assert rows == [
        {"source": "csv", "details": {"param": "lr", "old": 0.1, "new": 0.05}, "status": "success"}
    ]


def test_files_with_other_members_and_types_never_break_a_query(tmp_path: Path) -> None:
    logs = tmp_path / "old" / "logs"
    logs.mkdir(parents=True)
    lines = [
        # Written before rank and schema_version existed; a metric of another shape.
        {
            "timestamp": "2026-01-05T10:00:00.000000Z",
            "event": "TRAINING_PROGRESS",
            "dataset": 7,
            "metrics_snapshot": {"loss": 0.5},
            "pid": "not a pid",
            "seq": 1,
        },
        {
            "timestamp": "not a time",
            "event": "MODEL_EVALUATED",
            "metrics_snapshot": {"acc": [0.9, 0.8]},
            "pid": 12,
            "rank": 1,
            "world_size": 2,
            "schema_version": 1,
            "unknown": True,
        },
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\n{torn line\n"
    (logs / "ml-platform-2026-01-05.jsonl").write_text(text)
    rows = _query(
        tmp_path,
        "SELECT event, dataset, pid, rank, world_size, schema_version, timestamp, folder, "
        "metrics_snapshot->'$.loss' AS loss FROM journal ORDER BY event",
    )
    assert rows == [
        {"event": "MODEL_EVALUATED", "dataset": None, "pid": 12, "rank": 1, "world_size": 2,
         "schema_version": 1, "timestamp": None, "folder": "old", "loss": None},
        {"event": "TRAINING_PROGRESS", "dataset": "7", "pid": None, "rank": None, "world_size": None,
         "schema_version": None, "timestamp": "2026-01-05T10:00:00.000000Z", "folder": "old", "loss": 0.5},
    ]  # fmt: skip


def test_the_columns_are_the_schemas_members(tmp_path: Path) -> None:
    con = sql.connect(tmp_path)  # an empty folder: the views exist, with no rows
    for view, kind in (("journal", "journal"), ("actions", "action"), ("warnings", "warning")):
        described = con.execute(f"DESCRIBE {view}").fetchall()
        names = [r[0] for r in described]
        expected = [n for n, _ in sql.columns(kind)] + ["file", "folder"]
        assert names == expected + (["source"] if view == "actions" else [])
        assert con.execute(f"SELECT count(*) FROM {view}").fetchone() == (0,)
    types = dict((r[0], r[1]) for r in con.execute("DESCRIBE journal").fetchall())
    assert (types["timestamp"], types["metrics_snapshot"], types["rank"], types["event"]) == (
        "TIMESTAMP", "JSON", "BIGINT", "VARCHAR",
    )  # fmt: skip


def test_bucket_layout_lines_are_read(tmp_path: Path) -> None:
    day = tmp_path / "bucket" / "actions" / "dt=2026-03-01"
    day.mkdir(parents=True)
    entry = {"timestamp": "2026-03-01T09:00:00.000000Z", "action_type": "pause", "status": "success",
             "details": {}, "error": None, "actor": "alice@example.com"}  # fmt: skip
    (day / "gpu-1-r0-abc-1.jsonl").write_text(json.dumps(entry) + "\n")
    warn = tmp_path / "bucket" / "warnings" / "dt=2026-03-01"
    warn.mkdir(parents=True)
    (warn / "gpu-1-r0-abc-1.jsonl").write_text(
        json.dumps({"type": "dirty_git", "severity": "WARNING"}) + "\n"
    )
    rows = _query(tmp_path, "SELECT actor, source, folder FROM actions")
    assert rows == [{"actor": "alice@example.com", "source": "jsonl", "folder": "bucket"}]
    assert _query(tmp_path, "SELECT type FROM warnings") == [{"type": "dirty_git"}]
    assert _query(tmp_path, "SELECT count(*) AS n FROM journal") == [{"n": 0}]


def test_the_command_prints_table_csv_and_json(
    runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    query = "SELECT folder, count(*) AS n FROM journal WHERE event = 'TRAINING_STARTED' GROUP BY 1 ORDER BY 1"
    assert main(["sql", str(runs), query, "--format", "csv"]) == 0
    table = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert table == [["folder", "n"], *([name, "1"] for name in sorted(RUNS))]
    assert main(["sql", str(runs), query]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["folder", "n"] and lines[2].split() == ["churn-mlp-1", "1"]
    assert main(["sql", str(runs), query, "--format", "jsonl"]) == 0
    assert [json.loads(line)["n"] for line in capsys.readouterr().out.splitlines()] == [1] * 5


def test_errors_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", str(tmp_path), "SELECT nope FROM journal"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("audit-logging: sql: Binder Error") and err.count("\n") == 1
    assert main(["sql", str(tmp_path / "missing"), "SELECT 1"]) == 2
    err = capsys.readouterr().err
    assert "No such file or directory" in err and str(tmp_path / "missing") in err


def test_without_duckdb_the_command_names_the_extra(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['duckdb'] = None\n"
        "from audit_logging.cli import main\n"
        f"sys.exit(main(['sql', {str(tmp_path)!r}, 'SELECT 1']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=REPO
    )
    assert done.returncode == 2
    assert 'pip install "audit-logging[sql]"' in done.stderr
