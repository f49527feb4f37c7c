"""Hugging Face ``transformers``: :class:`AuditTrainerCallback`, a ``TrainerCallback``.

::

    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=valid,
                      callbacks=[AuditTrainerCallback(), EarlyStoppingCallback(3)])
    trainer.train()

Writes, through a :class:`~audit_logging.TrainingRun`: TRAINING_STARTED
(model: the model's class; dataset: the training ``datasets.Dataset``'s name
when it has one); DATASET_VALIDATED with the rows and columns of the training
and evaluation datasets; HYPERPARAMETERS_SET from ``TrainingArguments``
(the fields equal to their defaults named as defaults); TRAINING_PROGRESS for
each ``on_log`` (what the Trainer logged: ``loss``, ``learning_rate``,
``eval_loss``..., at its ``global_step``); MODEL_SAVED for each checkpoint
folder, with the SHA-256 of each file and one SHA-256 over their manifest;
MODEL_EVALUATED with the last evaluation's metrics (and for each
``trainer.evaluate()`` after training); then TRAINING_STOPPED quoting
``EarlyStoppingCallback``'s metric, patience, threshold and
``state.best_metric`` when it stopped the run, else TRAINING_COMPLETED.

The Trainer calls no callback when training fails and a callback does not see
the Trainer: ``Trainer.train`` is wrapped to find the other callbacks and
datasets and to log TRAINING_FAILED (TRAINING_STOPPED for Ctrl-C) with the
exception, (as MLflow's autolog does); the wrap is installed when this module is
imported and passes calls without this callback through untouched
(:func:`uninstall` removes it; see
:class:`~audit_logging.integrations._common.EntryPointPatch` for why it is
not removed at the end of each run). One callback object per run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from audit_logging.integrations._common import (
    EntryPointPatch,
    MissingIntegrationError,
    defaults_of,
    early_stopped,
    make_run,
    same_value,
    saved,
    scalars,
    settings_of,
)
from audit_logging.training import TrainingRun

try:
    import transformers
    from transformers import EarlyStoppingCallback, TrainerCallback, TrainingArguments
except ImportError as exc:
    raise MissingIntegrationError("transformers", "transformers") from exc

__all__ = ["AuditTrainerCallback"]

_CHECKPOINT_PREFIX = "checkpoint"  # transformers.trainer_utils.PREFIX_CHECKPOINT_DIR


def _wrap(train: Callable[..., Any]) -> Callable[..., Any]:
    def audited_train(self: Any, *args: Any, **kwargs: Any) -> Any:
        ours = [c for c in self.callback_handler.callbacks if isinstance(c, AuditTrainerCallback)]
        for cb in ours:
            cb._trainer = self
        try:
            return train(self, *args, **kwargs)
        except BaseException as exc:
            for cb in ours:
                cb._fail(exc)
            raise

    audited_train.__wrapped__ = train  # type: ignore[attr-defined]
    return audited_train


_PATCH = EntryPointPatch(lambda: [(transformers.Trainer, "train")], _wrap)


def install() -> None:
    """Wrap ``transformers.Trainer.train`` (done when this module is imported; idempotent)."""
    _PATCH.install()


def uninstall() -> None:
    """Remove the wrap of ``transformers.Trainer.train``: failures are then no longer logged."""
    _PATCH.uninstall()


install()


def _dataset_facts(dataset: Any) -> dict[str, Any] | None:
    if dataset is None:
        return None
    facts: dict[str, Any] = {}
    try:
        facts["rows"] = len(dataset)
    except TypeError:  # an IterableDataset: its size is not known before it is read
        facts["rows"] = None
    columns = getattr(dataset, "column_names", None)
    if columns is not None:
        facts["columns"] = list(columns)
    info = getattr(dataset, "info", None)
    name = getattr(info, "dataset_name", None) or getattr(info, "builder_name", None)
    if name:
        facts["name"] = name
    return facts


class AuditTrainerCallback(TrainerCallback):  # type: ignore[misc]
    """Logs one ``Trainer.train()`` to the audit journal (see the module's text)."""

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
        self._trainer: Any = None
        self._open = False
        self._training = False
        self._last_eval: dict[str, Any] = {}

    # ------------------------------------------------------------------ hooks

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model = kwargs.get("model")
        if self.run.model is None and model is not None:
            self.run.model = type(model).__name__
        train = _dataset_facts(getattr(self._trainer, "train_dataset", None))
        if self.run.dataset_name is None and train is not None and train.get("name"):
            self.run.dataset_name = train["name"]
        self.run.start()
        self._open = self._training = True
        self._log_data(train)
        self._log_args(args)

    def on_log(
        self,
        args: Any,
        state: Any,
        control: Any,
        logs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if self._training and logs:
            self.run.progress(state.global_step, **scalars(logs))

    def on_evaluate(
        self,
        args: Any,
        state: Any,
        control: Any,
        metrics: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        results: dict[str, Any] = scalars(metrics or {})
        if self._training:
            self._last_eval = results  # its TRAINING_PROGRESS line comes from on_log
        elif results:
            self.run.evaluated(
                reasoning="Trainer.evaluate(): "
                + ", ".join(f"{k} {v}" for k, v in results.items())
                + ".",
                **results,
            )

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        folder = os.path.join(args.output_dir, f"{_CHECKPOINT_PREFIX}-{state.global_step}")
        if os.path.isdir(folder):
            saved(self.run, folder)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._training = False
        try:
            if self._last_eval:
                self.run.evaluated(
                    reasoning=f"The Trainer's last evaluation (step {state.global_step}): "
                    + ", ".join(f"{k} {v}" for k, v in self._last_eval.items())
                    + ".",
                    **self._last_eval,
                )
            stopper = self._stopper()
            if (
                stopper is not None
                and stopper.early_stopping_patience_counter >= stopper.early_stopping_patience
            ):
                self._early_stopped(args, state, stopper)
            self.run.__exit__(None, None, None)
        finally:
            self._open = False

    # ------------------------------------------------------------------ the wrapper's

    def _fail(self, exc: BaseException) -> None:
        self._training = False
        if self._open:
            self._open = False
            self.run.__exit__(type(exc), exc, exc.__traceback__)

    def _stopper(self) -> Any:
        handler = getattr(self._trainer, "callback_handler", None)
        for cb in getattr(handler, "callbacks", ()):
            if isinstance(cb, EarlyStoppingCallback):
                return cb
        return None

    # ------------------------------------------------------------------ the lines

    def _log_data(self, train: dict[str, Any] | None) -> None:
        facts: dict[str, Any] = {}
        if train is not None:
            facts["train"] = train
        evaluation = getattr(self._trainer, "eval_dataset", None)
        if isinstance(evaluation, Mapping):
            for name, ds in evaluation.items():
                facts[f"eval_{name}"] = _dataset_facts(ds)
        elif evaluation is not None:
            facts["eval"] = _dataset_facts(evaluation)
        if not facts:
            return
        text = "; ".join(
            f"{k}: {v.get('rows')} rows" + (f", columns {v['columns']}" if v.get("columns") else "")
            for k, v in facts.items()
            if v is not None
        )
        self.run.decide(
            "DATASET_VALIDATED", "Dataset registered", reasoning=text + ".", metrics=facts
        )

    def _log_args(self, args: Any) -> None:
        values = args.to_dict()
        declared = defaults_of(TrainingArguments)
        reference: dict[str, Any] = {}
        for key, default in declared.items():
            reference[key] = getattr(default, "value", default)  # enums as to_dict() spells them
        defaults = [k for k, v in values.items() if k in reference and same_value(v, reference[k])]
        stopper = self._stopper()
        if stopper is not None:
            values.update(
                settings_of(
                    stopper,
                    "early_stopping",
                    ("early_stopping_patience", "early_stopping_threshold"),
                )
            )
        self.run.hyperparameters(values, defaults_used=defaults)

    def _early_stopped(self, args: Any, state: Any, stopper: Any) -> None:
        metric = args.metric_for_best_model or "loss"
        monitor = metric if metric.startswith("eval_") else f"eval_{metric}"
        best_step = getattr(state, "best_global_step", None)
        early_stopped(
            self.run,
            "transformers EarlyStoppingCallback",
            monitor=monitor,
            patience=stopper.early_stopping_patience,
            unit="evaluation",
            mode="max" if args.greater_is_better else "min",
            min_delta=stopper.early_stopping_threshold,
            best=state.best_metric,
            best_at=best_step,
            last=self._last_eval.get(monitor),
            stopped_at=state.global_step,
            extra=(
                f"{stopper.early_stopping_patience_counter} evaluations without improvement; "
                f"stopped at global step {state.global_step} of {state.max_steps}"
                + (
                    f"; best checkpoint {state.best_model_checkpoint}"
                    if state.best_model_checkpoint
                    else ""
                )
                + "."
            ),
        )
