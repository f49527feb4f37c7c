"""Lightning: :class:`AuditCallback`, a ``lightning.pytorch.Callback``.

::

    trainer = L.Trainer(max_epochs=50, callbacks=[AuditCallback(), EarlyStopping("val_loss")])
    trainer.fit(model, datamodule=dm)

Writes, through a :class:`~audit_logging.TrainingRun` (run-level lines from
global rank 0 only, a failure from the rank where it happened; the callback
tells :mod:`audit_logging.context` the trainer's ranks and never calls a
collective):
TRAINING_STARTED (model: the LightningModule's class; dataset: the
DataModule's class unless named); DATASET_VALIDATED with the sizes of the
training and validation datasets; HYPERPARAMETERS_SET from the module's
``hparams`` (those equal to its ``__init__`` defaults named as defaults),
the optimizer's settings and ``max_epochs``; TRAINING_PROGRESS per epoch
from ``trainer.callback_metrics``; MODEL_SAVED for each file a
``ModelCheckpoint`` wrote (path, SHA-256); MODEL_EVALUATED with the last
validation metrics and after each ``trainer.test``/``validate``; then
TRAINING_STOPPED quoting ``EarlyStopping``'s monitor, mode, patience,
min_delta, best score and its own stopping message when it stopped the run,
else TRAINING_COMPLETED; TRAINING_FAILED (or TRAINING_STOPPED for Ctrl-C)
from Lightning's ``on_exception`` hook.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from audit_logging import context
from audit_logging.integrations._common import (
    MissingIntegrationError,
    defaults_of,
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
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
except ImportError as exc:
    raise MissingIntegrationError("lightning", "lightning") from exc

__all__ = ["AuditCallback"]

_LIGHTNING_ES = (
    "monitor",
    "mode",
    "patience",
    "min_delta",
    "stopping_threshold",
    "divergence_threshold",
    "check_finite",
)


def _size(loader: Any) -> int | None:
    """``len()`` of a dataloader's dataset (the first of a list of loaders), if it has one."""
    if isinstance(loader, (list, tuple)):
        loader = loader[0] if loader else None
    dataset = getattr(loader, "dataset", None)
    try:
        return len(dataset) if dataset is not None else None
    except TypeError:  # an IterableDataset
        return None


