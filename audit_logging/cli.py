"""The ``audit-logging`` command (also ``python -m audit_logging``).

Subcommands:

``demo [--out DIR]``
    Simulate a short training run with the default configuration, write real
    logs under DIR and print where they are and what they hold.

Errors are one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


class CommandError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


# ---------------------------------------------------------------------- demo


def _demo_data(rows: int, rng: random.Random) -> tuple[list[list[float]], list[int]]:
    # Two noisy features; the label depends on both. Generated here so the
    # demo needs no download and no numpy.
    xs: list[list[float]] = []
    ys: list[int] = []
    for _ in range(rows):
        a, b = rng.gauss(0, 1), rng.gauss(0, 1)
        xs.append([a, b])
        ys.append(1 if 1.5 * a - b + rng.gauss(0, 0.8) > 0 else 0)
    return xs, ys


def _loss_and_accuracy(w: list[float], xs: list[list[float]], ys: list[int]) -> tuple[float, float]:
    loss = 0.0
    correct = 0
    for x, y in zip(xs, ys, strict=True):
        z = w[0] * x[0] + w[1] * x[1] + w[2]
        p = 1 / (1 + math.exp(-z))
        p = min(max(p, 1e-12), 1 - 1e-12)
        loss -= y * math.log(p) + (1 - y) * math.log(1 - p)
        correct += (p >= 0.5) == bool(y)
    return loss / len(xs), correct / len(xs)


def run_demo(out: Path) -> dict[str, object]:
    """Train a tiny logistic regression with audit logging on; return what was written."""
    from audit_logging.config import configure

    out.mkdir(parents=True, exist_ok=True)
    handler = configure(root_dir=out, formats="jsonl", level="INFO", logger="audit_demo")
    assert handler is not None
    log = logging.getLogger("audit_demo.trainer")
    log.propagate = True
    rng = random.Random(7)
    xs, ys = _demo_data(600, rng)
    train_x, train_y, val_x, val_y = xs[:480], ys[:480], xs[480:], ys[480:]
    common = {"dataset": "synthetic-600.csv", "model": "LogisticRegression"}
    positive = sum(ys) / len(ys)
    log.info(
        "Dataset loaded",
        extra={
            "event": "DATASET_VALIDATED",
            **common,
            "decision": "Hold out 20% for validation",
            "reasoning": f"{len(xs)} rows, 2 numeric features, positive rate {positive:.3f}",
            "metrics_snapshot": {"rows": len(xs), "columns": 3, "positive_rate": positive},
        },
    )
    learning_rate, epochs = 0.5, 40
    params = {"learning_rate": learning_rate, "epochs": epochs}
    log.info(
        "Hyperparameters",
        extra={"event": "HYPERPARAMETERS_SET", **common, "metrics_snapshot": params},
    )
    log.info("Training started", extra={"event": "TRAINING_STARTED", **common})
    w = [0.0, 0.0, 0.0]
    best_val = math.inf
    stale = 0
    epoch = 0
    for epoch in range(1, epochs + 1):
        grad = [0.0, 0.0, 0.0]
        for x, y in zip(train_x, train_y, strict=True):
            p = 1 / (1 + math.exp(-(w[0] * x[0] + w[1] * x[1] + w[2])))
            grad[0] += (p - y) * x[0]
            grad[1] += (p - y) * x[1]
            grad[2] += p - y
        w = [wi - learning_rate * g / len(train_x) for wi, g in zip(w, grad, strict=True)]
        train_loss, train_acc = _loss_and_accuracy(w, train_x, train_y)
        val_loss, val_acc = _loss_and_accuracy(w, val_x, val_y)
        metrics = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "train_accuracy": train_acc,
            "val_accuracy": val_acc,
        }
        if epoch % 10 == 0:
            log.info(
                "Progress",
                extra={"event": "TRAINING_PROGRESS", **common, "metrics_snapshot": metrics},
            )
        if val_loss < best_val - 1e-4:
            best_val, stale = val_loss, 0
        else:
            stale += 1
        if stale >= 5:
            log.warning(
                "Validation loss stopped improving",
                extra={
                    "event": "ISSUE_DETECTED",
                    **common,
                    "decision": "Early stopping triggered",
                    "reasoning": (
                        f"val_loss has not improved on its best {best_val:.4f} by 1e-4 "
                        f"for {stale} epochs (now {val_loss:.4f})"
                    ),
                    "metrics_snapshot": {**metrics, "best_val_loss": best_val},
                },
            )
            break
    log.info(
        "Training completed",
        extra={"event": "TRAINING_COMPLETED", **common, "metrics_snapshot": {"epochs": epoch}},
    )
    log.info(
        "Evaluated",
        extra={
            "event": "MODEL_EVALUATED",
            **common,
            "decision": "Performance assessment completed",
            "metrics_snapshot": {"val_accuracy": val_acc, "val_loss": val_loss},
        },
    )
    handler.close()
    logging.getLogger("audit_demo").removeHandler(handler)
    return _describe(out)


def _describe(out: Path) -> dict[str, object]:
    files: dict[str, object] = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        rel = str(path.relative_to(out))
        if path.suffix == ".jsonl":
            events: Counter[str] = Counter()
            with path.open(encoding="utf-8") as fh:
                for line in fh:
                    events[json.loads(line)["event"]] += 1
            files[rel] = {"lines": sum(events.values()), "events": dict(events)}
        else:
            files[rel] = {"bytes": path.stat().st_size}
    return files


def _cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    files = run_demo(out)
    print(f"Demo training run logged under {out.resolve()}")
    for rel, info in files.items():
        print(f"  {rel}")
        if isinstance(info, dict) and "events" in info:
            for event, count in info["events"].items():
                print(f"      {count:4d}  {event}")
    return 0


# ---------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audit-logging", description="Read, check and demo audit_logging outputs."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="simulate a short training run and write real logs")
    demo.add_argument("--out", default="demo-logs", help="folder for the logs (default: demo-logs)")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except CommandError as exc:
        print(f"audit-logging: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        print(f"audit-logging: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
