"""TrainingRun: every event it writes, read back from a real JSONL journal.

Records are also captured by a small list handler, to see the warning
records (``warning_type``) that a WarningFileHandler turns into files.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import statistics
import subprocess
import timeit
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from audit_logging import JsonlHandler
from audit_logging.detect import IssueDetector
from audit_logging.training import TrainingRun, run_demo_training, scan_csv

from helpers import UnprintableError, journal_files, read_jsonl
from test_detect import assert_not_invented, healthy, noisy_healthy, overfitting, plateau


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def warnings(self) -> list[logging.LogRecord]:
        return [r for r in self.records if "warning_type" in r.__dict__]


class Journal:
    """A logger writing a real journal under ``directory`` and keeping every record."""

    def __init__(self, logger: logging.Logger, directory: Path) -> None:
        self.logger = logger
        self.directory = directory
        self.captured = ListHandler()
        logger.addHandler(JsonlHandler(directory=directory))
        logger.addHandler(self.captured)

    def lines(self) -> list[dict[str, Any]]:
        files = journal_files(self.directory)
        return [line for path in files for line in read_jsonl(path)]

    def events(self) -> list[str]:
        return [line["event"] for line in self.lines()]

    def only(self, event: str) -> dict[str, Any]:
        [line] = [line for line in self.lines() if line["event"] == event]
        return line


@pytest.fixture
def journal(logger: logging.Logger, tmp_path: Path) -> Journal:
    return Journal(logger, tmp_path / "logs")


def run_of(journal: Journal, **kwargs: Any) -> TrainingRun:
    kwargs.setdefault("git", None)
    return TrainingRun(journal.logger, dataset="churn.csv", model="RandomForest", **kwargs)


def feed(run: TrainingRun, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        metrics = dict(row)
        run.progress(metrics.pop("step", None), **metrics)


# ---------------------------------------------------------------- lifecycle


def test_started_and_completed_with_context_last_metrics_and_duration(journal: Journal) -> None:
    with run_of(journal) as run:
        feed(run, healthy(30))
    lines = journal.lines()
    assert lines[0]["event"] == "TRAINING_STARTED"
    assert lines[-1]["event"] == "TRAINING_COMPLETED"
    started = lines[0]
    assert started["dataset"] == "churn.csv" and started["model"] == "RandomForest"
    snap = started["metrics_snapshot"]
    assert snap["session_id"] == started["session_id"]
    assert snap["host"] == started["host"]
    assert snap["pid"] == started["pid"]
    assert "Session" in started["reasoning"]
    completed = lines[-1]["metrics_snapshot"]
    last = healthy(30)[-1]
    assert completed["step"] == 29
    assert completed["train_loss"] == last["train_loss"]
    assert completed["val_accuracy"] == last["val_accuracy"]
    assert completed["progress_calls"] == 30
    assert completed["duration_seconds"] >= 0
    assert "Finished normally at step 29" in lines[-1]["reasoning"]


def test_default_logger_is_audit_logging_training() -> None:
    assert TrainingRun(git=None).logger is logging.getLogger("audit_logging.training")
    assert TrainingRun("my.trainer", git=None).logger is logging.getLogger("my.trainer")


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_started_records_the_git_commit_without_writing_dirty_git(
    journal: Journal, tmp_path: Path
) -> None:
    pytest.importorskip("git")
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "train.py").write_text("print('train')\n")
    _git(repo, "add", "train.py")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "first")
    head = _git(repo, "rev-parse", "HEAD")
    (repo / "train.py").write_text("print('edited')\n")  # dirty

    with run_of(journal, git=repo):
        pass
    snap = journal.only("TRAINING_STARTED")["metrics_snapshot"]
    assert snap["git_commit"] == head
    assert snap["git_dirty"] is True
    assert (
        f"at git commit {head} (dirty working tree)"
        in journal.only("TRAINING_STARTED")["reasoning"]
    )
    assert journal.captured.warnings() == []  # the application decides about dirty_git

    with run_of(journal, git=repo, warn_dirty_git=True):
        pass
    assert [r.warning_type for r in journal.captured.warnings()] == ["dirty_git"]  # type: ignore[attr-defined]


def test_no_repository_means_commit_null_with_the_reason(journal: Journal, tmp_path: Path) -> None:
    with run_of(journal, git=tmp_path):
        pass
    line = journal.only("TRAINING_STARTED")
    assert line["metrics_snapshot"]["git_commit"] is None
    assert "git commit unknown" in line["reasoning"]


def test_exception_logs_training_failed_and_a_warning_then_reraises(journal: Journal) -> None:
    with pytest.raises(ValueError, match="shapes do not match"), run_of(journal) as run:
        feed(run, healthy(5))
        raise ValueError("shapes do not match")
    failed = journal.only("TRAINING_FAILED")
    assert failed["level"] == "ERROR"
    assert failed["reasoning"].startswith("ValueError: shapes do not match raised at step 4")
    assert "Traceback" in failed["exception"]
    assert failed["metrics_snapshot"]["step"] == 4
    assert "TRAINING_COMPLETED" not in journal.events()
    [warning] = journal.captured.warnings()
    assert warning.warning_type == "training_failed"  # type: ignore[attr-defined]
    assert not hasattr(warning, "event")  # a separate record, not a journal line
    details = warning.details  # type: ignore[attr-defined]
    assert details["exception_type"] == "ValueError"
    assert details["exception_message"] == "shapes do not match"
    assert details["model"] == "RandomForest" and details["step"] == 4


def test_an_exception_that_cannot_be_printed_still_gets_its_warning(journal: Journal) -> None:
    with pytest.raises(UnprintableError), run_of(journal) as run:
        feed(run, healthy(3))
        raise UnprintableError
    assert journal.only("TRAINING_FAILED")["reasoning"].startswith("UnprintableError: ")
    [warning] = journal.captured.warnings()
    details = warning.details  # type: ignore[attr-defined]
    assert details["exception_type"] == "UnprintableError"
    assert details["exception_message"] == "UnprintableError()"  # its repr


def test_keyboard_interrupt_logs_stopped_and_an_interrupted_warning(journal: Journal) -> None:
    with pytest.raises(KeyboardInterrupt), run_of(journal) as run:
        feed(run, healthy(3))
        raise KeyboardInterrupt
    stopped = journal.only("TRAINING_STOPPED")
    assert "KeyboardInterrupt" in stopped["reasoning"]
    assert stopped["decision"] == "Training stopped"
    assert [r.warning_type for r in journal.captured.warnings()] == ["training_interrupted"]  # type: ignore[attr-defined]
    assert "TRAINING_FAILED" not in journal.events()


def test_warning_records_become_files_with_the_warning_writer(
    logger: logging.Logger, tmp_path: Path
) -> None:
    warnings_mod = pytest.importorskip("audit_logging.writers.warnings")
    folder = tmp_path / "warnings"
    logger.addHandler(warnings_mod.WarningFileHandler(directory=folder))
    with pytest.raises(RuntimeError), TrainingRun(logger, model="m", git=None):
        raise RuntimeError("CUDA out of memory")
    import json

    [path] = sorted(folder.glob("*.json"))
    body = json.loads(path.read_text())
    assert body["type"] == "training_failed"
    assert body["details"]["exception_message"] == "CUDA out of memory"


def test_stop_logs_stopped_with_the_reason_and_no_completed(journal: Journal) -> None:
    with run_of(journal) as run:
        feed(run, healthy(10))
        run.stop("budget of 10 steps reached")
        assert run.should_stop
    stopped = journal.only("TRAINING_STOPPED")
    assert stopped["reasoning"] == "budget of 10 steps reached"
    assert stopped["metrics_snapshot"]["step"] == 9
    assert journal.events()[-1] == "TRAINING_STOPPED"


# ---------------------------------------------------------------- decisions and events


def test_decide_and_hyperparameters_with_defaults_used(journal: Journal) -> None:
    with run_of(journal) as run:
        run.decide(
            "ALGORITHM_SELECTED",
            "Baseline model selection",
            reasoning="tabular, 12000 rows, class ratio 0.82",
            metrics={"rows": 12000, "class_ratio": 0.82},
        )
        run.hyperparameters({"n_estimators": 200, "max_depth": None}, defaults_used=["max_depth"])
    selected = journal.only("ALGORITHM_SELECTED")
    assert selected["decision"] == "Baseline model selection"
    assert selected["reasoning"] == "tabular, 12000 rows, class ratio 0.82"
    assert selected["metrics_snapshot"] == {"rows": 12000, "class_ratio": 0.82}
    hp = journal.only("HYPERPARAMETERS_SET")
    assert hp["metrics_snapshot"] == {
        "hyperparameters": {"n_estimators": 200, "max_depth": None},
        "defaults_used": ["max_depth"],
    }
    assert hp["decision"] == "Defaults applied"
    assert "set explicitly: n_estimators=200" in hp["reasoning"]
    assert "defaults used: max_depth=None" in hp["reasoning"]


def test_evaluated_logs_the_metrics_as_given(journal: Journal) -> None:
    with run_of(journal) as run:
        run.evaluated(accuracy=0.84, precision=0.79, recall=0.81, f1_score=0.80, auc_roc=0.87)
    line = journal.only("MODEL_EVALUATED")
    assert line["metrics_snapshot"] == {
        "accuracy": 0.84,
        "precision": 0.79,
        "recall": 0.81,
        "f1_score": 0.80,
        "auc_roc": 0.87,
    }
    assert line["decision"] == "Performance assessment completed"
    assert "accuracy 0.84" in line["reasoning"]


def test_saved_logs_size_and_sha256(journal: Journal, tmp_path: Path) -> None:
    model = tmp_path / "model.pkl"
    data = bytes(range(256)) * 10_000
    model.write_bytes(data)
    with run_of(journal) as run:
        assert run.saved(model) == (len(data), hashlib.sha256(data).hexdigest())
        assert run.saved(tmp_path / "missing.pkl") is None  # reported, not raised
    saved, missing = [line for line in journal.lines() if line["event"] == "MODEL_SAVED"]
    assert saved["metrics_snapshot"] == {
        "path": str(model),
        "size_bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert missing["level"] == "WARNING"
    assert "FileNotFoundError" in missing["reasoning"]


def _write_csv(path: Path, rows: list[list[Any]]) -> bytes:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    return path.read_bytes()


def test_dataset_logs_rows_columns_size_and_sha256(journal: Journal, tmp_path: Path) -> None:
    path = tmp_path / "churn.csv"
    raw = _write_csv(
        path, [["age", "plan", "note", "churn"]] + [[i, "pro", "a,b\nc", i % 2] for i in range(500)]
    )
    with TrainingRun(journal.logger, model="RF", git=None) as run:
        info = run.dataset(path)
    assert info is not None and info.rows == 500 and info.columns == 4
    uploaded = journal.only("DATASET_UPLOADED")
    assert uploaded["dataset"] == "churn.csv"  # named after the file when no name was given
    assert uploaded["metrics_snapshot"]["sha256"] == hashlib.sha256(raw).hexdigest()
    assert uploaded["metrics_snapshot"]["size_bytes"] == len(raw)
    validated = journal.only("DATASET_VALIDATED")
    assert validated["decision"] == "Validation passed"
    assert validated["metrics_snapshot"]["rows"] == 500  # quoted newlines are not rows
    assert validated["metrics_snapshot"]["columns"] == 4
    assert validated["metrics_snapshot"]["ragged_rows"] == 0
    assert validated["reasoning"] == "500 rows, each with the header's 4 columns."


def test_dataset_ragged_rows_and_unreadable_file(journal: Journal, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    _write_csv(path, [["a", "b", "c"], [1, 2, 3], [1, 2], [1, 2, 3, 4], [4, 5, 6]])
    with run_of(journal) as run:
        run.dataset(path, event="DATASET_VALIDATED")
        assert run.dataset(tmp_path / "nope.csv") is None
    validated = [line for line in journal.lines() if line["event"] == "DATASET_VALIDATED"]
    assert validated[-1]["decision"] == "Validation found problems"
    assert validated[-1]["reasoning"] == "2 of 4 rows do not have the header's 3 columns."
    missing = journal.only("DATASET_UPLOADED")
    assert "FileNotFoundError" in missing["reasoning"]


def test_dataset_is_streamed_not_loaded(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    row = "0.123456,0.654321,some text here,1\n" * 1000
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("a,b,c,d\n")
        for _ in range(200):  # ~7 MB
            fh.write(row)
    size = path.stat().st_size
    tracemalloc.start()
    try:
        info = scan_csv(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.rows == 200_000 and info.size_bytes == size
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert peak < 4 * 1024 * 1024 < size  # a few 1 MiB buffers, not the file


def test_compare_selects_by_the_metric_direction(journal: Journal) -> None:
    with run_of(journal) as run:
        assert (
            run.compare(
                {"model": "RF", "accuracy": 0.84}, {"model": "LogReg", "accuracy": 0.81}, "accuracy"
            )
            == "RF"
        )
        assert (
            run.compare(
                {"model": "A", "val_loss": 0.4}, {"model": "B", "val_loss": 0.3}, "val_loss"
            )
            == "B"
        )
        assert run.compare({"model": "A"}, {"model": "B", "val_loss": 0.3}, "val_loss") is None
    first, second, missing = [line for line in journal.lines() if line["event"] == "MODEL_COMPARED"]
    assert first["decision"] == "Selected RF over LogReg"
    assert first["metrics_snapshot"]["difference"] == 0.84 - 0.81
    assert first["metrics_snapshot"]["formulas"] == {"difference": "a.accuracy - b.accuracy"}
    assert "RF has the higher accuracy: RF 0.84 vs LogReg 0.81" in first["reasoning"]
    assert second["decision"] == "Selected B over A"
    assert "lower is better" in second["reasoning"]
    assert missing["decision"] is None and missing["level"] == "WARNING"


# ---------------------------------------------------------------- progress and issues


def train_only(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows without their validation metrics (``val_*``): calls that may go unwritten."""
    return [{k: v for k, v in row.items() if not k.startswith("val_")} for row in rows]


