"""Keras 3: :class:`AuditKerasCallback`, a ``keras.callbacks.Callback``.

::

    model.fit(x, y, validation_split=0.2, epochs=50,
              callbacks=[AuditKerasCallback(dataset="churn"),
                         keras.callbacks.EarlyStopping(patience=3)])

Writes, through a :class:`~audit_logging.TrainingRun`: TRAINING_STARTED
(model: the model's class and name); DATASET_VALIDATED with the shape of
``x`` (and of the validation data) when they are arrays; HYPERPARAMETERS_SET
from the optimizer's ``get_config()`` (the values equal to a default
optimizer's named as defaults), the loss and ``fit``'s epochs and batch
size; TRAINING_PROGRESS per epoch with the logs Keras reports (``loss``,
``val_loss``...); MODEL_SAVED for each file a ``ModelCheckpoint`` wrote;
MODEL_EVALUATED with the last epoch's validation results (and for each
``model.evaluate(..., callbacks=[this])`` after training); then
TRAINING_STOPPED quoting ``EarlyStopping``'s monitor, patience, min_delta,
best value and epoch when it stopped the run, else TRAINING_COMPLETED.

Keras calls no callback when ``fit`` raises and a callback cannot see the
other callbacks: ``keras.Model.fit`` is wrapped to see the ``callbacks`` and
``x`` given to ``fit`` and to log TRAINING_FAILED (TRAINING_STOPPED for
Ctrl-C) with the exception, (as MLflow's autolog does); the wrap is installed when this module is
imported and passes calls without this callback through untouched
(:func:`uninstall` removes it; see
:class:`~audit_logging.integrations._common.EntryPointPatch` for why it is
not removed at the end of each run). One callback object per run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from audit_logging.integrations._common import (
    EntryPointPatch,
    MissingIntegrationError,
    early_stopped,
    make_run,
    same_value,
    saved,
    scalar,
    scalars,
    settings_of,
)
from audit_logging.training import TrainingRun

try:
    import keras
except ImportError as exc:
    raise MissingIntegrationError("keras", "keras") from exc

__all__ = ["AuditKerasCallback"]

_KERAS_ES = (
    "monitor",
    "mode",
    "patience",
    "min_delta",
    "baseline",
    "restore_best_weights",
    "start_from_epoch",
)

_FIT_NAMES = (
    "x",
    "y",
    "batch_size",
    "epochs",
    "verbose",
    "callbacks",
    "validation_split",
    "validation_data",
)


def _wrap(fit: Callable[..., Any]) -> Callable[..., Any]:
    def audited_fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        given = dict(zip(_FIT_NAMES, args, strict=False)) | kwargs
        callbacks = list(given.get("callbacks") or ())
        ours = [c for c in callbacks if isinstance(c, AuditKerasCallback)]
        for cb in ours:
            cb._given = given
            cb._callbacks = callbacks
        try:
            return fit(self, *args, **kwargs)
        except BaseException as exc:
            for cb in ours:
                cb._fail(exc)
            raise

    audited_fit.__wrapped__ = fit  # type: ignore[attr-defined]
    return audited_fit


_PATCH = EntryPointPatch(lambda: [(keras.Model, "fit")], _wrap)


def install() -> None:
    """Wrap ``keras.Model.fit`` (done when this module is imported; idempotent)."""
    _PATCH.install()


def uninstall() -> None:
    """Remove the wrap of ``keras.Model.fit``: failures are then no longer logged."""
    _PATCH.uninstall()


install()


def _shape(value: Any) -> list[int] | None:
    shape = getattr(value, "shape", None)
    try:
        return [int(d) for d in shape] if shape is not None else None
    except TypeError:
        return None


class AuditKerasCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """Logs one Keras ``fit`` to the audit journal (see the module's text)."""

    def __init__(
        self,
        *,
        dataset: str | None = None,
        run: TrainingRun | None = None,
        logger: logging.Logger | str | None = None,
        run_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.run = make_run(run, logger, dataset, None, run_kwargs)
        self._given: dict[str, Any] = {}
        self._callbacks: Sequence[Any] = ()
        self._open = False
        self._in_fit = False
        self._epochs = 0
        self._last: dict[str, float | int] = {}
        self._last_epoch: int | None = None
        self._seen: dict[str, tuple[float, int]] = {}

    # ------------------------------------------------------------------ hooks

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        if self.run.model is None:
            self.run.model = f"{type(self.model).__name__} {self.model.name}"
        self.run.start()
        self._open = self._in_fit = True
        self._epochs = 0
        self._log_data()
        self._log_params()

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._log_checkpoints()

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._last = scalars(logs or {})
        self._last_epoch = epoch
        self._epochs += 1
        self.run.progress(epoch, **self._last)

    def on_test_end(self, logs: Mapping[str, Any] | None = None) -> None:
        if self._in_fit:
            return  # fit's validation: its results are in the epoch's progress line
        results: dict[str, Any] = scalars(logs or {})
        self.run.evaluated(
            reasoning="Keras model.evaluate(): "
            + ", ".join(f"{k} {v}" for k, v in results.items())
            + ".",
            **results,
        )

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        self._in_fit = False
        try:
            self._log_checkpoints()
            validation: dict[str, Any] = {
                k: v for k, v in self._last.items() if k.startswith("val_")
            }
            if validation:
                self.run.evaluated(
                    reasoning=f"Keras's validation at the last epoch ({self._last_epoch}): "
                    + ", ".join(f"{k} {v}" for k, v in validation.items())
                    + ".",
                    **validation,
                )
            stopper = next(
                (c for c in self._callbacks if isinstance(c, keras.callbacks.EarlyStopping)),
                None,
            )
            if stopper is not None and stopper.stopped_epoch > 0:
                self._early_stopped(stopper)
            self.run.__exit__(None, None, None)
        finally:
            self._open = False
            self._given, self._callbacks = {}, ()  # no reference to the data after the run

    # ------------------------------------------------------------------ the wrapper's

    def _fail(self, exc: BaseException) -> None:
        self._in_fit = False
        self._given, self._callbacks = {}, ()
        if self._open:
            self._open = False
            self.run.__exit__(type(exc), exc, exc.__traceback__)

    # ------------------------------------------------------------------ the lines

    def _log_data(self) -> None:
        facts: dict[str, Any] = {}
        x_shape = _shape(self._given.get("x"))
        if x_shape is None:
            return  # a tf.data / generator input: its size is not known before it is read
        facts["x_shape"] = x_shape
        facts["rows"] = x_shape[0] if x_shape else None
        split = self._given.get("validation_split") or 0.0
        if split:
            facts["validation_split"] = split
        val = self._given.get("validation_data")
        if isinstance(val, (tuple, list)) and val:
            facts["validation_x_shape"] = _shape(val[0])
        text = f"x of shape {x_shape}"
        if split:
            text += f", of which the last {split:g} is held out for validation"
        if facts.get("validation_x_shape"):
            text += f"; validation x of shape {facts['validation_x_shape']}"
        self.run.decide(
            "DATASET_VALIDATED", "Dataset registered", reasoning=text + ".", metrics=facts
        )

    def _log_params(self) -> None:
        optimizer = self.model.optimizer
        params: dict[str, Any] = {}
        defaults: list[str] = []
        if optimizer is not None:
            config = dict(optimizer.get_config())
            try:
                default = dict(type(optimizer)().get_config())
            except Exception:
                default = {}
            for key, value in config.items():
                name = f"optimizer.{key}"
                params[name] = scalar(value) if scalar(value) is not None else value
                if key in default and same_value(value, default[key]):
                    defaults.append(name)
        loss = getattr(self.model, "loss", None)
        if loss is not None:
            params["loss"] = loss if isinstance(loss, str) else getattr(loss, "name", repr(loss))
        for key, fallback in (("epochs", 1), ("batch_size", 32)):
            if self._given.get(key) is not None:
                params[key] = self._given[key]
            else:
                params[key] = fallback
                defaults.append(key)
        for cb in self._callbacks:
            if isinstance(cb, keras.callbacks.EarlyStopping):
                params.update(settings_of(cb, "early_stopping", _KERAS_ES))
        self.run.hyperparameters(params, defaults_used=defaults)

    def _log_checkpoints(self) -> None:
        if self._last_epoch is None:
            return
        for cp in self._callbacks:
            if not isinstance(cp, keras.callbacks.ModelCheckpoint):
                continue
            try:
                path = cp.filepath.format(epoch=self._last_epoch + 1, **self._last)
                stat = os.stat(path)
            except (KeyError, IndexError, ValueError, OSError):
                continue  # not written (save_best_only, another frequency) or a name we cannot form
            mark = (stat.st_mtime, stat.st_size)
            if self._seen.get(path) != mark:
                self._seen[path] = mark
                saved(self.run, path)

    def _early_stopped(self, stopper: Any) -> None:
        restored = (
            f" The weights of epoch {stopper.best_epoch} were restored."
            if stopper.restore_best_weights and stopper.best_weights is not None
            else ""
        )
        early_stopped(
            self.run,
            "Keras EarlyStopping",
            monitor=stopper.monitor,
            patience=stopper.patience,
            unit="epoch",
            mode=_mode(stopper),
            min_delta=abs(stopper.min_delta),
            best=stopper.best,
            best_at=stopper.best_epoch,
            last=self._last.get(stopper.monitor),
            stopped_at=stopper.stopped_epoch,
            extra=(
                f"No improvement for {stopper.wait} epochs; ran {self._epochs} of "
                f"{self._given.get('epochs', 1)} epochs.{restored}"
            ),
        )


def _mode(stopper: Any) -> str:
    """The callback's mode, with what ``"auto"`` resolved to (from its comparison function)."""
    op = getattr(getattr(stopper, "monitor_op", None), "__name__", "")
    resolved = {"less": "min", "greater": "max"}.get(op)
    mode = str(stopper.mode)
    return f"{mode} ({resolved})" if mode == "auto" and resolved else mode
