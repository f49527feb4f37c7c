"""Issue detection: each detector on synthetic curves, true and false positives, no invention.

Curves are built in the tests (seeded where noisy): healthy, noisy but healthy,
overfitting, plateau, divergent, oscillating. Every issue found is checked
with :func:`assert_not_invented`: each number of its snapshot is an input
value of its step, a threshold that was configured, or a derived value that
an independent evaluator recomputes from the inputs by the formula named
next to it; each number in its reasoning is one of those.
"""

from __future__ import annotations

import ast
import itertools
import json
import math
import random
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from audit_logging.detect import Issue, IssueDetector, detect_issues, metric_mode

DEFAULT_THRESHOLDS = {
    "patience": 10,
    "min_delta": 1e-3,
    "overfit_checks": 5,
    "gap_threshold": 0.1,
    "rise_threshold": 0.1,
    "divergence_factor": 10.0,
    "window": 20,
    "min_sign_change_fraction": 0.8,
    "min_swing": 0.25,
}

Rows = list[dict[str, Any]]


# ---------------------------------------------------------------- curves


def healthy(n: int = 300) -> Rows:
    """Smoothly falling losses, rising accuracies, a small constant gap."""
    rows = []
    for s in range(n):
        base = 2.0 * math.exp(-s / 100)
        acc = 0.5 + 0.45 * (1 - math.exp(-s / 60))
        rows.append(
            {
                "step": s,
                "train_loss": base,
                "val_loss": base * 1.1,
                "train_accuracy": acc,
                "val_accuracy": acc - 0.03,
            }
        )
    return rows


def noisy_healthy(seed: int, n: int = 300, train_noise: float = 0.05) -> Rows:
    """The healthy curves with seeded noise: 5% on the training loss, 2% on validation."""
    rng = random.Random(seed)
    rows = []
    for row in healthy(n):
        rows.append(
            {
                "step": row["step"],
                "train_loss": row["train_loss"] * (1 + train_noise * rng.gauss(0, 1)),
                "val_loss": row["val_loss"] * (1 + 0.02 * rng.gauss(0, 1)),
                "train_accuracy": row["train_accuracy"] + 0.01 * rng.gauss(0, 1),
                "val_accuracy": row["val_accuracy"] + 0.01 * rng.gauss(0, 1),
            }
        )
    return rows


def overfitting(n: int = 120, turn: int = 60) -> Rows:
    """Training loss keeps falling; validation loss turns upward at ``turn``."""
    rows = healthy(n)
    for row in rows[turn:]:
        row["val_loss"] = rows[turn]["val_loss"] + 0.01 * (row["step"] - turn)
    return rows


def plateau(n: int = 120, flat_from: int = 50) -> Rows:
    rows = healthy(n)
    for row in rows[flat_from:]:
        row["val_loss"] = rows[flat_from - 1]["val_loss"]
        row["train_loss"] = rows[flat_from - 1]["train_loss"]
    return rows


def oscillating(n: int = 200, amplitude: float = 0.4) -> Rows:
    return [
        {"step": s, "train_loss": (1 + amplitude * (-1) ** s) * (2 * math.exp(-s / 300) + 0.5)}
        for s in range(n)
    ]


# ---------------------------------------------------------------- independent checker


class _Series(float):
    """A metric: its value at the issue's step, and ``series[s]`` its value at step ``s``."""

    by_step: dict[Any, float]

    def __new__(cls, current: float, by_step: dict[Any, float]) -> _Series:
        obj = super().__new__(cls, current)
        obj.by_step = by_step
        return obj

    def __getitem__(self, step: Any) -> float:
        return self.by_step[step]

    def between(self, a: Any, b: Any, include_a: bool) -> list[float]:
        return [v for s, v in self.by_step.items() if (a <= s if include_a else a < s) and s <= b]


def _count(series: _Series, a: Any, b: Any) -> int:
    return sum(1 for v in series.between(a, b, False) if math.isfinite(v))


