"""Keras 3 on JAX: AuditKerasCallback on a real tiny model, the journal read back."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

keras = pytest.importorskip("keras")
np = pytest.importorskip("numpy")

from journal import Journal, squeeze  # noqa: E402

from audit_logging.detect import fmt  # noqa: E402
from audit_logging.integrations import AuditKerasCallback  # noqa: E402


def model_and_data() -> tuple[object, object, object]:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0], dtype="float32"))[:, None]
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)],
        name="tiny",
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.5), loss="mse")
    return model, x, y


def test_fit_with_early_stopping_and_checkpoints(journal: Journal, tmp_path: Path) -> None:
    model, x, y = model_and_data()
    audit = AuditKerasCallback(dataset="synthetic", logger=journal.logger, run_kwargs={"git": None})
    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, min_delta=10.0)
    history = model.fit(
        x,
        y,
        epochs=30,
        batch_size=32,
        validation_split=0.25,
        verbose=0,
        callbacks=[
            audit,
            stopper,
            keras.callbacks.ModelCheckpoint(
                str(tmp_path / "e{epoch:02d}.weights.h5"), save_weights_only=True
            ),
        ],
    )
    epochs = len(history.history["loss"])
    assert 0 < stopper.stopped_epoch < 29
    events = journal.events()
    assert squeeze(events)[:4] == [
        "TRAINING_STARTED",
        "DATASET_VALIDATED",
        "HYPERPARAMETERS_SET",
        "TRAINING_PROGRESS",
    ]
    assert events[-2:] == ["MODEL_EVALUATED", "TRAINING_STOPPED"]
    assert "TRAINING_COMPLETED" not in events
    assert journal.only("TRAINING_STARTED")["model"] == "Sequential tiny"
    data = journal.only("DATASET_VALIDATED")["metrics_snapshot"]
    assert data["x_shape"] == [128, 4] and data["validation_split"] == 0.25
    hp = journal.only("HYPERPARAMETERS_SET")["metrics_snapshot"]
    assert hp["hyperparameters"]["early_stopping.monitor"] == "val_loss"
    assert hp["hyperparameters"]["early_stopping.patience"] == 2
    assert hp["hyperparameters"]["optimizer.learning_rate"] == pytest.approx(0.5)
    assert (
        "optimizer.learning_rate" not in hp["defaults_used"]
        and "optimizer.beta_1" in hp["defaults_used"]
    )
    assert hp["hyperparameters"]["loss"] == "mse" and hp["hyperparameters"]["epochs"] == 30
    progress = journal.progress()
    assert [p["val_loss"] for p in progress] == pytest.approx(history.history["val_loss"])
    assert [p["loss"] for p in progress] == pytest.approx(history.history["loss"])
    saved = journal.of("MODEL_SAVED")
    assert len(saved) == epochs
    for line in saved:
        path = Path(line["metrics_snapshot"]["path"])
        assert line["metrics_snapshot"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    reasoning = journal.only("TRAINING_STOPPED")["reasoning"]
    assert (
        "Keras EarlyStopping: monitor val_loss, mode auto (min), patience 2 epochs, min_delta 10."
        in reasoning
    )
    assert f"Best val_loss {fmt(stopper.best)} at epoch {stopper.best_epoch}." in reasoning
    assert f"at epoch {stopper.stopped_epoch}." in reasoning
    assert f"ran {epochs} of 30 epochs" in reasoning


def test_evaluate_and_completion(journal: Journal) -> None:
    model, x, y = model_and_data()
    audit = AuditKerasCallback(logger=journal.logger, run_kwargs={"git": None})
    model.fit(x, y, epochs=2, verbose=0, callbacks=[audit])
    loss = model.evaluate(x, y, verbose=0, callbacks=[audit])
    events = journal.events()
    assert events[-2:] == ["TRAINING_COMPLETED", "MODEL_EVALUATED"]
    assert journal.only("MODEL_EVALUATED")["metrics_snapshot"]["loss"] == pytest.approx(loss)
    hp = journal.only("HYPERPARAMETERS_SET")["metrics_snapshot"]
    assert "batch_size" in hp["defaults_used"] and hp["hyperparameters"]["batch_size"] == 32


def test_failure_is_logged(journal: Journal) -> None:
    model, x, y = model_and_data()

    class Boom(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: object = None) -> None:
            if epoch == 1:
                raise RuntimeError("metrics server unreachable")

    audit = AuditKerasCallback(logger=journal.logger, run_kwargs={"git": None})
    with pytest.raises(RuntimeError):
        model.fit(x, y, epochs=5, verbose=0, callbacks=[audit, Boom()])
    assert journal.events()[-1] == "TRAINING_FAILED"
    assert (
        "RuntimeError: metrics server unreachable" in journal.only("TRAINING_FAILED")["reasoning"]
    )
    assert len(journal.progress()) == 2


def test_callback_made_inside_the_call_sees_the_other_callbacks(journal: Journal) -> None:
    # Python looks model.fit up before it builds the callback: the wrap must already be there.
    from audit_logging.integrations import keras as integration

    model, x, y = model_and_data()
    model.fit(
        x,
        y,
        epochs=1,
        verbose=0,
        validation_split=0.25,
        callbacks=[
            AuditKerasCallback(logger=journal.logger, run_kwargs={"git": None}),
            keras.callbacks.EarlyStopping(patience=7),
        ],
    )
    hp = journal.only("HYPERPARAMETERS_SET")["metrics_snapshot"]
    assert hp["hyperparameters"]["early_stopping.patience"] == 7
    assert journal.only("DATASET_VALIDATED")["metrics_snapshot"]["x_shape"] == [128, 4]
    integration.uninstall()
    try:
        assert "fit" not in vars(keras.Model)  # inherited from the backend's trainer again
    finally:
        integration.install()
    assert "fit" in vars(keras.Model)
