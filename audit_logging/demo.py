"""The demo behind ``audit-logging demo``: a short real training run that writes every output.

:func:`run_demo` configures the four writers under one folder (the journal
``logs/``, ``audit_log.json``, ``audit_log.csv`` and ``training_logs/warnings/``),
then runs :func:`run_demo_training` (a tiny pure-Python logistic regression
through :class:`~audit_logging.training.TrainingRun`) between the actions an
experiment UI would record, one of which, restoring a checkpoint that does
not exist, also leaves a ``checkpoint_corrupted`` warning file. So each
command of the README's command section has something to read right after.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from audit_logging import schema
from audit_logging.config import configure
from audit_logging.resume import checkpoint_load
from audit_logging.training import TrainingRun

__all__ = ["DEMO_FORMATS", "describe", "run_demo", "run_demo_training", "write_demo_report"]

#: The outputs the demo writes: all four writers.
DEMO_FORMATS = ("jsonl", "json", "csv", "warnings")


def run_demo(out: Path) -> dict[str, object]:
    """Run the demo under ``out``; return, per file written (relative path), what it holds.

    A journal maps to ``{"lines", "events": {event: count}, "issues": [decision: reasoning]}``,
    any other file to ``{"bytes": size}``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    handler = configure(root_dir=out, formats=DEMO_FORMATS, level="INFO", logger="audit_demo")
    assert handler is not None
    try:
        ui = logging.getLogger("audit_demo.ui")
        # What an experiment UI would record around the run.
        ui.info(
            "tag",
            extra={
                "action_type": "tag_add",
                "details": {"tag_name": "holdout", "samples_affected": 120},
            },
        )
        run_demo_training(logging.getLogger("audit_demo.trainer"), out / "artifacts")
        ui.info("evaluate", extra={"action_type": "evaluation_start", "details": {"split": "val"}})
        missing = out / "artifacts" / "ckpt_001.json"
        try:
            # A real failed load: the action line and a checkpoint_corrupted warning file.
            with checkpoint_load(missing, logging.getLogger("audit_demo.hooks")):
                missing.read_bytes()
        except OSError as exc:
            ui.warning(
                "restore",
                extra={
                    "action_type": "checkpoint_restore",
                    "status": "failed",
                    "details": {"checkpoint_id": "ckpt_001"},
                    "error": f"{type(exc).__name__}: {exc.strerror}",
                },
            )
    finally:
        handler.close()
        logging.getLogger("audit_demo").removeHandler(handler)
    return describe(out)


def write_demo_report(out: Path) -> list[Path]:
    """The demo's run report, ``report.html`` under ``out`` (one per run if it holds several).

    Needs the ``report`` extra (matplotlib): ``MissingExtraError`` names it otherwise.
    """
    from audit_logging.report import write_report

    return write_report([out], out / "report.html")


def describe(out: Path) -> dict[str, object]:
    """What each file under ``out`` holds (see :func:`run_demo`), hidden files left out."""
    files: dict[str, object] = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")):
        rel = path.relative_to(out).as_posix()
        if path.suffix == ".jsonl" and path.parent.name == "logs":
            events: Counter[str] = Counter()
            issues: list[str] = []
            with path.open(encoding="utf-8") as fh:
                for line in fh:
                    record = json.loads(line)
                    events[record["event"]] += 1
                    if record["event"] == "ISSUE_DETECTED":
                        issues.append(f"{record['decision']}: {record['reasoning']}")
            files[rel] = {"lines": sum(events.values()), "events": dict(events), "issues": issues}
        else:
            files[rel] = {"bytes": path.stat().st_size}
    return files


def _demo_rows(n: int, rng: random.Random) -> list[tuple[float, float, int]]:
    rows = []
    for _ in range(n):
        x1, x2 = rng.gauss(0, 1), rng.gauss(0, 1)
        rows.append((x1, x2, 1 if 1.5 * x1 - x2 + rng.gauss(0, 0.8) > 0 else 0))
    return rows


def _demo_eval(w: Sequence[float], rows: Sequence[tuple[float, float, int]]) -> tuple[float, float]:
    loss = 0.0
    correct = 0
    for x1, x2, y in rows:
        z = w[0] * x1 + w[1] * x2 + w[2]
        p = min(max(1 / (1 + math.exp(-z)), 1e-12), 1 - 1e-12)
        loss -= y * math.log(p) + (1 - y) * math.log(1 - p)
        correct += (p >= 0.5) == (y == 1)
    return loss / len(rows), correct / len(rows)


def run_demo_training(
    logger: logging.Logger | str | None = None, directory: str | os.PathLike[str] | None = None
) -> None:
    """Train a tiny pure-Python logistic regression through :class:`TrainingRun`.

    The journal shows an algorithm decision with its reasoning, the
    hyperparameters with the defaults used, a progress line per epoch (each
    carries validation metrics), the issue the detector finds (a plateau of
    the validation loss, "Early stopping triggered"), the one closing line and
    the evaluation. With ``directory``, the data set is written there as
    ``demo-data.csv`` and the weights as ``demo-model.json``, so that
    DATASET_UPLOADED / DATASET_VALIDATED and MODEL_SAVED (with SHA-256) appear too.
    Needs no numpy and no download; deterministic (seeded).
    """
    rng = random.Random(7)
    rows = _demo_rows(600, rng)
    train, val = rows[:480], rows[480:]
    csv_path = model_path = None
    if directory is not None:
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        csv_path = folder / "demo-data.csv"
        with open(csv_path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["x1", "x2", "label"])
            writer.writerows(rows)
        model_path = folder / "demo-model.json"
    with TrainingRun(
        logger, dataset="demo-data.csv", model="LogisticRegression", progress_every=10, git=None
    ) as run:
        if csv_path is not None:
            run.dataset(csv_path)
        positive = sum(r[2] for r in rows)
        run.decide(
            schema.Event.ALGORITHM_SELECTED,
            "Logistic regression baseline",
            reasoning=(
                f"{len(rows)} rows, 2 numeric features, binary label with {positive} "
                f"positives: a linear model is the simplest baseline to beat"
            ),
            metrics={"rows": len(rows), "features": 2, "positives": positive},
        )
        params = {"learning_rate": 0.5, "max_epochs": 300, "l2": 0.0, "validation_rows": len(val)}
        run.hyperparameters(params, defaults_used=["l2"])
        w = [0.0, 0.0, 0.0]
        lr = params["learning_rate"]
        for epoch in range(1, int(params["max_epochs"]) + 1):
            grad = [0.0, 0.0, 0.0]
            for x1, x2, y in train:
                p = 1 / (1 + math.exp(-(w[0] * x1 + w[1] * x2 + w[2])))
                grad[0] += (p - y) * x1
                grad[1] += (p - y) * x2
                grad[2] += p - y
            w = [wi - lr * g / len(train) for wi, g in zip(w, grad, strict=True)]
            train_loss, train_acc = _demo_eval(w, train)
            val_loss, val_acc = _demo_eval(w, val)
            run.progress(
                step=epoch,
                train_loss=train_loss,
                val_loss=val_loss,
                train_accuracy=train_acc,
                val_accuracy=val_acc,
            )
            if run.should_stop:
                break
        run.evaluated(val_loss=val_loss, val_accuracy=val_acc)
        if model_path is not None:
            model_path.write_text(
                f'{{"weights": [{w[0]!r}, {w[1]!r}], "bias": {w[2]!r}}}\n', encoding="utf-8"
            )
            run.saved(model_path)