def _sign_changes(series: _Series, a: Any, b: Any) -> int:
    values = series.between(a, b, True)
    diffs = [y - x for x, y in itertools.pairwise(values)]
    return sum(1 for d1, d2 in itertools.pairwise(diffs) if d1 * d2 < 0)


def _total_variation(series: _Series, a: Any, b: Any) -> float:
    values = series.between(a, b, True)
    return sum(abs(y - x) for x, y in itertools.pairwise(values))


def _mean(series: _Series, a: Any, b: Any) -> float:
    values = series.between(a, b, True)
    return sum(values) / len(values)


_ALLOWED = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.USub,
    ast.Name,
    ast.Load,
    ast.Subscript,
    ast.Constant,
    ast.Call,
    ast.Attribute,
)


def recompute(
    formula: str, history: Sequence[Mapping[str, Any]], step: Any, params: dict[str, Any]
) -> float:
    """Evaluate a formula of the detector's language from the inputs, independently."""
    tree = ast.parse(formula, mode="eval")
    for node in ast.walk(tree):
        assert isinstance(node, _ALLOWED), f"{formula!r} uses {type(node).__name__}"
        if isinstance(node, ast.Constant):
            # Literal numbers may only be step numbers inside name[...] or count(...)
            assert isinstance(node.value, int), f"{formula!r} has a literal {node.value!r}"
    by_metric: dict[str, dict[Any, float]] = {}
    for i, row in enumerate(history):
        s = row.get("step", i)
        for name, value in row.items():
            if name != "step":
                by_metric.setdefault(name, {})[s] = float(value)
    env: dict[str, Any] = {
        name: _Series(values.get(step, math.nan), values) for name, values in by_metric.items()
    }
    env.update(params)
    env.update(
        abs=abs,
        count=_count,
        sign_changes=_sign_changes,
        total_variation=_total_variation,
        mean=_mean,
    )
    return float(eval(compile(tree, "<formula>", "eval"), {"__builtins__": {}}, env))


_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def _shown(x: float) -> str:
    return f"{x:.6g}" if isinstance(x, float) else str(x)


def assert_not_invented(
    snapshot: Mapping[str, Any],
    reasoning: str,
    history: Sequence[Mapping[str, Any]],
    params: dict[str, Any] | None = None,
) -> None:
    """Every number in ``snapshot`` and ``reasoning`` comes from the inputs or the thresholds.

    Works on a parsed journal snapshot (NaN as null) as well as on ``Issue.snapshot()``.
    """
    params = {**DEFAULT_THRESHOLDS, **(params or {})}
    formulas: dict[str, str] = snapshot["formulas"]
    thresholds: dict[str, Any] = snapshot["thresholds"]
    for name, value in thresholds.items():
        assert value == params[name], f"threshold {name}={value} was not configured"
    step = snapshot["step"]
    steps = [row.get("step", i) for i, row in enumerate(history)]
    assert step in steps
    row = history[steps.index(step)]
    shown = {_shown(v) for v in thresholds.values()}
    shown.add(str(step))
    for key, value in snapshot.items():
        if key in ("issue", "formulas", "thresholds", "step", "also_matched"):
            continue
        if key in formulas:
            expected = recompute(formulas[key], history, step, params)
            assert math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-12), (
                f"{key}={value} but {formulas[key]} = {expected}"
            )
            shown.update(re.findall(r"\d+", formulas[key]))
        elif key == "non_finite_value":
            assert value in ("nan", "inf", "-inf")
        else:
            given = row[key]
            if isinstance(given, float) and not math.isfinite(given):
                assert value is None or not math.isfinite(value)  # JSON writes NaN as null
            else:
                assert value == given, f"{key}={value} is not the input {given} of step {step}"
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value is not None:
            shown.add(_shown(value))
    for token in _NUMBER.findall(reasoning):
        assert token in shown, f"{token!r} in the reasoning is not a number of the snapshot"