def progress_lines(journal: Journal) -> list[dict[str, Any]]:
    return [line for line in journal.lines() if line["event"] == "TRAINING_PROGRESS"]


def test_progress_lines_every_n_calls(journal: Journal) -> None:
    with run_of(journal, progress_every=10, progress_seconds=math.inf) as run:
        feed(run, train_only(healthy(35)))
    lines = progress_lines(journal)
    assert [line["metrics_snapshot"]["step"] for line in lines] == [0, 10, 20, 30]
    assert lines[0]["metrics_snapshot"] == train_only(healthy(1))[0]


def test_progress_lines_every_t_seconds(journal: Journal) -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0  # one second per reading
        return now[0]

    with run_of(journal, progress_every=10**9, progress_seconds=5.0, clock=clock) as run:
        feed(run, train_only(healthy(20)))
    steps = [line["metrics_snapshot"]["step"] for line in progress_lines(journal)]
    assert steps == [0, 5, 10, 15]


def test_journal_shows_a_decision_an_issue_and_its_reasoning(journal: Journal) -> None:
    rows = plateau(flat_from=50)
    with run_of(journal, progress_every=1000) as run:
        run.decide("ALGORITHM_SELECTED", "Baseline model selection", reasoning="tabular data")
        for row in rows:
            metrics = dict(row)
            issues = run.progress(metrics.pop("step"), **metrics)
            if run.should_stop:
                break
    assert issues and issues[0].kind == "plateau"
    events = journal.events()
    # Every call carries val_loss: each is written, the issue right after its step's line.
    assert events == [
        "TRAINING_STARTED",
        "ALGORITHM_SELECTED",
        *["TRAINING_PROGRESS"] * 60,
        "ISSUE_DETECTED",
        "TRAINING_COMPLETED",
    ]
    lines = journal.lines()[-4:]
    issue = lines[2]
    assert issue["decision"] == "Early stopping triggered"
    assert issue["level"] == "WARNING"
    assert issue["reasoning"].startswith("val_loss has not decreased by more than")
    assert "Probable cause:" in issue["reasoning"]
    assert lines[1]["metrics_snapshot"]["step"] == issue["metrics_snapshot"]["step"] == 59
    fed = rows[:60]
    # The journal snapshot passes the independent no-invention check.
    assert_not_invented(
        issue["metrics_snapshot"], issue["reasoning"].split(" Probable cause:")[0], fed
    )
    completed = lines[3]
    assert completed["decision"] == "Early stopping triggered"
    assert completed["metrics_snapshot"]["ending"] == "early_stopped"
    assert "Finished normally" not in completed["reasoning"]
    assert "Stopped early on the plateau detected at step 59" in completed["reasoning"]


