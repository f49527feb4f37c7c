"""XGBoost: AuditXGBoostCallback on real boosters (native and sklearn API), the journal read back."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

xgb = pytest.importorskip("xgboost")
np = pytest.importorskip("numpy")

from journal import Journal, squeeze  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402

from audit_logging.detect import fmt  # noqa: E402
from audit_logging.integrations import AuditXGBoostCallback  # noqa: E402


def matrices() -> tuple[object, object]:
    X, y = make_classification(n_samples=400, n_features=5, random_state=1)
    return xgb.DMatrix(X[:300], label=y[:300]), xgb.DMatrix(X[300:], label=y[300:])


def test_native_train_with_early_stopping_and_checkpoints(journal: Journal, tmp_path: Path) -> None:
    dtrain, dvalid = matrices()
    (tmp_path / "ckpt").mkdir()
    history: dict[str, dict[str, list[float]]] = {}
    audit = AuditXGBoostCallback(
        dataset="synthetic", logger=journal.logger, run_kwargs={"git": None, "progress_every": 1}
    )
    stopper = xgb.callback.EarlyStopping(rounds=3)
    booster = xgb.train(
        {"objective": "binary:logistic", "eta": 1.0, "max_depth": 6},
        dtrain,
        200,
        evals=[(dtrain, "train"), (dvalid, "valid")],
        evals_result=history,
        verbose_eval=False,
        callbacks=[audit, stopper, xgb.callback.TrainingCheckPoint(tmp_path / "ckpt", interval=5)],
    )
    events = journal.events()
    assert squeeze(events)[:4] == [
        "TRAINING_STARTED",
        "DATASET_VALIDATED",
        "HYPERPARAMETERS_SET",
        "TRAINING_PROGRESS",
    ]
    assert squeeze(events)[-3:] == ["MODEL_SAVED", "MODEL_EVALUATED", "TRAINING_STOPPED"]
    assert "TRAINING_COMPLETED" not in events
    data = journal.only("DATASET_VALIDATED")["metrics_snapshot"]
    assert data == {"train": {"rows": 300, "columns": 5}, "valid": {"rows": 100, "columns": 5}}
    hp = journal.only("HYPERPARAMETERS_SET")["metrics_snapshot"]
    assert hp["hyperparameters"]["early_stopping.rounds"] == 3
    assert hp["hyperparameters"]["eta"] == 1.0 and hp["hyperparameters"]["num_boost_round"] == 200
    assert "lambda" in hp["defaults_used"] and "eta" not in hp["defaults_used"]
    progress = journal.progress()
    assert [p["valid-logloss"] for p in progress] == pytest.approx(history["valid"]["logloss"])
    assert [p["step"] for p in progress] == list(range(len(history["valid"]["logloss"])))
    stopped = journal.only("TRAINING_STOPPED")["reasoning"]
    assert "XGBoost EarlyStopping: monitor valid-logloss, mode min, patience 3 rounds" in stopped
    assert f"at round {booster.best_iteration}." in stopped
    assert (
        f"Best valid-logloss {fmt(booster.best_score)} at round {booster.best_iteration}."
        in stopped
    )
    assert "of 200 rounds" in stopped
    saved = journal.of("MODEL_SAVED")
    assert saved and all(
        line["metrics_snapshot"]["sha256"]
        == hashlib.sha256(Path(line["metrics_snapshot"]["path"]).read_bytes()).hexdigest()
        for line in saved
    )


def test_sklearn_api_completes(journal: Journal) -> None:
    X, y = make_classification(n_samples=200, n_features=4, random_state=2)
    model = xgb.XGBClassifier(
        n_estimators=8,
        max_depth=2,
        callbacks=[AuditXGBoostCallback(logger=journal.logger, run_kwargs={"git": None})],
    )
    model.fit(X, y, eval_set=[(X, y)], verbose=False)
    events = journal.events()
    assert events[-1] == "TRAINING_COMPLETED"
    # By default a line every 100 rounds (or 30 s): the first round's only, here.
    assert [p["step"] for p in journal.progress()] == [0]
    results = model.evals_result()["validation_0"]["logloss"]
    assert journal.only("MODEL_EVALUATED")["metrics_snapshot"][
        "validation_0-logloss"
    ] == pytest.approx(results[-1])


def test_failure_is_logged(journal: Journal) -> None:
    dtrain, _ = matrices()

    class Boom(xgb.callback.TrainingCallback):
        def after_iteration(self, model: object, epoch: int, evals_log: object) -> bool:
            if epoch == 2:
                raise RuntimeError("disk full while writing the checkpoint")
            return False

    audit = AuditXGBoostCallback(logger=journal.logger, run_kwargs={"git": None})
    with pytest.raises(RuntimeError):
        xgb.train(
            {"objective": "binary:logistic"},
            dtrain,
            10,
            evals=[(dtrain, "train")],
            verbose_eval=False,
            callbacks=[audit, Boom()],
        )
    failed = journal.only("TRAINING_FAILED")
    assert "RuntimeError: disk full while writing the checkpoint" in failed["reasoning"]
    assert journal.events()[-1] == "TRAINING_FAILED"


def test_ctrl_c_is_a_stop(journal: Journal) -> None:
    dtrain, _ = matrices()

    class CtrlC(xgb.callback.TrainingCallback):
        def after_iteration(self, model: object, epoch: int, evals_log: object) -> bool:
            if epoch == 1:
                raise KeyboardInterrupt
            return False

    audit = AuditXGBoostCallback(logger=journal.logger, run_kwargs={"git": None})
    with pytest.raises(KeyboardInterrupt):
        xgb.train({"objective": "binary:logistic"}, dtrain, 10, callbacks=[audit, CtrlC()])
    closing = journal.lines()[-1]
    assert closing["event"] == "TRAINING_STOPPED"
    assert closing["metrics_snapshot"]["ending"] == "interrupted"
    assert "KeyboardInterrupt" in closing["reasoning"]


def test_callback_made_inside_the_call_and_uninstall(journal: Journal) -> None:
    # Python looks xgb.train up before it builds the callback: the wrap must already be there.
    from audit_logging.integrations import xgboost as integration

    dtrain, _ = matrices()

    class Boom(xgb.callback.TrainingCallback):
        def after_iteration(self, model: object, epoch: int, evals_log: object) -> bool:
            raise ValueError("bad eval metric")

    with pytest.raises(ValueError):
        xgb.train(
            {"objective": "binary:logistic"},
            dtrain,
            5,
            callbacks=[
                AuditXGBoostCallback(logger=journal.logger, run_kwargs={"git": None}),
                Boom(),
            ],
        )
    assert journal.events()[-1] == "TRAINING_FAILED"
    wrapped = xgb.train
    integration.uninstall()
    try:
        assert xgb.train is wrapped.__wrapped__ and xgb.training.train is wrapped.__wrapped__
        assert xgb.sklearn.train is wrapped.__wrapped__
    finally:
        integration.install()
    assert xgb.train is not wrapped.__wrapped__
