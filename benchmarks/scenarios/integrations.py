"""Overhead of each framework callback on a 1 ms training step (target: under 1%).

What is timed is the work each callback adds to training, its hooks called as
the framework calls them, with the callbacks' default settings, through
``AuditQueueHandler -> JsonlHandler`` as in real use (``git=None`` keeps the
git probe out):

* XGBoost, LightGBM: the per-iteration hook (``after_iteration``; the
  callback's ``__call__`` with a real ``CallbackEnv``), a boosting round
  being the step, two evaluation metrics per round (the detector sees every
  round; a line every 100 rounds, the default);
* scikit-learn: ``audited_partial_fit``'s wrapper around one ``partial_fit``
  call, around an estimator whose own ``partial_fit`` does nothing, so that
  only the wrapper is timed;
* Keras, Lightning, HF Trainer: the hooks called every step (the inherited
  no-ops ``on_train_batch_begin/end``, ``on_step_begin/end``), and apart the
  per-epoch (per-log) hook, which writes a TRAINING_PROGRESS line at every
  call (Lightning's metrics are real tensors).

overhead % = (per-step us + per-epoch us / 100) / 1000 us * 100: the cost on
a 1 ms step in epochs (or logging intervals) of 100 steps. ``epoch_only_pct``
is the per-epoch hook alone on a one-step epoch, the worst case. A framework
that is not installed is skipped. Run alone: ``python -m benchmarks.scenarios.integrations
overhead [--quick]``; it prints a table with met/missed, then the result line.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from benchmarks import harness

STEP_US = 1000.0
STEPS_PER_EPOCH = 100
TARGET_PCT = 1.0
Hooks = tuple[Callable[[int], object], Callable[[int], object] | None, Any]


def _loss(i: int) -> float:
    """A loss falling 0.05% a step: no detector issue fires (a curve like 1/(i+1)
    flattens into plateaus, and their ISSUE_DETECTED lines would be timed too)."""
    return float(0.9995**i)


def _time(call: Callable[[int], object], n: int, rounds: int = 5) -> float:
    """Median over ``rounds`` of the mean microseconds of ``call(i)`` over ``n`` calls."""
    results = []
    perf = time.perf_counter
    i = 0
    for _ in range(rounds):
        t0 = perf()
        for _ in range(n):
            call(i)
            i += 1
        results.append((perf() - t0) / n * 1e6)
    return statistics.median(results)


def _xgboost(kw: dict[str, Any]) -> Hooks | None:
    if importlib.util.find_spec("xgboost") is None:
        return None
    from audit_logging.integrations.xgboost import AuditXGBoostCallback

    cb = AuditXGBoostCallback(**kw)
    cb.run.start()
    log: dict[str, dict[str, list[float]]] = {"train": {"logloss": []}, "valid": {"logloss": []}}

    def step(i: int) -> object:
        log["train"]["logloss"].append(_loss(i))
        log["valid"]["logloss"].append(1.1 * _loss(i))
        return cb.after_iteration(None, i, log)

    return step, None, cb.run


def _lightgbm(kw: dict[str, Any]) -> Hooks | None:
    if importlib.util.find_spec("lightgbm") is None:
        return None
    from lightgbm.callback import CallbackEnv

    from audit_logging.integrations.lightgbm import audit_lightgbm_callback

    cb = audit_lightgbm_callback(**kw)
    cb.run.start()
    cb._first = False  # the start lines are not per-step work

    def step(i: int) -> object:
        env = CallbackEnv(
            None,
            {},
            i,
            0,
            10**9,
            [("valid_0", "l2", _loss(i), False), ("valid_0", "l1", 2 * _loss(i), False)],
        )
        return cb(env)

    return step, None, cb.run


def _keras(kw: dict[str, Any]) -> Hooks | None:
    if importlib.util.find_spec("keras") is None:
        return None
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from audit_logging.integrations.keras import AuditKerasCallback

    cb = AuditKerasCallback(**kw)
    cb.run.start()

    def step(i: int) -> object:
        cb.on_train_batch_begin(i)
        return cb.on_train_batch_end(i, {"loss": _loss(i)})

    def epoch(i: int) -> object:
        return cb.on_epoch_end(i, {"loss": _loss(i), "val_loss": 1.1 * _loss(i)})

    return step, epoch, cb.run


def _lightning(kw: dict[str, Any]) -> Hooks | None:
    if importlib.util.find_spec("lightning") is None:
        return None
    import torch

    from audit_logging.integrations.lightning import AuditCallback

    cb = AuditCallback(**kw)
    cb.run.start()
    trainer = SimpleNamespace(current_epoch=0, callback_metrics={})

    def step(i: int) -> object:
        cb.on_train_batch_start(trainer, None, None, i)
        return cb.on_train_batch_end(trainer, None, None, None, i)

    metrics = [
        {"train_loss": torch.tensor(_loss(i)), "val_loss": torch.tensor(1.1 * _loss(i))}
        for i in range(64)
    ]

    def epoch(i: int) -> object:
        trainer.current_epoch = i
        trainer.callback_metrics = metrics[i % 64]  # made by Lightning, not by the callback
        return cb.on_train_epoch_end(trainer, None)

    return step, epoch, cb.run


def _transformers(kw: dict[str, Any]) -> Hooks | None:
    if importlib.util.find_spec("transformers") is None:
        return None
    from audit_logging.integrations.transformers import AuditTrainerCallback

    cb = AuditTrainerCallback(**kw)
    cb.run.start()
    cb._training = True
    state = SimpleNamespace(global_step=0)

    def step(i: int) -> object:
        state.global_step = i
        cb.on_step_begin(None, state, None)
        return cb.on_step_end(None, state, None)

    def epoch(i: int) -> object:
        logs = {"loss": _loss(i), "learning_rate": 1e-3, "grad_norm": 0.5, "epoch": i / 10}
        return cb.on_log(None, state, None, logs=logs)

    return step, epoch, cb.run


def _sklearn(kw: dict[str, Any]) -> Hooks | None:
    if importlib.util.find_spec("sklearn") is None:
        return None
    from audit_logging.integrations.sklearn import PartialFit
    from audit_logging.training import TrainingRun

    class Estimator:
        def partial_fit(self, X: Any, y: Any = None, **kwargs: Any) -> Estimator:
            return self

    run = TrainingRun(**kw)  # audited_partial_fit's default: TrainingRun's throttling
    run.start()
    fit = PartialFit(run, Estimator(), None, None)
    batch = [[0.0, 1.0]] * 32

    def step(i: int) -> object:
        return fit.partial_fit(batch, None)

    return step, None, run


FRAMEWORKS: dict[str, Callable[[dict[str, Any]], Hooks | None]] = {
    "xgboost": _xgboost,
    "lightgbm": _lightgbm,
    "keras": _keras,
    "lightning": _lightning,
    "transformers": _transformers,
    "sklearn": _sklearn,
}


def main() -> None:
    args = harness.child_args(__doc__ or "")
    from audit_logging.queue import AuditQueueHandler
    from audit_logging.writers.jsonl import JsonlHandler

    handler = AuditQueueHandler(handlers=[JsonlHandler(directory=args.dir)])
    log = logging.getLogger("bench.integrations")
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    n = 500 if args.quick else 2000
    metrics: dict[str, Any] = {}
    notes = []
    rows = []
    for name, build in FRAMEWORKS.items():
        kw: dict[str, Any] = {"logger": log}
        if name != "sklearn":
            kw["run_kwargs"] = {"git": None}
        else:
            kw["git"] = None
        try:
            hooks = build(kw)
        except ImportError as exc:
            hooks = None
            notes.append(f"{name}: {exc}")
        if hooks is None:
            rows.append(f"{name:<13} {'-':>9} {'-':>9} {'-':>10}  skipped (not installed)")
            continue
        step, epoch, run = hooks
        for i in range(200):  # warm-up: imports, first lines, caches
            step(i)
            if epoch is not None:
                epoch(i)
        handler.flush()
        step_us = _time(step, n)
        epoch_us = _time(epoch, max(n // 10, 50)) if epoch is not None else 0.0
        handler.flush()  # the queue's backlog is written, so the next framework starts clean
        pct = (step_us + epoch_us / STEPS_PER_EPOCH) / STEP_US * 100
        metrics[f"{name}_step_us"] = step_us
        metrics[f"{name}_epoch_us"] = epoch_us if epoch is not None else None
        metrics[f"{name}_overhead_pct"] = pct
        # 0, or ISSUE_DETECTED lines were timed too (they cost more than a progress call).
        metrics[f"{name}_issues"] = sum(run.issue_counts.values())
        if epoch is not None:
            metrics[f"{name}_epoch_only_pct"] = epoch_us / STEP_US * 100
        verdict = "met" if pct < TARGET_PCT else "missed"
        per_epoch = f"{epoch_us:>9.2f}" if epoch is not None else f"{'-':>9}"
        rows.append(
            f"{name:<13} {step_us:>9.2f} {per_epoch} {pct:>9.3f}%  {verdict} "
            f"(target < {TARGET_PCT:g}%)"
        )
    handler.close()
    print(
        f"{'framework':<13} {'us/step':>9} {'us/epoch':>9} {'overhead':>10}  "
        f"on a 1 ms step, {STEPS_PER_EPOCH}-step epochs",
        file=sys.stderr,
    )
    for row in rows:
        print(row, file=sys.stderr)
    harness.emit(metrics, [*notes, "hooks timed as the framework calls them; see the module text"])


if __name__ == "__main__":
    main()
