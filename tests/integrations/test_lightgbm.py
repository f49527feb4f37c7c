"""LightGBM: audit_lightgbm_callback on real boosters (native and sklearn API), the journal read back."""

from __future__ import annotations

import pytest

lgb = pytest.importorskip("lightgbm")
np = pytest.importorskip("numpy")

from journal import Journal, squeeze  # noqa: E402
from sklearn.datasets import make_regression  # noqa: E402

from audit_logging.detect import fmt  # noqa: E402
from audit_logging.integrations import audit_lightgbm_callback  # noqa: E402


def data() -> tuple[object, object, object, object]:
    X, y = make_regression(n_samples=400, n_features=5, noise=30.0, random_state=3)
    return X[:300], y[:300], X[300:], y[300:]


def test_native_train_with_early_stopping(journal: Journal) -> None:
    X, y, Xv, yv = data()
    train_set = lgb.Dataset(X, y)
    valid = lgb.Dataset(Xv, yv, reference=train_set)
    history: dict[str, dict[str, list[float]]] = {}
    audit = audit_lightgbm_callback(
        dataset="synthetic", logger=journal.logger, run_kwargs={"git": None, "progress_every": 1}
    )
    booster = lgb.train(
        {
            "objective": "regression",
            "learning_rate": 0.5,
            "num_leaves": 63,
            "verbose": -1,
            "min_data_in_leaf": 2,
        },
        train_set,
        300,
        valid_sets=[valid],
        callbacks=[audit, lgb.early_stopping(4, verbose=False), lgb.record_evaluation(history)],
    )
    assert booster.best_iteration < 300
    assert squeeze(journal.events()) == [
        "TRAINING_STARTED",
        "DATASET_VALIDATED",
        "HYPERPARAMETERS_SET",
        "TRAINING_PROGRESS",
        "MODEL_EVALUATED",
        "TRAINING_STOPPED",
    ]
    assert journal.only("DATASET_VALIDATED")["metrics_snapshot"] == {"rows": 300, "columns": 5}
    hp = journal.only("HYPERPARAMETERS_SET")["metrics_snapshot"]
    assert hp["hyperparameters"]["early_stopping.stopping_rounds"] == 4
    assert hp["hyperparameters"]["learning_rate"] == 0.5
    assert "lambda_l2" in hp["defaults_used"] and "learning_rate" not in hp["defaults_used"]
    progress = journal.progress()
    # record_evaluation (order 20) misses nothing; this callback (order 29) saw the same values.
    assert [p["valid_0-l2"] for p in progress] == pytest.approx(history["valid_0"]["l2"])
    best = booster.best_score["valid_0"]["l2"]
    assert journal.only("MODEL_EVALUATED")["metrics_snapshot"] == {
        "valid_0-l2": pytest.approx(best)
    }
    reasoning = journal.only("TRAINING_STOPPED")["reasoning"]
    assert (
        "LightGBM early_stopping: monitor valid_0-l2, patience 4 iterations, min_delta 0"
        in reasoning
    )
    assert f"Best valid_0-l2 {fmt(best)} at iteration {booster.best_iteration}." in reasoning
    assert f"Ran {len(progress)} of 300 iterations." in reasoning
    assert len(progress) == booster.best_iteration + 4


def test_sklearn_api_completes(journal: Journal) -> None:
    X, y, Xv, yv = data()
    model = lgb.LGBMRegressor(n_estimators=6, verbose=-1)
    model.fit(
        X,
        y,
        eval_X=(Xv,),
        eval_y=(yv,),
        callbacks=[audit_lightgbm_callback(logger=journal.logger, run_kwargs={"git": None})],
    )
    events = journal.events()
    assert events[-1] == "TRAINING_COMPLETED"
    # By default a line every 100 iterations (or 30 s): the first one's only, here.
    [progress] = journal.progress()
    assert progress["step"] == 0
    assert progress["valid_0-l2"] == pytest.approx(model.evals_result_["valid_0"]["l2"][0])
    best = model.booster_.best_score["valid_0"]["l2"]
    assert journal.only("MODEL_EVALUATED")["metrics_snapshot"] == {
        "valid_0-l2": pytest.approx(best)
    }


def test_failure_is_logged(journal: Journal) -> None:
    X, y, _, _ = data()

    def boom(env: object) -> None:
        if env.iteration == 2:
            raise MemoryError("out of memory in the histogram")

    audit = audit_lightgbm_callback(logger=journal.logger, run_kwargs={"git": None})
    with pytest.raises(MemoryError):
        lgb.train(
            {"objective": "regression", "verbose": -1},
            lgb.Dataset(X, y),
            10,
            callbacks=[audit, boom],
        )
    assert journal.events()[-1] == "TRAINING_FAILED"
    assert (
        "MemoryError: out of memory in the histogram"
        in journal.only("TRAINING_FAILED")["reasoning"]
    )
