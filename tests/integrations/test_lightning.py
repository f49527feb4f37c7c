"""Lightning on CPU: AuditCallback on a real tiny module and DataModule, the journal read back."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pl = pytest.importorskip("lightning.pytorch")

from journal import Journal, squeeze  # noqa: E402
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from audit_logging.detect import fmt  # noqa: E402
from audit_logging.integrations import AuditCallback  # noqa: E402


class Regressor(pl.LightningModule):
    def __init__(self, lr: float = 0.05, hidden: int = 8, fail_at_epoch: int = -1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
        )

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        if self.current_epoch == self.hparams.fail_at_epoch:
            raise FloatingPointError("loss is NaN")
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def test_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("test_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class Data(pl.LightningDataModule):
    def setup(self, stage: str) -> None:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(96, 4, generator=g)
        y = x @ torch.tensor([[1.0], [-1.0], [0.5], [0.0]])
        self.train, self.val = TensorDataset(x[:64], y[:64]), TensorDataset(x[64:], y[64:])

    def train_dataloader(self) -> Any:
        return DataLoader(self.train, batch_size=16)

    def val_dataloader(self) -> Any:
        return DataLoader(self.val, batch_size=32)

    def test_dataloader(self) -> Any:
        return DataLoader(self.val, batch_size=32)


class Recorder(pl.Callback):
    """What Lightning reported at the end of each epoch (after the audit callback read it)."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self.epochs.append({k: float(v) for k, v in trainer.callback_metrics.items()})


def trainer(tmp_path: Path, *callbacks: Any, epochs: int = 30) -> Any:
    return pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=list(callbacks),
    )


def test_fit_with_early_stopping_checkpoints_and_test(journal: Journal, tmp_path: Path) -> None:
    pl.seed_everything(0, verbose=False)
    audit = AuditCallback(logger=journal.logger, run_kwargs={"git": None})
    recorder = Recorder()
    stopper = EarlyStopping("val_loss", patience=2, min_delta=5.0)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val_loss", save_last=True)
    t = trainer(tmp_path, audit, recorder, stopper, checkpoint)
    model = Regressor(lr=0.05)
    t.fit(model, datamodule=Data())
    [test] = t.test(model, datamodule=Data(), verbose=False)
    events = journal.events()
    assert squeeze(events)[:4] == [
        "TRAINING_STARTED",
        "DATASET_VALIDATED",
        "HYPERPARAMETERS_SET",
        "TRAINING_PROGRESS",
    ]
    assert events[-3:] == ["MODEL_EVALUATED", "TRAINING_STOPPED", "MODEL_EVALUATED"]
    started = journal.only("TRAINING_STARTED")
    assert started["model"] == "Regressor" and started["dataset"] == "Data"
    assert journal.only("DATASET_VALIDATED")["metrics_snapshot"] == {
        "train_samples": 64,
        "val_samples": 32,
    }
    hp = journal.only("HYPERPARAMETERS_SET")["metrics_snapshot"]
    assert hp["hyperparameters"]["early_stopping.monitor"] == "val_loss"
    assert hp["hyperparameters"]["early_stopping.patience"] == 2
    assert hp["hyperparameters"]["lr"] == 0.05 and hp["hyperparameters"]["optimizer"] == "SGD"
    assert "hidden" in hp["defaults_used"] and "optimizer.momentum" in hp["defaults_used"]
    assert "optimizer.lr" not in hp["defaults_used"] and hp["hyperparameters"]["max_epochs"] == 30
    progress = journal.progress()
    assert len(progress) == len(recorder.epochs) < 30
    for line, reported in zip(progress, recorder.epochs, strict=True):
        assert line["val_loss"] == pytest.approx(reported["val_loss"])
        assert line["train_loss"] == pytest.approx(reported["train_loss"])
    saved = journal.of("MODEL_SAVED")
    paths = {line["metrics_snapshot"]["path"] for line in saved}
    assert checkpoint.last_model_path in paths and checkpoint.best_model_path in paths
    last = next(
        line
        for line in reversed(saved)
        if line["metrics_snapshot"]["path"] == checkpoint.last_model_path
    )
    assert (
        last["metrics_snapshot"]["sha256"]
        == hashlib.sha256(Path(checkpoint.last_model_path).read_bytes()).hexdigest()
    )
    reasoning = journal.only("TRAINING_STOPPED")["reasoning"]
    assert (
        "Lightning EarlyStopping: monitor val_loss, mode min, patience 2 checks, min_delta 5."
        in reasoning
    )
    assert f"Best val_loss {fmt(float(stopper.best_score))}." in reasoning
    assert f"wait_count {stopper.wait_count}; stopped at epoch {stopper.stopped_epoch}" in reasoning
    assert "did not improve" in reasoning  # Lightning's own message, quoted
    final = journal.of("MODEL_EVALUATED")[-1]["metrics_snapshot"]
    assert final["test_loss"] == pytest.approx(test["test_loss"])


def test_failure_is_logged(journal: Journal, tmp_path: Path) -> None:
    audit = AuditCallback(logger=journal.logger, run_kwargs={"git": None})
    with pytest.raises(FloatingPointError):
        trainer(tmp_path, audit, epochs=5).fit(Regressor(fail_at_epoch=1), datamodule=Data())
    assert journal.events()[-1] == "TRAINING_FAILED"
    assert "FloatingPointError: loss is NaN" in journal.only("TRAINING_FAILED")["reasoning"]
    assert len(journal.progress()) == 1


def test_completed_without_early_stopping(journal: Journal, tmp_path: Path) -> None:
    audit = AuditCallback(dataset="regression-96", logger=journal.logger, run_kwargs={"git": None})
    trainer(tmp_path, audit, epochs=2).fit(Regressor(), datamodule=Data())
    assert journal.events()[-1] == "TRAINING_COMPLETED"
    assert journal.only("TRAINING_STARTED")["dataset"] == "regression-96"
    assert [p["step"] for p in journal.progress()] == [0, 1]