@pytest.mark.parametrize(
    "history",
    [overfitting(), [*healthy(50), {"step": 50, "train_loss": math.nan, "val_loss": 1.0}]],
    ids=["overfitting", "divergent"],
)
def test_every_number_in_journal_issue_snapshots_is_an_input_or_named_result(
    journal: Journal, history: list[dict[str, Any]]
) -> None:
    with run_of(journal, progress_every=1000) as run:
        feed(run, history)
    issues = [line for line in journal.lines() if line["event"] == "ISSUE_DETECTED"]
    assert issues
    for line in issues:
        reasoning = line["reasoning"].split(" Probable cause:")[0]
        assert_not_invented(line["metrics_snapshot"], reasoning, history)


def test_stop_on_and_detector_options(journal: Journal) -> None:
    rows = healthy(40)
    rows[30]["train_loss"] = math.inf
    with run_of(journal, stop_on=("divergence",), detector={"kinds": ["divergence"]}) as run:
        feed(run, rows)
        assert run.should_stop
        assert run.issue_counts == {"divergence": 1}
    assert journal.only("ISSUE_DETECTED")["decision"] == "Early stopping triggered"
    with run_of(journal, detector=False) as run:
        assert run.progress(train_loss=math.nan) == ()


def test_early_stop_is_reported_after_more_than_a_hundred_later_issues(journal: Journal) -> None:
    from audit_logging.detect import Issue

    def issue(kind: str, step: int) -> Issue:
        return Issue(kind, "cause", {"step": step}, f"{kind} at {step}.", step, "Review")

    with run_of(journal, stop_on=("plateau",), detector=False) as run:
        run.report(issue("plateau", 1))
        for step in range(2, 152):
            run.report(issue("divergence", step))
    completed = journal.only("TRAINING_COMPLETED")
    assert completed["decision"] == "Early stopping triggered"
    assert "Stopped early on the plateau detected at step 1" in completed["reasoning"]


