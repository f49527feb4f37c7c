"""XGBoost: :class:`AuditXGBoostCallback`, a ``xgboost.callback.TrainingCallback``.

::

    booster = xgb.train(params, dtrain, 200, evals=[(dvalid, "valid")],
                        callbacks=[AuditXGBoostCallback(dataset="churn"),
                                   xgb.callback.EarlyStopping(rounds=10)])
    # or XGBClassifier(callbacks=[AuditXGBoostCallback()], early_stopping_rounds=10)

Writes, through a :class:`~audit_logging.TrainingRun`: TRAINING_STARTED
(model ``xgboost.Booster``; dataset name); DATASET_VALIDATED with the rows and
columns of the training and evaluation matrices; HYPERPARAMETERS_SET from the
booster's own configuration (``Booster.save_config()``: the parameters given
and, named as defaults, the ones XGBoost filled in); every iteration's
evaluation results (``valid-logloss``...) to ``TrainingRun.progress`` (the
issue detector sees each; a TRAINING_PROGRESS line is written every 100
rounds or 30 s, as TrainingRun throttles, unless ``run_kwargs`` say otherwise); MODEL_SAVED for
each file a ``TrainingCheckPoint`` wrote; MODEL_EVALUATED with the final (or,
after early stopping, the best iteration's) evaluation results; then
TRAINING_STOPPED quoting ``EarlyStopping``'s data set, metric, rounds and
scores when it stopped the run, else TRAINING_COMPLETED.

XGBoost calls no callback when training fails: ``xgboost.train`` is wrapped so
that an exception logs TRAINING_FAILED (TRAINING_STOPPED for Ctrl-C) and
propagates, (as MLflow's autolog does); the wrap is installed when this module is
imported and passes calls without this callback through untouched
(:func:`uninstall` removes it; see
:class:`~audit_logging.integrations._common.EntryPointPatch` for why it is
not removed at the end of each run). One callback object per run.
"""

from __future__ import annotations

import glob
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from audit_logging.integrations._common import (
    EntryPointPatch,
    MissingIntegrationError,
    early_stopped,
    make_run,
    saved,
    scalar,
    settings_of,
)
from audit_logging.training import TrainingRun

try:
    import xgboost
    import xgboost.sklearn
    import xgboost.training
    from xgboost.callback import EarlyStopping, TrainingCallback, TrainingCheckPoint
except ImportError as exc:
    raise MissingIntegrationError("xgboost", "xgboost") from exc

__all__ = ["AuditXGBoostCallback"]


def _targets() -> list[tuple[Any, str]]:
    return [(xgboost, "train"), (xgboost.training, "train"), (xgboost.sklearn, "train")]


def _wrap(train: Callable[..., Any]) -> Callable[..., Any]:
    def audited_train(*args: Any, **kwargs: Any) -> Any:
        callbacks = list(kwargs.get("callbacks") or ())
        ours = [c for c in callbacks if isinstance(c, AuditXGBoostCallback)]
        for cb in ours:
            cb._attach(callbacks, args, kwargs)
        try:
            return train(*args, **kwargs)
        except BaseException as exc:
            for cb in ours:
                cb._fail(exc)
            raise

    audited_train.__wrapped__ = train  # type: ignore[attr-defined]
    return audited_train


_PATCH = EntryPointPatch(_targets, _wrap)


def install() -> None:
    """Wrap ``xgboost.train`` (done when this module is imported; idempotent)."""
    _PATCH.install()


def uninstall() -> None:
    """Remove the wrap of ``xgboost.train``: failures are then no longer logged."""
    _PATCH.uninstall()


install()


