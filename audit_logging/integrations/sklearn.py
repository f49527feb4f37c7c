"""scikit-learn: :func:`audited_fit` and :func:`audited_partial_fit` log one training run.

::

    model = audited_fit(MLPClassifier(early_stopping=True), X, y,
                        dataset="churn", X_val=X_val, y_val=y_val, save_to="model.joblib")

writes, through a :class:`~audit_logging.TrainingRun`:

1. TRAINING_STARTED (model: the estimator's class; dataset: ``dataset``);
2. DATASET_VALIDATED for ``X``/``y``: rows, columns, missing values, classes,
   and a SHA-256 of the arrays' bytes (the fingerprint of the data trained on);
3. HYPERPARAMETERS_SET from ``get_params(deep=False)``, naming the parameters
   left at the class's defaults;
4. TRAINING_PROGRESS per iteration, from what the fitted estimator reports
   (``loss_curve_`` and ``validation_scores_`` of MLP, ``train_score_`` and
   ``validation_score_`` of the gradient boosting estimators), after ``fit``;
5. MODEL_EVALUATED with ``score(X_val, y_val)`` (accuracy for a classifier,
   R² for a regressor) when validation data is given;
6. MODEL_SAVED (path, SHA-256) when ``save_to`` is given (saved with joblib);
7. when the estimator stopped before its ``max_iter``/``n_estimators`` with
   ``n_iter_no_change`` set: TRAINING_STOPPED quoting its monitor, patience
   (``n_iter_no_change``), ``tol`` and best value; else TRAINING_COMPLETED.

An exception in ``fit`` logs TRAINING_FAILED and propagates.
:func:`audited_partial_fit` does the same for an incremental loop: each
``partial_fit`` call goes to ``TrainingRun.progress`` (lines throttled as
TrainingRun does, every 100 calls or 30 s, unless ``run_kwargs`` say otherwise).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from audit_logging.integrations._common import (
    defaults_of,
    early_stopped,
    make_run,
    require,
    same_value,
    saved,
    scalar,
)
from audit_logging.training import TrainingRun

__all__ = ["PartialFit", "audited_fit", "audited_partial_fit"]


def _np() -> Any:
    return require("numpy", "sklearn")


def hyperparameters(run: TrainingRun, estimator: Any) -> None:
    """HYPERPARAMETERS_SET from ``get_params(deep=False)``, defaults named."""
    params = dict(estimator.get_params(deep=False))
    defaults = defaults_of(type(estimator))
    used = [k for k, v in params.items() if k in defaults and same_value(v, defaults[k])]
    run.hyperparameters(params, defaults_used=used)


def describe_data(run: TrainingRun, X: Any, y: Any, name: str | None) -> None:
    """DATASET_VALIDATED for in-memory arrays: shape, missing values, classes, SHA-256."""
    np = _np()
    digest = hashlib.sha256()
    facts: dict[str, Any] = {"name": name}
    problems: list[str] = []
    arrays = [("X", X)] + ([("y", y)] if y is not None else [])
    for label, value in arrays:
        array = np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value)
        if array.dtype == object:
            digest.update(repr(array.tolist()).encode("utf-8"))
        else:
            digest.update(np.ascontiguousarray(array).tobytes())
        facts[f"{label}_shape"] = list(array.shape)
        if array.dtype.kind in "fc":
            missing = int(np.isnan(array).sum())
            facts[f"{label}_missing"] = missing
            if missing:
                problems.append(f"{missing} missing values in {label}")
    rows = facts["X_shape"][0] if facts["X_shape"] else 0
    columns = facts["X_shape"][1] if len(facts["X_shape"]) > 1 else 1
    facts.update(rows=rows, columns=columns, sha256=digest.hexdigest())
    if y is not None:
        y_array = np.asarray(y)
        if len(y_array) != rows:
            problems.append(f"y has {len(y_array)} rows, X {rows}")
        if y_array.dtype.kind in "iub" or y_array.dtype == object:
            labels, counts = np.unique(y_array, return_counts=True)
            if len(labels) <= 100:
                facts["classes"] = {str(k): int(c) for k, c in zip(labels, counts, strict=True)}
    text = f"{rows} rows, {columns} columns"
    if "classes" in facts:
        text += ", classes " + ", ".join(f"{k}: {c}" for k, c in facts["classes"].items())
    text += f"; SHA-256 of the arrays {facts['sha256']}."
    if problems:
        run.decide(
            "DATASET_VALIDATED",
            "Validation found problems",
            reasoning="; ".join(problems) + ". " + text,
            metrics=facts,
        )
    else:
        run.decide("DATASET_VALIDATED", "Validation passed", reasoning=text, metrics=facts)


def score_name(estimator: Any, prefix: str = "val_") -> str:
    kind = getattr(estimator, "_estimator_type", None)
    if kind is None:
        tags = getattr(estimator, "__sklearn_tags__", None)
        kind = getattr(tags(), "estimator_type", None) if callable(tags) else None
    return prefix + {"classifier": "accuracy", "regressor": "r2"}.get(str(kind), "score")


def _curves(estimator: Any) -> dict[str, Sequence[Any]]:
    """The per-iteration values a fitted estimator keeps, by journal name."""
    found: dict[str, Sequence[Any]] = {}
    for attribute, name in (
        ("loss_curve_", "train_loss"),
        ("validation_scores_", "val_score"),
        ("train_score_", "train_score"),
        ("validation_score_", "val_score"),
    ):
        values = getattr(estimator, attribute, None)
        if values is not None and len(values) and name not in found:
            found[name] = list(values)
    return found


def _progress(run: TrainingRun, estimator: Any) -> dict[str, Sequence[Any]]:
    curves = _curves(estimator)
    length = max((len(v) for v in curves.values()), default=0)
    for i in range(length):
        metrics = {k: scalar(v[i]) for k, v in curves.items() if i < len(v)}
        run.progress(i + 1, **metrics)
    return curves


def _early_stop(run: TrainingRun, estimator: Any, curves: Mapping[str, Sequence[Any]]) -> bool:
    """TRAINING_STOPPED when the fitted estimator stopped before its iteration budget."""
    params = estimator.get_params(deep=False)
    patience = params.get("n_iter_no_change")
    if patience is None:
        return False
    if "max_iter" in params and hasattr(estimator, "n_iter_"):
        done, budget, unit = int(estimator.n_iter_), params["max_iter"], "iteration"
    elif "n_estimators" in params and hasattr(estimator, "n_estimators_"):
        done, budget, unit = int(estimator.n_estimators_), params["n_estimators"], "iteration"
    else:
        return False
    if budget is None or done >= budget:
        return False
    if params.get("early_stopping") is False:
        monitor = "train_loss"  # MLP and SGD then watch the training loss
    else:
        monitor = "val_score" if "val_score" in curves else "train_loss"
    values = [scalar(v) for v in curves.get(monitor, [])]
    best = best_at = None
    numbers = [(i + 1, v) for i, v in enumerate(values) if v is not None]
    if numbers:
        pick = min if monitor == "train_loss" else max
        best_at, best = pick(numbers, key=lambda pair: pair[1])
    early_stopped(
        run,
        f"{type(estimator).__name__} (n_iter_no_change)",
        monitor=monitor,
        patience=patience,
        unit=unit,
        mode="min" if monitor == "train_loss" else "max",
        min_delta=params.get("tol"),
        best=best,
        best_at=best_at,
        last=numbers[-1][1] if numbers else None,
        stopped_at=done,
        extra=f"Ran {done} of at most {budget} {unit}s.",
    )
    return True


def _score(estimator: Any, X_val: Any, y_val: Any) -> dict[str, Any]:
    name = score_name(estimator)
    value = scalar(estimator.score(X_val, y_val))
    return {
        "reasoning": f"{type(estimator).__name__}.score(X_val, y_val) on {len(X_val)} "
        f"validation rows: {name} {value}.",
        name: value,
    }


def _save(run: TrainingRun, estimator: Any, path: str | os.PathLike[str]) -> None:
    joblib = require("joblib", "sklearn")
    joblib.dump(estimator, path)
    saved(run, path)


def audited_fit(
    estimator: Any,
    X: Any,
    y: Any = None,
    *,
    dataset: str | None = None,
    X_val: Any = None,
    y_val: Any = None,
    save_to: str | os.PathLike[str] | None = None,
    run: TrainingRun | None = None,
    logger: logging.Logger | str | None = None,
    run_kwargs: Mapping[str, Any] | None = None,
    **fit_params: Any,
) -> Any:
    """``estimator.fit(X, y, **fit_params)`` with the journal lines above; returns the estimator."""
    run = make_run(run, logger, dataset, type(estimator).__name__, run_kwargs)
    with run:
        describe_data(run, X, y, dataset)
        hyperparameters(run, estimator)
        estimator.fit(X, y, **fit_params)
        curves = _progress(run, estimator)
        if X_val is not None and y_val is not None:
            run.evaluated(**_score(estimator, X_val, y_val))
        if save_to is not None:
            _save(run, estimator, save_to)
        _early_stop(run, estimator, curves)  # the closing line if it stopped early
    return estimator


class PartialFit:
    """What :func:`audited_partial_fit` yields: call :meth:`partial_fit` once per batch."""

    def __init__(self, run: TrainingRun, estimator: Any, X_val: Any, y_val: Any) -> None:
        self.run = run
        self.estimator = estimator
        self.X_val = X_val
        self.y_val = y_val
        self.samples_seen = 0
        self.calls = 0

    def partial_fit(self, X: Any, y: Any = None, **kwargs: Any) -> Any:
        """``estimator.partial_fit``, then one TRAINING_PROGRESS line (and issue detection)."""
        self.estimator.partial_fit(X, y, **kwargs)
        self.calls += 1
        self.samples_seen += len(X)
        metrics: dict[str, Any] = {"samples_seen": self.samples_seen}
        loss = scalar(getattr(self.estimator, "loss_", None))
        if loss is not None:
            metrics["train_loss"] = loss
        if self.X_val is not None and self.y_val is not None:
            metrics[score_name(self.estimator)] = scalar(
                self.estimator.score(self.X_val, self.y_val)
            )
        self.run.progress(self.calls, **metrics)
        return self.estimator

    @property
    def should_stop(self) -> bool:
        """The run's detector found a reason to stop (a plateau, by default)."""
        return self.run.should_stop


