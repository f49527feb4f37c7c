"""scikit-learn: audited_fit and audited_partial_fit on real estimators, the journal read back."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("sklearn")

from journal import Journal, squeeze  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.linear_model import SGDClassifier  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402

from audit_logging.detect import fmt  # noqa: E402
from audit_logging.integrations import audited_fit, audited_partial_fit  # noqa: E402


def data(n: int = 300) -> tuple[object, object, object, object]:
    X, y = make_classification(n_samples=n, n_features=6, random_state=0)
    return X[:240], y[:240], X[240:], y[240:]


def test_fit_logs_the_whole_run(journal: Journal, tmp_path: Path) -> None:
    X, y, Xv, yv = data()
    model = MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0)
    out = tmp_path / "mlp.joblib"
    with pytest.warns(Warning):  # ConvergenceWarning: 30 iterations are few, on purpose
        audited_fit(
            model,
            X,
            y,
            dataset="synthetic",
            X_val=Xv,
            y_val=yv,
            save_to=out,
            logger=journal.logger,
            run_kwargs={"git": None},
        )
    assert squeeze(journal.events()) == [
        "TRAINING_STARTED",
        "DATASET_VALIDATED",
        "HYPERPARAMETERS_SET",
        "TRAINING_PROGRESS",
        "MODEL_EVALUATED",
        "MODEL_SAVED",
        "TRAINING_COMPLETED",
    ]
    started = journal.only("TRAINING_STARTED")
    assert started["model"] == "MLPClassifier" and started["dataset"] == "synthetic"
    validated = journal.only("DATASET_VALIDATED")["metrics_snapshot"]
    assert validated["rows"] == 240 and validated["columns"] == 6
    assert validated["classes"] == {
        str(k): int(c) for k, c in zip(*np.unique(y, return_counts=True), strict=False)
    }
    expected = hashlib.sha256(np.ascontiguousarray(X).tobytes() + np.ascontiguousarray(y).tobytes())
    assert validated["sha256"] == expected.hexdigest()
    hp = journal.only("HYPERPARAMETERS_SET")["metrics_snapshot"]
    assert hp["hyperparameters"]["hidden_layer_sizes"] == [8]
    assert "max_iter" not in hp["defaults_used"] and "alpha" in hp["defaults_used"]
    progress = journal.progress()
    assert [p["step"] for p in progress] == list(range(1, 31))
    assert [p["train_loss"] for p in progress] == pytest.approx(model.loss_curve_)
    evaluated = journal.only("MODEL_EVALUATED")["metrics_snapshot"]
    assert evaluated["val_accuracy"] == pytest.approx(model.score(Xv, yv))
    saved = journal.only("MODEL_SAVED")["metrics_snapshot"]
    assert saved["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()


def test_early_stopping_is_quoted(journal: Journal) -> None:
    X, y, _, _ = data()
    model = HistGradientBoostingClassifier(
        max_iter=500,
        early_stopping=True,
        n_iter_no_change=3,
        validation_fraction=0.25,
        learning_rate=0.5,
        random_state=0,
    )
    audited_fit(model, X, y, logger=journal.logger, run_kwargs={"git": None})
    assert model.n_iter_ < 500
    events = journal.events()
    assert events[-1] == "TRAINING_STOPPED" and "TRAINING_COMPLETED" not in events
    reasoning = journal.only("TRAINING_STOPPED")["reasoning"]
    assert "HistGradientBoostingClassifier (n_iter_no_change)" in reasoning
    assert "monitor val_score" in reasoning and "patience 3 iterations" in reasoning
    scores = list(model.validation_score_)
    best = max(scores)
    best_at = scores.index(best) + 1
    assert f"Best val_score {fmt(best)} at iteration {best_at}." in reasoning
    assert f"Ran {model.n_iter_} of at most 500 iterations" in reasoning
    assert [p["val_score"] for p in journal.progress()] == pytest.approx(scores)


def test_failure_is_logged_and_raised(journal: Journal) -> None:
    X, y, _, _ = data()
    X = X.copy()
    X[0, 0] = np.nan
    with pytest.raises(ValueError):
        audited_fit(
            MLPClassifier(max_iter=5), X, y, logger=journal.logger, run_kwargs={"git": None}
        )
    assert journal.events()[-1] == "TRAINING_FAILED"
    assert journal.only("DATASET_VALIDATED")["decision"] == "Validation found problems"
    assert "ValueError" in journal.only("TRAINING_FAILED")["reasoning"]


def test_partial_fit_loop(journal: Journal) -> None:
    X, y, Xv, yv = data()
    model = SGDClassifier(random_state=0)
    scores = []
    with audited_partial_fit(
        model,
        dataset="stream",
        X_val=Xv,
        y_val=yv,
        logger=journal.logger,
        run_kwargs={"git": None, "progress_every": 1},
    ) as fit:
        for start in range(0, 240, 60):
            fit.partial_fit(X[start : start + 60], y[start : start + 60], classes=[0, 1])
            scores.append(model.score(Xv, yv))
    assert squeeze(journal.events()) == [
        "TRAINING_STARTED",
        "HYPERPARAMETERS_SET",
        "TRAINING_PROGRESS",
        "MODEL_EVALUATED",
        "TRAINING_COMPLETED",
    ]
    progress = journal.progress()
    assert [p["samples_seen"] for p in progress] == [60, 120, 180, 240]
    assert [p["val_accuracy"] for p in progress] == pytest.approx(scores)
    assert journal.only("MODEL_EVALUATED")["metrics_snapshot"]["val_accuracy"] == pytest.approx(
        scores[-1]
    )