def test_an_issue_is_logged_once_per_episode(journal: Journal) -> None:
    with run_of(journal, progress_every=1000) as run:
        feed(run, overfitting(n=200))
    kinds = [
        line["metrics_snapshot"]["issue"]
        for line in journal.lines()
        if line["event"] == "ISSUE_DETECTED"
    ]
    # The validation loss rises from step 60 on: overfitting, never a plateau.
    assert kinds == ["overfitting"]


def test_noisy_healthy_run_writes_no_issue(journal: Journal) -> None:
    with run_of(journal, progress_every=50) as run:
        feed(run, noisy_healthy(seed=3))
    assert "ISSUE_DETECTED" not in journal.events()
    assert not run.should_stop


# ---------------------------------------------------------------- cost


def _null_logger(name: str) -> logging.Logger:
    log = logging.getLogger(name)
    log.propagate = False
    log.addHandler(logging.NullHandler())
    return log


def _drive(run: TrainingRun, steps: int, start: int = 0) -> None:
    progress = run.progress
    for s in range(start, start + steps):
        # A noisy loss around a constant level, generated without allocating a
        # history: windows stay full; the monitored train_accuracy is flat, so
        # the plateau starts once and never clears. Training-only calls: a
        # line every 100 calls, the calls between summarised.
        wobble = ((s * 7919) % 101) / 101 - 0.5
        loss = 0.5 * (1 + 0.05 * wobble)
        progress(s, train_loss=loss, train_accuracy=0.9)