def _flatten_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``*_param`` sections of ``Booster.save_config()``, merged (XGBoost's full settings)."""
    found: dict[str, Any] = {}

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key.endswith("_param") and isinstance(value, Mapping):
                    for name, setting in value.items():
                        found.setdefault(name, setting)
                else:
                    walk(value)

    walk(config)
    return found


class AuditXGBoostCallback(TrainingCallback):  # type: ignore[misc]
    """Logs one XGBoost training run to the audit journal (see the module's text)."""

    def __init__(
        self,
        *,
        dataset: str | None = None,
        model: str | None = None,
        run: TrainingRun | None = None,
        logger: logging.Logger | str | None = None,
        run_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.run = make_run(
            run, logger, dataset, model or "xgboost.Booster", run_kwargs, every_call=False
        )
        self._callbacks: Sequence[Any] = ()
        self._params: Mapping[str, Any] = {}
        self._rounds: int | None = None
        self._data: list[tuple[str, Any]] = []
        self._last: dict[str, float | int] = {}
        self._iterations = 0
        self._open = False

    # ------------------------------------------------------------- from the wrapper

    def _attach(self, callbacks: Sequence[Any], args: tuple[Any, ...], kwargs: Any) -> None:
        self._callbacks = callbacks
        self._params = dict(args[0] if args else kwargs.get("params") or {})
        rounds = args[2] if len(args) > 2 else kwargs.get("num_boost_round", 10)
        self._rounds = int(rounds)
        dtrain = args[1] if len(args) > 1 else kwargs.get("dtrain")
        self._data = [("train", dtrain)] + [
            (str(name), matrix) for matrix, name in kwargs.get("evals") or ()
        ]

    def _fail(self, exc: BaseException) -> None:
        if self._open:
            self._open = False
            self.run.__exit__(type(exc), exc, exc.__traceback__)

    # ------------------------------------------------------------- XGBoost's hooks

    def before_training(self, model: Any) -> Any:
        self.run.start()
        self._open = True
        self._iterations = 0
        self._log_data()
        self._log_params(model)
        return model

    def after_iteration(self, model: Any, epoch: int, evals_log: Mapping[str, Any]) -> bool:
        metrics: dict[str, float | int] = {}
        for data, results in evals_log.items():
            for metric, values in results.items():
                value = scalar(values[-1][0] if isinstance(values[-1], tuple) else values[-1])
                if value is not None:
                    metrics[f"{data}-{metric}"] = value
        self._last = metrics
        self._iterations += 1
        self.run.progress(epoch, **metrics)
        return False  # the audit never changes the training

    def after_training(self, model: Any) -> Any:
        try:
            self._log_checkpoints()
            stopper = next((c for c in self._callbacks if isinstance(c, EarlyStopping)), None)
            best = _attr_int(model, "best_iteration")
            if stopper is not None and best is not None:
                lasts: dict[str, Any] = {f"last_{k}": v for k, v in self._last.items()}
                self.run.evaluated(
                    reasoning=(
                        f"XGBoost's evaluation at the best iteration {best} "
                        f"(best_score {model.attr('best_score')}); last iteration's: "
                        + ", ".join(f"{k} {v}" for k, v in self._last.items())
                        + "."
                    ),
                    best_iteration=best,
                    best_score=_attr_float(model, "best_score"),
                    **lasts,
                )
            elif self._last:
                last: dict[str, Any] = dict(self._last)
                self.run.evaluated(**last)
            if stopper is not None and stopper.current_rounds >= stopper.rounds:
                self._early_stopped(stopper, model, best)
            self.run.__exit__(None, None, None)
        finally:
            self._open = False
            self._callbacks, self._data = (), []  # no reference to the data after the run
        return model

    # ------------------------------------------------------------- the lines

    def _log_data(self) -> None:
        sizes: dict[str, Any] = {}
        for name, matrix in self._data:
            try:
                sizes[name] = {"rows": int(matrix.num_row()), "columns": int(matrix.num_col())}
            except Exception:  # not a DMatrix (a QuantileDMatrix on another device...)
                continue
        if not sizes:
            return
        text = "; ".join(f"{n}: {s['rows']} rows, {s['columns']} columns" for n, s in sizes.items())
        self.run.decide(
            "DATASET_VALIDATED",
            "Dataset registered",
            reasoning=f"XGBoost DMatrix sizes: {text}.",
            metrics=sizes,
        )

    def _log_params(self, model: Any) -> None:
        given = dict(self._params)
        if self._rounds is not None:
            given.setdefault("num_boost_round", self._rounds)
        try:
            full = _flatten_config(json.loads(model.save_config()))
        except Exception:
            full = {}
        for cb in self._callbacks:
            if isinstance(cb, EarlyStopping):
                given.update(
                    settings_of(
                        cb,
                        "early_stopping",
                        ("rounds", "metric_name", "data", "maximize", "save_best"),
                    )
                )
        params = {**full, **given}
        self.run.hyperparameters(params, defaults_used=[k for k in full if k not in given])

    def _log_checkpoints(self) -> None:
        for cp in self._callbacks:
            if isinstance(cp, TrainingCheckPoint):
                pattern = os.path.join(glob.escape(cp._path), glob.escape(cp._name) + "_*")
                for path in sorted(glob.glob(pattern), key=os.path.getmtime):
                    saved(self.run, path)

    def _early_stopped(self, stopper: Any, model: Any, best: int | None) -> None:
        history = getattr(stopper, "stopping_history", {}) or {}
        data = next(iter(history), stopper.data)
        metric = next(iter(history.get(data, {})), stopper.metric_name)
        values = history.get(data, {}).get(metric, [])
        recent = ", ".join(
            str(scalar(v) if scalar(v) is not None else v) for v in values[-(stopper.rounds + 1) :]
        )
        early_stopped(
            self.run,
            "XGBoost EarlyStopping",
            monitor=f"{data}-{metric}",
            patience=stopper.rounds,
            unit="round",
            mode="max" if stopper.maximize else "min",
            min_delta=getattr(stopper, "_min_delta", None),
            best=_attr_float(model, "best_score"),
            best_at=best,
            last=self._last.get(f"{data}-{metric}"),
            stopped_at=self._iterations - 1,
            extra=(
                f"No improvement for {stopper.current_rounds} rounds; the last "
                f"{min(len(values), stopper.rounds + 1)} values: {recent}. Ran "
                f"{self._iterations} of {self._rounds} rounds."
            ),
        )


def _attr_int(model: Any, name: str) -> int | None:
    try:
        value = model.attr(name)
    except Exception:
        return None
    return int(value) if value is not None else None


def _attr_float(model: Any, name: str) -> float | None:
    try:
        value = model.attr(name)
        return float(value) if value is not None else None
    except Exception:
        return None