def check_issues(issues: list[Issue], history: Rows, params: dict[str, Any] | None = None) -> None:
    for issue in issues:
        assert_not_invented(issue.snapshot(), issue.reasoning, history, params)


def kinds(issues: list[Issue]) -> list[str]:
    return [i.kind for i in issues]


# ---------------------------------------------------------------- false positives


def test_smooth_healthy_curves_raise_nothing() -> None:
    assert detect_issues(healthy()) == []


def test_noisy_but_healthy_curves_raise_nothing() -> None:
    for seed in range(20):
        assert detect_issues(noisy_healthy(seed)) == [], f"seed {seed}"


def test_noise_on_a_steep_early_fall_is_not_instability() -> None:
    # 10% noise on a loss falling from 2.0 to 0.1: direction changes often,
    # but the swings are small relative to the loss.
    for seed in range(10):
        found = detect_issues(noisy_healthy(seed, train_noise=0.10), kinds=["instability"])
        assert found == [], f"seed {seed}"


def test_a_small_loss_still_falling_three_percent_per_step_is_no_plateau() -> None:
    history = [{"train_loss": 1e-6 * 0.97**s} for s in range(600)]
    assert detect_issues(history) == []
    # With an absolute min_delta the same curve would be judged flat very early:
    # the relative rule is what keeps it running.
    assert 1e-6 * 0.97**0 * 0.03 < 1e-3


def test_history_as_mapping_of_columns() -> None:
    rows = overfitting()
    columns = {name: [r[name] for r in rows] for name in rows[0]}
    from_rows = detect_issues(rows)
    from_columns = detect_issues(columns)
    assert [(i.kind, i.step) for i in from_rows] == [(i.kind, i.step) for i in from_columns]
    assert from_rows


# ---------------------------------------------------------------- true positives


def test_overfitting_validation_loss_rising_while_training_loss_falls() -> None:
    rows = overfitting(turn=60)
    issues = detect_issues(rows, kinds=["overfitting"])
    assert kinds(issues) == ["overfitting"]
    [issue] = issues
    # rises at steps 61..65: the fifth consecutive rise is at 65.
    assert issue.step == 65
    assert issue.evidence["val_loss"] == rows[65]["val_loss"]
    assert issue.evidence["val_loss_start"] == rows[60]["val_loss"]
    assert issue.evidence["train_loss_change"] < 0 < issue.evidence["val_loss_change"]
    assert "val_loss rose at each of the last 5 checks" in issue.reasoning
    assert issue.decision == "Flagged for review; training continues"
    check_issues(issues, rows)


def test_overfitting_accuracy_gap_above_threshold_and_growing() -> None:
    rows = [
        {"step": s, "train_accuracy": 0.6 + 0.004 * s, "val_accuracy": 0.58 + 0.001 * s}
        for s in range(100)
    ]
    issues = detect_issues(rows)
    assert kinds(issues) == ["overfitting"]
    [issue] = issues
    # gap = 0.02 + 0.003 s exceeds 0.1 first at s = 27.
    assert issue.step == 27
    assert issue.evidence["gap"] > 0.1
    assert issue.evidence["gap_growth"] > 0
    assert issue.formulas["gap"] == "train_accuracy - val_accuracy"
    check_issues(issues, rows)


def test_constant_gap_above_threshold_is_not_growing() -> None:
    rows = [{"train_accuracy": 0.95, "val_accuracy": 0.8} for _ in range(100)]
    assert detect_issues(rows, kinds=["overfitting"]) == []


def test_plateau_triggers_early_stopping_after_patience_checks() -> None:
    rows = plateau(flat_from=50)
    issues = detect_issues(rows)
    assert kinds(issues) == ["plateau"]
    [issue] = issues
    assert issue.step == 49 + 10
    assert issue.decision == "Early stopping triggered"
    assert issue.evidence["best_val_loss"] == rows[49]["val_loss"]
    assert issue.evidence["flat_checks"] == 10
    assert issue.formulas["best_val_loss"] == "val_loss[49]"
    check_issues(issues, rows)


