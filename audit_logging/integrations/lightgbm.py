"""LightGBM: :func:`audit_lightgbm_callback`, a callback in LightGBM's callback protocol.

::

    booster = lgb.train(params, train_set, 500, valid_sets=[valid],
                        callbacks=[audit_lightgbm_callback(dataset="churn"),
                                   lgb.early_stopping(10)])
    # or LGBMRegressor().fit(X, y, eval_set=[...], callbacks=[audit_lightgbm_callback()])

Writes, through a :class:`~audit_logging.TrainingRun`: TRAINING_STARTED;
DATASET_VALIDATED with the rows and features of the training set as LightGBM
built it; HYPERPARAMETERS_SET with the parameters given and, named as
defaults, the rest of the booster's parameters (from the model's own
``parameters:`` section); every iteration's evaluation results
(``valid_0-l2``...) to ``TrainingRun.progress`` (the issue detector sees each;
a TRAINING_PROGRESS line every 100 iterations or 30 s, as TrainingRun
throttles, unless ``run_kwargs`` say otherwise); MODEL_EVALUATED with the booster's
``best_score``; then TRAINING_STOPPED quoting the early stopping's rounds,
``min_delta`` and best iteration when it stopped the run, else
TRAINING_COMPLETED.

LightGBM has no start, end or failure hook, and its early stopping raises
past later callbacks: this callback runs just before ``early_stopping``
(``order`` 29, so it sees every iteration), and ``lightgbm.train`` is
wrapped to write the first and closing lines, with the exception when
training fails, (as MLflow's autolog does); the wrap is installed when this module is
imported and passes calls without this callback through untouched
(:func:`uninstall` removes it; see
:class:`~audit_logging.integrations._common.EntryPointPatch` for why it is
not removed at the end of each run). One callback object per run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from audit_logging.integrations._common import (
    EntryPointPatch,
    MissingIntegrationError,
    early_stopped,
    make_run,
    scalar,
    settings_of,
)
from audit_logging.training import TrainingRun

try:
    import lightgbm
    import lightgbm.engine
    import lightgbm.sklearn
except ImportError as exc:
    raise MissingIntegrationError("lightgbm", "lightgbm") from exc

__all__ = ["AuditLightGBMCallback", "audit_lightgbm_callback"]

_EARLY_STOPPING_ORDER = 30  # lightgbm.callback.early_stopping's order


def _targets() -> list[tuple[Any, str]]:
    return [(lightgbm, "train"), (lightgbm.engine, "train"), (lightgbm.sklearn, "train")]


_NAMES = ("params", "train_set", "num_boost_round", "valid_sets", "valid_names")


def _wrap(train: Callable[..., Any]) -> Callable[..., Any]:
    def audited_train(*args: Any, **kwargs: Any) -> Any:
        given = dict(zip(_NAMES, args, strict=False)) | kwargs
        callbacks = list(given.get("callbacks") or ())
        ours = [c for c in callbacks if isinstance(c, AuditLightGBMCallback)]
        for cb in ours:
            cb._begin(given, callbacks)
        try:
            booster = train(*args, **kwargs)
        except BaseException as exc:
            for cb in ours:
                cb._fail(exc)
            raise
        for cb in ours:
            cb._end(booster)
        return booster

    audited_train.__wrapped__ = train  # type: ignore[attr-defined]
    return audited_train


_PATCH = EntryPointPatch(_targets, _wrap)


def install() -> None:
    """Wrap ``lightgbm.train`` (done when this module is imported; idempotent)."""
    _PATCH.install()


def uninstall() -> None:
    """Remove the wrap of ``lightgbm.train``: failures are then no longer logged."""
    _PATCH.uninstall()


install()


def _model_parameters(booster: Any) -> dict[str, str]:
    """The ``parameters:`` section of the model text: every parameter LightGBM used."""
    params: dict[str, str] = {}
    inside = False
    for line in booster.model_to_string().splitlines():
        if line == "parameters:":
            inside = True
        elif line == "end of parameters":
            break
        elif inside and line.startswith("[") and ": " in line:
            name, _, value = line[1:-1].partition(": ")
            params[name] = value
    return params


class AuditLightGBMCallback:
    """LightGBM callback logging one run (made by :func:`audit_lightgbm_callback`)."""

    order = _EARLY_STOPPING_ORDER - 1
    before_iteration = False

    def __init__(self, run: TrainingRun) -> None:
        self.run = run
        self._given: dict[str, Any] = {}
        self._callbacks: Sequence[Any] = ()
        self._first = True
        self._open = False
        self._iterations = 0
        self._last: dict[str, float | int] = {}

    def _begin(self, given: dict[str, Any], callbacks: Sequence[Any]) -> None:
        self._given = given
        self._callbacks = callbacks
        self._first = True
        self._iterations = 0
        self.run.start()
        self._open = True

    def __call__(self, env: Any) -> None:
        if self._first:
            self._first = False
            self._log_start(env)
        metrics: dict[str, float | int] = {}
        for item in env.evaluation_result_list or ():
            value = scalar(item[2])
            if value is not None:
                metrics[f"{item[0]}-{item[1]}"] = value
        self._last = metrics
        self._iterations += 1
        self.run.progress(env.iteration, **metrics)

    def _log_start(self, env: Any) -> None:
        train_set: Any = getattr(env.model, "train_set", None)
        rows: int | None
        try:
            rows, columns = int(train_set.num_data()), int(train_set.num_feature())
        except Exception:  # a Dataset already freed: its size is unknown, not invented
            rows = columns = None
        if rows is not None:
            self.run.decide(
                "DATASET_VALIDATED",
                "Dataset registered",
                reasoning=f"LightGBM training Dataset: {rows} rows, {columns} features.",
                metrics={"rows": rows, "columns": columns},
            )
        explicit = dict(env.params or {})
        explicit.setdefault("num_boost_round", self._given.get("num_boost_round", 100))
        try:
            full: dict[str, Any] = _model_parameters(env.model)
        except Exception:
            full = {}
        stopper = self._stopper()
        if stopper is not None:
            explicit.update(
                settings_of(
                    stopper, "early_stopping", ("stopping_rounds", "min_delta", "first_metric_only")
                )
            )
        params = {**full, **explicit}
        self.run.hyperparameters(params, defaults_used=[k for k in full if k not in explicit])

    def _stopper(self) -> Any:
        for cb in self._callbacks:
            if type(cb).__name__ == "_EarlyStoppingCallback":
                return cb
        return None

    def _end(self, booster: Any) -> None:
        try:
            best_score: dict[str, Any] = {
                f"{data}-{metric}": scalar(value)
                for data, results in (booster.best_score or {}).items()
                for metric, value in results.items()
            }
            if best_score:
                self.run.evaluated(
                    reasoning="LightGBM's best_score (at its best_iteration "
                    f"{getattr(booster, 'best_iteration', None)}, or the last iteration): "
                    + ", ".join(f"{k} {v}" for k, v in best_score.items())
                    + ".",
                    **best_score,
                )
            best = int(getattr(booster, "best_iteration", 0) or 0)
            rounds = int(self._given.get("num_boost_round", 100))
            params = self._given.get("params") or {}
            stopper = self._stopper()
            patience = (
                stopper.stopping_rounds
                if stopper is not None
                else params.get("early_stopping_round", params.get("early_stopping_rounds"))
            )
            if best > 0 and patience and self._iterations < rounds:
                min_delta = (
                    stopper.min_delta
                    if stopper is not None
                    else params.get("early_stopping_min_delta", 0.0)
                )
                watched = [k for k in best_score if not k.startswith("training-")]
                monitor = watched[0] if watched else "the validation metrics"
                early_stopped(
                    self.run,
                    "LightGBM early_stopping",
                    monitor=monitor,
                    patience=patience,
                    unit="iteration",
                    min_delta=min_delta,
                    best=best_score.get(monitor),
                    best_at=best,
                    last=self._last.get(monitor),
                    stopped_at=self._iterations,
                    extra=(
                        f"Every validation metric is watched ({', '.join(watched)}); "
                        f"best_iteration {best} (1-based, as LightGBM counts it). "
                        f"Ran {self._iterations} of {rounds} iterations."
                    ),
                )
            self.run.__exit__(None, None, None)
        finally:
            self._open = False
            self._given, self._callbacks = {}, ()  # no reference to the data after the run

    def _fail(self, exc: BaseException) -> None:
        if self._open:
            self._open = False
            self.run.__exit__(type(exc), exc, exc.__traceback__)


def audit_lightgbm_callback(
    *,
    dataset: str | None = None,
    model: str | None = None,
    run: TrainingRun | None = None,
    logger: logging.Logger | str | None = None,
    run_kwargs: Mapping[str, Any] | None = None,
) -> AuditLightGBMCallback:
    """A LightGBM callback logging the training run (see the module's text)."""
    return AuditLightGBMCallback(
        make_run(run, logger, dataset, model or "lightgbm.Booster", run_kwargs, every_call=False)
    )