class AuditCallback(pl.Callback):  # type: ignore[misc]
    """Logs one Lightning ``fit`` to the audit journal (see the module's text)."""

    def __init__(
        self,
        *,
        dataset: str | None = None,
        run: TrainingRun | None = None,
        logger: logging.Logger | str | None = None,
        run_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        # With strategy="ddp", fit() starts the other ranks from this process: they
        # inherit the session id through the environment, so the job is one run.
        context.export_session()
        self.run = make_run(run, logger, dataset, None, run_kwargs)
        self._open = False
        self._seen: dict[str, tuple[float, int]] = {}
        self._epochs = 0

    # ------------------------------------------------------------------ hooks

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.world_size > 1:  # beyond node 0 the environment does not say the rank
            context.set_rank(trainer.global_rank, trainer.local_rank, trainer.world_size)
        if self.run.model is None:
            self.run.model = type(pl_module).__name__
        if self.run.dataset_name is None and trainer.datamodule is not None:
            self.run.dataset_name = type(trainer.datamodule).__name__
        self.run.start()
        self._open = True
        self._epochs = 0
        self._log_data(trainer)
        self._log_params(trainer, pl_module)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._log_checkpoints(trainer)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._epochs += 1
        self.run.progress(trainer.current_epoch, **scalars(trainer.callback_metrics))

    def on_test_end(self, trainer: Any, pl_module: Any) -> None:
        self._evaluated("trainer.test()", trainer)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.state.fn == "validate":  # trainer.validate(), not fit's validation
            self._evaluated("trainer.validate()", trainer)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        try:
            self._log_checkpoints(trainer)
            validation = {
                k: v for k, v in scalars(trainer.callback_metrics).items() if k.startswith("val")
            }
            if validation:
                self._evaluated(
                    f"the validation at the last epoch ({trainer.current_epoch})",
                    trainer,
                    validation,
                )
            stopper = next((c for c in trainer.callbacks if isinstance(c, EarlyStopping)), None)
            if stopper is not None and trainer.should_stop and _stopped(stopper):
                self._early_stopped(trainer, stopper)
            self.run.__exit__(None, None, None)
        finally:
            self._open = False

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if self._open:
            self._open = False
            self.run.__exit__(type(exception), exception, exception.__traceback__)

    # ------------------------------------------------------------------ the lines

    def _evaluated(self, what: str, trainer: Any, metrics: Mapping[str, Any] | None = None) -> None:
        results: dict[str, Any] = (
            dict(metrics) if metrics is not None else scalars(trainer.callback_metrics)
        )
        if results:
            self.run.evaluated(
                reasoning=f"Lightning's metrics from {what}: "
                + ", ".join(f"{k} {v}" for k, v in results.items())
                + ".",
                **results,
            )

    def _log_data(self, trainer: Any) -> None:
        train = _size(trainer.train_dataloader)
        val = _size(trainer.val_dataloaders)
        if train is None and val is None:
            return
        facts = {"train_samples": train, "val_samples": val}
        text = f"{train} training samples" if train is not None else "training size unknown"
        if val is not None:
            text += f", {val} validation samples"
        self.run.decide(
            "DATASET_VALIDATED", "Dataset registered", reasoning=text + ".", metrics=facts
        )

    def _log_params(self, trainer: Any, pl_module: Any) -> None:
        params: dict[str, Any] = {}
        defaults: list[str] = []
        declared = defaults_of(type(pl_module))
        for key, value in dict(pl_module.hparams).items():
            params[key] = value
            if key in declared and same_value(value, declared[key]):
                defaults.append(key)
        for i, optimizer in enumerate(trainer.optimizers):
            prefix = "optimizer" if i == 0 else f"optimizer_{i}"
            params[prefix] = type(optimizer).__name__
            declared = defaults_of(type(optimizer))
            for key, value in optimizer.param_groups[0].items():
                if key == "params":
                    continue
                number = scalar(value)
                params[f"{prefix}.{key}"] = number if number is not None else value
                if key in declared and same_value(value, declared[key]):
                    defaults.append(f"{prefix}.{key}")
        params["max_epochs"] = trainer.max_epochs
        params["accumulate_grad_batches"] = trainer.accumulate_grad_batches
        params["precision"] = str(trainer.precision)
        for cb in trainer.callbacks:
            if isinstance(cb, EarlyStopping):
                params.update(settings_of(cb, "early_stopping", _LIGHTNING_ES))
        self.run.hyperparameters(params, defaults_used=defaults)

    def _log_checkpoints(self, trainer: Any) -> None:
        for cp in trainer.callbacks:
            if not isinstance(cp, ModelCheckpoint):
                continue
            paths = [*cp.best_k_models, cp.last_model_path]
            for path in paths:
                if not path:
                    continue
                try:
                    stat = os.stat(path)
                except OSError:
                    continue  # removed again (a better top-k replaced it)
                mark = (stat.st_mtime, stat.st_size)
                if self._seen.get(path) != mark:
                    self._seen[path] = mark
                    saved(self.run, path)

    def _early_stopped(self, trainer: Any, stopper: Any) -> None:
        message = getattr(stopper, "stopping_reason_message", None)
        early_stopped(
            self.run,
            "Lightning EarlyStopping",
            monitor=stopper.monitor,
            patience=stopper.patience,
            unit="check",
            mode=stopper.mode,
            min_delta=abs(scalar(stopper.min_delta) or 0.0),
            best=stopper.best_score,
            last=scalars(trainer.callback_metrics).get(stopper.monitor),
            stopped_at=stopper.stopped_epoch,
            extra=(
                f"wait_count {stopper.wait_count}; stopped at epoch {stopper.stopped_epoch}; "
                f"ran {self._epochs} of {trainer.max_epochs} epochs."
                + (f" Lightning: {message.strip()}" if message else "")
            ),
        )


def _stopped(stopper: Any) -> bool:
    reason = getattr(stopper, "stopping_reason", None)
    if reason is not None:
        return str(getattr(reason, "name", reason)) != "NOT_STOPPED"
    return bool(stopper.stopped_epoch)