def test_plateau_monitor_in_max_mode_and_custom_patience() -> None:
    accuracy = [min(0.9, 0.5 + 0.02 * s) for s in range(60)]
    rows = [{"step": s, "val_accuracy": a} for s, a in enumerate(accuracy)]
    issues = detect_issues(rows, monitor="val_accuracy", patience=5)
    assert kinds(issues) == ["plateau"]
    assert issues[0].step == 20 + 5  # 0.9 is reached at step 20
    assert "has not increased" in issues[0].reasoning
    check_issues(issues, rows, {"patience": 5})


def test_divergence_on_nan_loss() -> None:
    rows = healthy(50)
    rows[30]["train_loss"] = math.nan
    issues = detect_issues(rows)
    assert kinds(issues) == ["divergence"]
    [issue] = issues
    assert issue.step == 30
    assert issue.evidence["non_finite_value"] == "nan"
    assert issue.evidence["last_finite_train_loss"] == rows[29]["train_loss"]
    assert "train_loss is nan at step 30" in issue.reasoning
    check_issues(issues, rows)


def test_divergence_on_infinite_validation_loss() -> None:
    rows = healthy(40)
    rows[20]["val_loss"] = math.inf
    [issue] = detect_issues(rows, kinds=["divergence"])
    assert issue.evidence["non_finite_value"] == "inf"
    assert issue.evidence["val_loss"] == math.inf


def test_divergence_when_loss_exceeds_a_multiple_of_its_best() -> None:
    rows = healthy(100)
    best = rows[79]["train_loss"]
    for k, row in enumerate(rows[80:], start=1):
        row["train_loss"] = best * 1.5**k
    issues = detect_issues(rows, kinds=["divergence"])
    assert kinds(issues) == ["divergence"]
    [issue] = issues
    assert issue.step == 85  # step 80 + k holds 1.5**(k+1): 1.5**6 = 11.4 > 10 > 1.5**5
    assert issue.evidence["ratio_to_best"] == pytest.approx(1.5**6)
    assert issue.formulas["ratio_to_best"] == "train_loss / train_loss[79]"
    check_issues(issues, rows)


def test_instability_on_an_oscillating_loss() -> None:
    rows = oscillating(amplitude=0.4)
    issues = detect_issues(rows, kinds=["instability"])
    assert kinds(issues) == ["instability"]
    [issue] = issues
    assert issue.step == 19  # as soon as the window of 20 is full
    assert issue.evidence["sign_changes"] == 18
    assert issue.evidence["relative_swing"] > 0.25
    check_issues(issues, rows)


def test_small_oscillation_is_not_instability() -> None:
    assert detect_issues(oscillating(amplitude=0.05), kinds=["instability"]) == []


# ---------------------------------------------------------------- once per episode


def test_an_issue_is_reported_once_and_again_only_after_it_clears() -> None:
    rows = healthy(80)
    for s in (20, 25, 50):  # 25: still the same episode; 50: after 10 clean checks
        rows[s]["train_loss"] = math.nan
    issues = detect_issues(rows)
    assert [(i.kind, i.step) for i in issues] == [("divergence", 20), ("divergence", 50)]


def test_plateau_that_returns_within_its_window_is_the_same_plateau() -> None:
    # An improvement at step 25 clears the plateau of steps 10-24; flat again, it
    # matches once more exactly patience checks later (step 35): the same issue.
    values = [1.0 - 0.05 * s for s in range(10)] + [0.55] * 15 + [0.4] + [0.4] * 15
    detector = IssueDetector(monitor="val_loss")
    found = []
    for v in values:
        found.extend(detector.update({"val_loss": v}))
    assert [(i.kind, i.step) for i in found] == [("plateau", 19)]
    assert detector.active == {"plateau"}