@contextmanager
def audited_partial_fit(
    estimator: Any,
    *,
    dataset: str | None = None,
    X_val: Any = None,
    y_val: Any = None,
    save_to: str | os.PathLike[str] | None = None,
    run: TrainingRun | None = None,
    logger: logging.Logger | str | None = None,
    run_kwargs: Mapping[str, Any] | None = None,
) -> Iterator[PartialFit]:
    """A ``partial_fit`` loop as one run::

        with audited_partial_fit(SGDClassifier(), X_val=Xv, y_val=yv) as fit:
            for X, y in batches:
                fit.partial_fit(X, y, classes=[0, 1])
                if fit.should_stop:
                    break

    TRAINING_STARTED and HYPERPARAMETERS_SET on entry, one TRAINING_PROGRESS
    per call (samples seen, ``loss_`` if the estimator has one, the validation
    score), then MODEL_EVALUATED, MODEL_SAVED (``save_to``) and the closing line.
    """
    run = make_run(run, logger, dataset, type(estimator).__name__, run_kwargs, every_call=False)
    with run:
        hyperparameters(run, estimator)
        fit = PartialFit(run, estimator, X_val, y_val)
        yield fit
        if fit.calls and X_val is not None and y_val is not None:
            run.evaluated(**_score(estimator, X_val, y_val))
        if save_to is not None:
            _save(run, estimator, save_to)