def _memory_growth(steps: int, traced: int = 20_000) -> tuple[int, int]:
    """Run ``steps`` progress calls; trace the last ``traced``: (retained growth, peak) in bytes.

    Tracing every call would make the test 5x slower; anything kept per step
    (a history, a growing list) still shows as growth of the traced block.
    """
    run = TrainingRun(
        _null_logger("audit_test.memory"), git=None, detector={"monitor": "train_accuracy"}
    )
    run.start()
    _drive(run, steps - traced)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        _drive(run, traced, steps - traced)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert run.calls == steps
    assert run.issue_counts == {"plateau": 1}
    return after - before, peak


def test_memory_is_bounded_over_a_long_run() -> None:
    # 200k steps here (about 1 s); the 1,000,000-step variant is marked slow.
    growth, peak = _memory_growth(200_000)
    # 20,000 steps leave nothing behind but the calls since the last line (at
    # most progress_every = 100 metrics dicts, about 18 KiB) kept for its summary.
    assert growth < 40 * 1024
    assert peak < 256 * 1024


@pytest.mark.slow
def test_memory_is_bounded_over_a_million_steps() -> None:
    growth, peak = _memory_growth(1_000_000)
    assert growth < 40 * 1024
    assert peak < 256 * 1024


def _median_ns(call: Callable[[], Any], number: int = 5_000, repeat: int = 9) -> float:
    return statistics.median(timeit.repeat(call, number=number, repeat=repeat)) / number * 1e9