def test_plateau_is_reported_again_after_more_than_patience_clear_checks() -> None:
    # After the plateau of steps 10-24, the loss falls for 15 checks (steps
    # 25-39), more than patience (10) clear checks in a row, then is flat again.
    values = [1.0 - 0.05 * s for s in range(10)] + [0.55] * 15
    values += [0.55 * 0.97**k for k in range(1, 16)]
    values += [values[-1]] * 15
    detector = IssueDetector(monitor="val_loss")
    found = []
    for v in values:
        found.extend(detector.update({"val_loss": v}))
    assert [(i.kind, i.step) for i in found] == [("plateau", 19), ("plateau", 49)]
    check_issues(found, [{"step": s, "val_loss": v} for s, v in enumerate(values)])


def test_steps_default_to_call_numbers_and_can_be_given() -> None:
    detector = IssueDetector()
    detector.update({"train_loss": 1.0})
    detector.update({"train_loss": 1.0}, step=100)
    detector.update({"train_loss": 1.0})
    assert detector.step == 101


def test_non_numeric_and_missing_values_are_ignored() -> None:
    detector = IssueDetector()
    for s in range(50):
        assert detector.update({"train_loss": "n/a", "val_loss": None, "lr": [1, 2]}, s) == ()
    assert detector.active == frozenset()


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown issue kinds"):
        IssueDetector(kinds=["overfit"])
    with pytest.raises(ValueError):
        IssueDetector(patience=0)
    with pytest.raises(ValueError):
        IssueDetector(window=3)


def test_metric_mode_by_name() -> None:
    assert metric_mode("val_accuracy") == "max"
    assert metric_mode("f1_score") == "max"
    assert metric_mode("val_loss") == "min"
    assert metric_mode("perplexity") == "min"


# ---------------------------------------------------------------- no invention


@pytest.mark.parametrize(
    "history",
    [overfitting(), plateau(), oscillating(), [*healthy(50), {"step": 50, "train_loss": math.inf}]],
    ids=["overfitting", "plateau", "oscillating", "divergent"],
)
def test_every_snapshot_number_is_an_input_or_a_named_result(history: Rows) -> None:
    issues = detect_issues(history)
    assert issues
    check_issues(issues, history)


def test_the_checker_catches_an_invented_number() -> None:
    rows = plateau()
    [issue] = detect_issues(rows)
    forged = {**issue.snapshot(), "best_val_loss": issue.evidence["best_val_loss"] * 1.01}
    with pytest.raises(AssertionError):
        assert_not_invented(forged, issue.reasoning, rows)
    with pytest.raises(AssertionError):
        assert_not_invented(issue.snapshot(), issue.reasoning + " It was 0.12345.", rows)
    with pytest.raises(AssertionError):
        assert_not_invented({**issue.snapshot(), "val_loss": 0.5}, issue.reasoning, rows)


def test_compare_namespace_formula() -> None:
    # The `a.metric - b.metric` formula of MODEL_COMPARED uses the same evaluator.
    a = SimpleNamespace(accuracy=0.84)
    b = SimpleNamespace(accuracy=0.81)
    value = recompute("a.accuracy - b.accuracy", [], 0, {"a": a, "b": b})
    assert value == 0.84 - 0.81


# ---------------------------------------------------------------- the right diagnosis

# tests/data/mlp_overfit.json is the history of a real run, recorded once with
# scikit-learn 1.9.1 (numbers rounded to 6 digits): load_digits() scaled by 1/16,
# train_test_split(test_size=0.3, random_state=0, stratify=y), the first 50
# training images kept; MLPClassifier(hidden_layer_sizes=(64,), alpha=0.0,
# learning_rate_init=0.1, batch_size=50, random_state=0); 80 epochs of
# partial_fit(x_train, y_train, classes=range(10)), each followed by
# log_loss(...predict_proba...) and score() on the 50 training images
# (train_loss, train_accuracy) and on the 540 validation images (val_loss,
# val_accuracy). Its validation loss bottoms out at 0.897509 (epoch 13) and
# ends 63% above it while the training loss keeps falling.
MLP_OVERFIT = json.loads((Path(__file__).parent / "data" / "mlp_overfit.json").read_text())


def _losses_only(rows: Rows) -> Rows:
    return [{k: r[k] for k in ("step", "train_loss", "val_loss")} for r in rows]


def test_recorded_mlp_overfitting_is_overfitting_never_a_plateau() -> None:
    rows = _losses_only(MLP_OVERFIT)
    issues = detect_issues(rows)
    assert kinds(issues) == ["overfitting"]
    [issue] = issues
    # Reported 5 checks after the validation best, once 10% above it.
    assert issue.step == 18
    assert issue.evidence["best_val_loss"] == 0.897509
    assert issue.evidence["val_loss_rise"] > 0.1
    assert issue.probable_cause.startswith(
        "the model fits the training data better while validation gets worse"
    )
    check_issues(issues, rows)
    # The old plateau rule fired at step 23, with val_loss 27% above its best.
    assert "plateau" not in kinds(detect_issues(rows, kinds=["plateau"]))


def test_recorded_mlp_with_accuracies_is_overfitting_from_the_growing_gap() -> None:
    issues = detect_issues(MLP_OVERFIT)
    assert kinds(issues) == ["overfitting"]
    assert issues[0].evidence["gap"] > 0.1
    check_issues(issues, MLP_OVERFIT)


@pytest.mark.parametrize("name", ["val_loss", "val_accuracy"])
def test_a_worsening_metric_is_never_a_plateau(name: str) -> None:
    # Improves for 10 checks, then worsens slowly (0.5% a check) for 40: not flat.
    sign = -1 if metric_mode(name) == "max" else 1
    values = [1.0 - sign * 0.02 * s for s in range(10)]
    values += [values[-1] * (1 + sign * 0.005 * k) for k in range(1, 41)]
    assert detect_issues({name: values}, monitor=name, kinds=["plateau"]) == []
    # The same metric held flat at its best is one.
    flat = values[:10] + [values[9]] * 40
    assert kinds(detect_issues({name: flat}, monitor=name, kinds=["plateau"])) == ["plateau"]


def test_plateau_and_overfitting_at_one_step_is_one_overfitting_that_says_so() -> None:
    rows: Rows = [
        {
            "step": s,
            "train_loss": 1 - 0.01 * s,
            "val_loss": 1.0 if s <= 5 else 1 + 0.01 * (s - 5),
            "val_accuracy": 0.8,  # flat from the start: the plateau rule matches at step 10
        }
        for s in range(30)
    ]
    issues = detect_issues(rows, monitor="val_accuracy")
    assert [(i.kind, i.step) for i in issues] == [("overfitting", 10)]
    [issue] = issues
    assert issue.also_matched == ("plateau",)
    assert "The plateau rule matched too" in issue.reasoning
    assert "reported as overfitting" in issue.reasoning
    assert issue.snapshot()["also_matched"] == ["plateau"]
    check_issues(issues, rows)
    # Alone, the same plateau is reported.
    assert kinds(detect_issues(rows, monitor="val_accuracy", kinds=["plateau"])) == ["plateau"]


def test_a_plateau_during_overfitting_is_not_reported() -> None:
    rows = _losses_only(MLP_OVERFIT)
    for row, acc in zip(rows, [0.5] * len(rows), strict=True):
        row["val_accuracy"] = acc  # flat all along: a plateau of val_accuracy from step 10
    issues = detect_issues(rows[:40], monitor="val_accuracy", patience=20)
    assert kinds(issues) == ["overfitting"]


@pytest.mark.parametrize(
    "history",
    [overfitting(), plateau(), oscillating(), [*healthy(50), {"step": 50, "train_loss": math.inf}]],
    ids=["overfitting", "plateau", "oscillating", "divergent"],
)
def test_causes_state_only_numbers_of_the_snapshot(history: Rows) -> None:
    issues = detect_issues(history)
    assert issues
    for issue in issues:
        assert "probabl" not in issue.probable_cause.lower()
        assert "probabl" not in issue.reasoning.lower()
        assert_not_invented(issue.snapshot(), issue.probable_cause, history)