def test_progress_overhead_without_a_line_is_microseconds() -> None:
    # The target is < 5 us (measured about 2-3 us); the bound here is loose so
    # that a loaded CI machine does not fail, but an O(steps) detector would.
    run = TrainingRun(_null_logger("audit_test.cost"), git=None, progress_every=10**9)
    run.start()
    steps: Iterator[int] = iter(range(10**9))

    def one() -> None:
        s = next(steps)
        run.progress(
            s,
            train_loss=1.0 / (1 + s),
            val_loss=1.1 / (1 + s),
            train_accuracy=0.9,
            val_accuracy=0.88,
        )

    assert _median_ns(one) < 50_000


# ---------------------------------------------------------------- real training and demo


def _mlp_run(journal: Journal, n_train: int, alpha: float, epochs: int, lr: float) -> list[str]:
    pytest.importorskip("sklearn")
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.metrics import log_loss
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=0.3, random_state=0, stratify=y
    )
    x_train, y_train = x_train[:n_train], y_train[:n_train]
    classes = np.unique(y)
    clf = MLPClassifier(
        hidden_layer_sizes=(64,),
        alpha=alpha,
        learning_rate_init=lr,
        batch_size=min(200, n_train),
        random_state=0,
    )
    with TrainingRun(
        journal.logger, dataset="sklearn digits", model="MLPClassifier", git=None
    ) as run:
        run.hyperparameters(
            {"n_train": n_train, "alpha": alpha, "epochs": epochs, "learning_rate_init": lr}
        )
        for epoch in range(epochs):
            clf.partial_fit(x_train, y_train, classes=classes)
            run.progress(
                epoch,
                train_loss=float(log_loss(y_train, clf.predict_proba(x_train), labels=classes)),
                val_loss=float(log_loss(y_val, clf.predict_proba(x_val), labels=classes)),
                train_accuracy=float(clf.score(x_train, y_train)),
                val_accuracy=float(clf.score(x_val, y_val)),
            )
    return [
        line["metrics_snapshot"]["issue"]
        for line in journal.lines()
        if line["event"] == "ISSUE_DETECTED"
    ]


def test_real_training_overfitting_is_detected_only_when_it_overfits(
    logger: logging.Logger, tmp_path: Path
) -> None:
    # 50 training images, no L2 penalty, a large learning rate: memorises its data.
    overfit = _mlp_run(
        Journal(logger, tmp_path / "overfit"), n_train=50, alpha=0.0, epochs=30, lr=1e-2
    )
    # All 1257 training images, L2 penalty, a moderate learning rate, 25 epochs.
    fine = _mlp_run(
        Journal(logger, tmp_path / "healthy"), n_train=1257, alpha=1e-3, epochs=25, lr=1e-3
    )
    assert "overfitting" in overfit
    assert "overfitting" not in fine


def test_demo_training_journal_shows_a_decision_an_issue_and_its_reasoning(
    logger: logging.Logger, tmp_path: Path
) -> None:
    journal = Journal(logger, tmp_path / "logs")
    run_demo_training(logger, tmp_path / "demo")
    events = journal.events()
    for event in (
        "TRAINING_STARTED",
        "DATASET_UPLOADED",
        "DATASET_VALIDATED",
        "ALGORITHM_SELECTED",
        "HYPERPARAMETERS_SET",
        "TRAINING_PROGRESS",
        "ISSUE_DETECTED",
        "MODEL_EVALUATED",
        "MODEL_SAVED",
        "TRAINING_COMPLETED",
    ):
        assert event in events
    selected = journal.only("ALGORITHM_SELECTED")
    assert selected["decision"] and selected["reasoning"]
    issue = journal.only("ISSUE_DETECTED")
    assert issue["decision"] == "Early stopping triggered"
    assert issue["metrics_snapshot"]["issue"] == "plateau"
    assert "val_loss has not decreased" in issue["reasoning"]
    saved = journal.only("MODEL_SAVED")["metrics_snapshot"]
    assert (
        saved["sha256"]
        == hashlib.sha256((tmp_path / "demo" / "demo-model.json").read_bytes()).hexdigest()
    )


def test_detector_instance_is_used_as_given(journal: Journal) -> None:
    detector = IssueDetector(monitor="val_accuracy", patience=3)
    with run_of(journal, detector=detector) as run:
        for s in range(10):
            run.progress(s, val_accuracy=0.7)
    assert run.detector is detector
    assert journal.only("ISSUE_DETECTED")["metrics_snapshot"]["thresholds"]["patience"] == 3


def test_issue_history_is_bounded_when_an_issue_keeps_returning() -> None:
    run = TrainingRun(_null_logger("audit_test.flapping"), git=None, stop_on=(), progress_every=10)
    value = 1.0
    with run:
        for _episode in range(150):
            for _ in range(12):  # more than patience (10) improving checks end the plateau ...
                value *= 0.9
                run.progress(val_loss=value)
            for _ in range(10):  # ... and 10 flat checks start the next one
                run.progress(val_loss=value)
    assert run.issue_counts == {"plateau": 150}
    assert len(run.issues) == 100
    assert not run.should_stop  # plateau was not in stop_on
