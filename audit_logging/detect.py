"""Training issue detection: overfitting, plateau, divergence and instability.

Two ways in:

* :func:`detect_issues` looks at a whole history (a list of per-step metric
  dicts, or a mapping ``metric -> list of values``) and returns the issues found;
* :class:`IssueDetector` is fed one step at a time (``update(metrics, step)``),
  which is how :class:`audit_logging.training.TrainingRun` uses it.

Each :class:`Issue` is reported once, at the step where it starts; it is
reported again only if it clears and then comes back. It carries

* ``evidence``: the input values that triggered it, exactly as passed (the
  step and the metrics of that step), plus named derived values;
* ``formulas``: for every derived value, the arithmetic that recomputes it from
  the inputs, written as a Python expression in which ``val_loss`` is the value
  at the issue's step, ``val_loss[12]`` the value passed at step 12, a
  threshold name (``min_delta``) the detector's parameter, ``count(val_loss,
  a, b)`` the number of finite ``val_loss`` values passed at steps
  ``a < s <= b``, and, over the values passed at steps ``a <= s <= b``,
  ``sign_changes(name, a, b)`` the number of sign changes between successive
  differences, ``total_variation(name, a, b)`` the sum of the absolute
  successive differences and ``mean(name, a, b)`` the arithmetic mean;
* ``thresholds``: the parameters the decision was taken against;
* ``reasoning``: a sentence made of those numbers only, and a ``probable_cause``
  worded as a probability, never as a finding.

So nothing is invented: an auditor can recompute every number in the journal
from the numbers the training code passed in.

The detectors and their defaults
--------------------------------

Steps are the ``step`` values passed in, or, when none is passed, the number of
the call (0, 1, 2, ...). Windows and patience count calls that carry the metric
("checks"), as Keras and Lightning count epochs, so a metric reported every 500
steps is judged on its own checks.

``plateau`` (``monitor``, default ``val_loss``, else the training loss)
    No improvement of the monitored metric on its best value by more than
    ``min_delta`` (default ``1e-3``) *times the best value's magnitude* for
    ``patience`` (default 10) checks. The threshold is relative, as PyTorch's
    ``ReduceLROnPlateau(threshold_mode="rel")``: an absolute ``min_delta`` would
    call a loss that keeps falling 3% per step a plateau once it is small
    enough, and never stop a loss in the thousands. Direction (``mode``) is
    ``max`` for names containing accuracy, acc, auc, f1, precision, recall,
    iou, r2 or score, else ``min``. Clears at the next improvement. Decision:
    ``"Early stopping triggered"``.
``overfitting``
    (a) validation loss rose at each of the last ``overfit_checks`` (default 5)
    checks while the training loss at the end of that span is below its value
    at the start; or (b) ``train_accuracy - val_accuracy`` above
    ``gap_threshold`` (default 0.1) and larger than it was ``overfit_checks``
    checks before. Only calls carrying both members of a pair are used.
``divergence``
    A NaN or infinite training or validation loss; or a training loss above
    ``divergence_factor`` (default 10) times its best (lowest) value, when that
    best is positive. The factor is applied to the training loss only: a
    validation loss far above its best while the training loss falls is
    overfitting, not a diverging optimisation.
``instability``
    Over the last ``window`` (default 20) training-loss values, the successive
    differences changed sign at least ``min_sign_change_fraction`` (default
    0.8) of the possible ``window - 2`` times, *and* the relative swing, the
    mean absolute step-to-step change divided by the window's mean
    (``total_variation / (window - 1) / mean``), is at least ``min_swing``
    (default 0.25). Sign changes alone are not enough: independent noise
    changes direction two times in three, so only large swings count. The
    swing, unlike ``(max - min)``, is not inflated by a loss that is simply
    falling fast. Independent noise of up to about 10% of the level is not flagged.

overfitting, divergence and instability clear when their condition has been
false for ``clear_after`` (default 10) consecutive checks.

Cost: every detector is O(1) per call (running best values, ``deque`` windows
with ``maxlen``, running sums and a running count of sign changes); the only
O(window) work, the exact mean and total variation of the instability window,
runs only on steps whose running values already pass both thresholds. Memory
does not grow with the number of steps.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ISSUE_KINDS",
    "Issue",
    "IssueDetector",
    "detect_issues",
    "metric_mode",
]

#: The kinds of issue the detectors report.
ISSUE_KINDS = ("overfitting", "plateau", "divergence", "instability")

Mode = Literal["min", "max"]

_MAX_WORDS = ("accuracy", "acc", "auc", "f1", "precision", "recall", "iou", "r2", "score")
_NO_ISSUES: tuple[Issue, ...] = ()
_FLAGGED = "Flagged for review; training continues"

_CAUSES = {
    "overfitting_loss": (
        "the model is probably fitting the training data at the expense of "
        "generalisation (validation loss rising while training loss falls)"
    ),
    "overfitting_gap": (
        "the model probably fits the training data much better than unseen data, "
        "and the gap is widening"
    ),
    "plateau": (
        "the monitored metric has probably converged, or the learning rate is too "
        "small for further progress"
    ),
    "divergence_nonfinite": (
        "probably a numerical overflow or exploding gradients (learning rate too "
        "high, unscaled inputs, or a log or division of zero)"
    ),
    "divergence_ratio": (
        "the optimisation has probably diverged (learning rate too high or exploding gradients)"
    ),
    "instability": (
        "the loss oscillates instead of settling, probably a learning rate too high "
        "or batches too small for the gradient noise"
    ),
}


def metric_mode(name: str) -> Mode:
    """``"max"`` for a metric where higher is better (by its name), else ``"min"``."""
    lowered = name.lower()
    return "max" if any(word in lowered for word in _MAX_WORDS) else "min"


def fmt(x: Any) -> str:
    """A number as it appears in a reasoning sentence (6 significant digits)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if isinstance(x, int):
        return str(x)
    return f"{x:.6g}"


@dataclass(frozen=True)
class Issue:
    """One detected training issue, with the numbers that show it.

    ``evidence`` holds the step and the triggering metric values exactly as
    passed, plus named derived values; ``formulas`` says how each derived value
    is computed from the inputs; ``thresholds`` the parameters it was judged by.
    """

    kind: str
    probable_cause: str
    evidence: dict[str, Any]
    reasoning: str
    step: Any
    decision: str
    formulas: dict[str, str] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        """The ``metrics_snapshot`` of the journal line: evidence, then formulas and thresholds."""
        return {
            "issue": self.kind,
            **self.evidence,
            "formulas": dict(self.formulas),
            "thresholds": dict(self.thresholds),
        }

    def __str__(self) -> str:
        return f"{self.kind} at step {self.step}: {self.reasoning}"


_isfinite = math.isfinite


def _number(value: Any) -> float | None:
    """``value`` as a float, or ``None`` when it is not a number (strings, None, arrays)."""
    if type(value) is float:
        return value
    if value is None or isinstance(value, (str, bytes, bool)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# ------------------------------------------------------------------ single detectors


class _Rule:
    """A detector whose condition is re-evaluated at every check.

    ``check(step, *values)`` (the values already read as floats by the
    detector) returns ``True``/``False`` for the condition at this step, or
    ``None`` when the step does not carry the metrics it looks at (the state
    is then left unchanged). ``issue`` builds the report of the current step.
    """

    kind = ""
    clear_after = 10
    active = False
    quiet = 0

    def issue(self, step: Any, metrics: Mapping[str, Any]) -> Issue:
        raise NotImplementedError


class _Plateau(_Rule):
    kind = "plateau"

    def __init__(self, monitor: str | None, mode: Mode | None, patience: int, min_delta: float):
        self.monitor = monitor
        self.mode = mode
        self.patience = patience
        self.min_delta = min_delta
        self.clear_after = 1  # an improvement ends a plateau at once
        self.best: float | None = None
        self.best_step: Any = None
        self.since_best = 0

    def check(self, step: Any, value: float | None) -> bool | None:
        if value is None or not _isfinite(value):
            return None
        best = self.best
        if best is None:
            self.best, self.best_step, self.since_best = value, step, 0
            return False
        if self.mode == "max":
            improved = value - best > self.min_delta * abs(best)
        else:
            improved = best - value > self.min_delta * abs(best)
        if improved:
            self.best, self.best_step, self.since_best = value, step, 0
            return False
        self.since_best += 1
        return self.since_best >= self.patience

    def issue(self, step: Any, metrics: Mapping[str, Any]) -> Issue:
        m = str(self.monitor)
        value = metrics[m]
        best = self.best
        assert best is not None
        bs = self.best_step
        fvalue = _number(value)
        assert fvalue is not None
        required = self.min_delta * abs(best)
        evidence: dict[str, Any] = {
            "step": step,
            m: value,
            f"best_{m}": best,
            "checks_since_best": self.since_best,
            "required_improvement": required,
        }
        formulas = {
            f"best_{m}": f"{m}[{bs}]",
            "checks_since_best": f"count({m}, {bs}, {step})",
            "required_improvement": f"min_delta * abs({m}[{bs}])",
        }
        if best != 0:
            evidence["relative_change"] = (fvalue - best) / abs(best)
            formulas["relative_change"] = f"({m} - {m}[{bs}]) / abs({m}[{bs}])"
        direction = "increased" if self.mode == "max" else "decreased"
        reasoning = (
            f"{m} has not {direction} by more than {fmt(required)} (min_delta "
            f"{fmt(self.min_delta)} x its best {fmt(best)} at step {bs}) for "
            f"{self.since_best} checks (patience {self.patience}); it is "
            f"{fmt(fvalue)} at step {step}."
        )
        return Issue(
            kind="plateau",
            probable_cause=_CAUSES["plateau"],
            evidence=evidence,
            reasoning=reasoning,
            step=step,
            decision="Early stopping triggered",
            formulas=formulas,
            thresholds={"patience": self.patience, "min_delta": self.min_delta},
        )


class _Overfitting(_Rule):
    kind = "overfitting"

    def __init__(
        self,
        train_loss: str | None,
        val_loss: str,
        train_accuracy: str,
        val_accuracy: str,
        checks: int,
        gap_threshold: float,
        clear_after: int,
    ):
        self.train_loss = train_loss
        self.val_loss = val_loss
        self.train_accuracy = train_accuracy
        self.val_accuracy = val_accuracy
        self.checks = checks
        self.gap_threshold = gap_threshold
        self.clear_after = clear_after
        # (step, train, val) of the last checks+1 calls carrying both losses.
        self.losses: deque[tuple[Any, float, float]] = deque(maxlen=checks + 1)
        self.rises = 0
        self.gaps: deque[tuple[Any, float]] = deque(maxlen=checks + 1)
        self.loss_rule = False
        self.gap_rule = False

    def check(
        self, step: Any, t: float | None, v: float | None, ta: float | None, va: float | None
    ) -> bool | None:
        seen = False
        if t is not None and v is not None:
            seen = True
            losses = self.losses
            if losses and v > losses[-1][2]:
                self.rises += 1
            else:
                self.rises = 0
            losses.append((step, t, v))
            self.loss_rule = self.rises >= self.checks and t < losses[0][1]
        if ta is not None and va is not None:
            seen = True
            gap = ta - va
            gaps = self.gaps
            gaps.append((step, gap))
            self.gap_rule = (
                len(gaps) == gaps.maxlen and gap > self.gap_threshold and gap > gaps[0][1]
            )
        if not seen:
            return None
        return self.loss_rule or self.gap_rule

    def issue(self, step: Any, metrics: Mapping[str, Any]) -> Issue:
        evidence: dict[str, Any] = {"step": step}
        formulas: dict[str, str] = {}
        sentences: list[str] = []
        causes: list[str] = []
        thresholds: dict[str, Any] = {"overfit_checks": self.checks}
        if self.loss_rule:
            tn, vn = str(self.train_loss), self.val_loss
            s0, t0, v0 = self.losses[0]
            _, t, v = self.losses[-1]
            evidence[tn] = metrics[tn]
            evidence[vn] = metrics[vn]
            evidence[f"{vn}_start"] = v0
            evidence[f"{tn}_start"] = t0
            evidence[f"{vn}_change"] = v - v0
            evidence[f"{tn}_change"] = t - t0
            formulas[f"{vn}_start"] = f"{vn}[{s0}]"
            formulas[f"{tn}_start"] = f"{tn}[{s0}]"
            formulas[f"{vn}_change"] = f"{vn} - {vn}[{s0}]"
            formulas[f"{tn}_change"] = f"{tn} - {tn}[{s0}]"
            sentences.append(
                f"{vn} rose at each of the last {self.checks} checks, from {fmt(v0)} "
                f"(step {s0}) to {fmt(v)} (step {step}), while {tn} fell from "
                f"{fmt(t0)} to {fmt(t)}."
            )
            causes.append(_CAUSES["overfitting_loss"])
        if self.gap_rule:
            an, bn = self.train_accuracy, self.val_accuracy
            s0, gap0 = self.gaps[0]
            gap = self.gaps[-1][1]
            evidence[an] = metrics[an]
            evidence[bn] = metrics[bn]
            evidence["gap"] = gap
            evidence["gap_before"] = gap0
            evidence["gap_growth"] = gap - gap0
            formulas["gap"] = f"{an} - {bn}"
            formulas["gap_before"] = f"{an}[{s0}] - {bn}[{s0}]"
            formulas["gap_growth"] = f"({an} - {bn}) - ({an}[{s0}] - {bn}[{s0}])"
            thresholds["gap_threshold"] = self.gap_threshold
            sentences.append(
                f"The gap {an} - {bn} is {fmt(gap)} at step {step}, above the "
                f"threshold {fmt(self.gap_threshold)} and up from {fmt(gap0)} at step "
                f"{s0} (growth {fmt(gap - gap0)})."
            )
            causes.append(_CAUSES["overfitting_gap"])
        return Issue(
            kind="overfitting",
            probable_cause="; ".join(causes),
            evidence=evidence,
            reasoning=" ".join(sentences),
            step=step,
            decision=_FLAGGED,
            formulas=formulas,
            thresholds=thresholds,
        )


class _Divergence(_Rule):
    kind = "divergence"

    def __init__(self, train_loss: str | None, val_loss: str, factor: float, clear_after: int):
        self.train_loss = train_loss
        self.val_loss = val_loss
        self.factor = factor
        self.clear_after = clear_after
        self.best: float | None = None
        self.best_step: Any = None
        self.last_finite_train: tuple[Any, float] | None = None
        self.last_finite_val: tuple[Any, float] | None = None
        self.cause: tuple[str, Any, Any] | None = None  # (metric, kind, last finite)

    def check(self, step: Any, t: float | None, v: float | None) -> bool | None:
        if t is None and v is None:
            return None
        diverged = False
        if t is not None:
            if not _isfinite(t):
                self.cause = (str(self.train_loss), "nonfinite", self.last_finite_train)
                return True
            self.last_finite_train = (step, t)
            best = self.best
            if best is None or t < best:
                self.best, self.best_step = t, step
            elif best > 0 and t > self.factor * best:
                self.cause = (str(self.train_loss), "ratio", None)
                diverged = True
        if v is not None:
            if _isfinite(v):
                self.last_finite_val = (step, v)
            elif not diverged:
                self.cause = (self.val_loss, "nonfinite", self.last_finite_val)
                return True
        return diverged

    def issue(self, step: Any, metrics: Mapping[str, Any]) -> Issue:
        assert self.cause is not None
        name, how, last = self.cause
        value = metrics[name]
        evidence: dict[str, Any] = {"step": step, name: value}
        formulas: dict[str, str] = {}
        if how == "nonfinite":
            text = repr(_number(value))
            evidence["non_finite_value"] = text
            sentence = f"{name} is {text} at step {step}"
            if last is not None:
                ls, lv = last
                evidence[f"last_finite_{name}"] = lv
                formulas[f"last_finite_{name}"] = f"{name}[{ls}]"
                sentence += f"; its last finite value was {fmt(lv)} at step {ls}"
            return Issue(
                kind="divergence",
                probable_cause=_CAUSES["divergence_nonfinite"],
                evidence=evidence,
                reasoning=sentence + ".",
                step=step,
                decision=_FLAGGED,
                formulas=formulas,
            )
        best, bs = self.best, self.best_step
        assert best is not None
        fvalue = _number(value)
        assert fvalue is not None
        ratio = fvalue / best
        evidence[f"best_{name}"] = best
        evidence["ratio_to_best"] = ratio
        formulas[f"best_{name}"] = f"{name}[{bs}]"
        formulas["ratio_to_best"] = f"{name} / {name}[{bs}]"
        return Issue(
            kind="divergence",
            probable_cause=_CAUSES["divergence_ratio"],
            evidence=evidence,
            reasoning=(
                f"{name} is {fmt(fvalue)} at step {step}, {fmt(ratio)} times its best "
                f"{fmt(best)} (step {bs}), above the divergence factor {fmt(self.factor)}."
            ),
            step=step,
            decision=_FLAGGED,
            formulas=formulas,
            thresholds={"divergence_factor": self.factor},
        )


class _Instability(_Rule):
    kind = "instability"

    def __init__(
        self,
        train_loss: str | None,
        window: int,
        min_sign_change_fraction: float,
        min_swing: float,
        clear_after: int,
    ):
        if window < 4:
            raise ValueError(f"instability window must be at least 4, got {window}")
        self.train_loss = train_loss
        self.window = window
        self.min_fraction = min_sign_change_fraction
        self.min_changes = min_sign_change_fraction * (window - 2)
        self.min_swing = min_swing
        self.clear_after = clear_after
        self.values: deque[float] = deque(maxlen=window)
        self.steps: deque[Any] = deque(maxlen=window)
        # flags[i] is 1 when the differences on either side of a value have opposite signs.
        self.flags: deque[int] = deque(maxlen=window - 2)
        self.changes = 0
        self.last_diff = 0.0
        # |successive differences| in the window, and running sums of them and of the values.
        self.moves: deque[float] = deque(maxlen=window - 1)
        self.move_sum = 0.0
        self.value_sum = 0.0
        self.mean = self.variation = self.swing = 0.0

    def check(self, step: Any, x: float | None) -> bool | None:
        if x is None or not _isfinite(x):
            return None
        values = self.values
        full = len(values) == self.window
        if values:
            diff = x - values[-1]
            if len(values) >= 2:
                flags = self.flags
                if len(flags) == flags.maxlen:
                    self.changes -= flags[0]
                flag = 1 if diff * self.last_diff < 0 else 0
                flags.append(flag)
                self.changes += flag
            self.last_diff = diff
            moves = self.moves
            if len(moves) == moves.maxlen:
                self.move_sum -= moves[0]
            move = abs(diff)
            moves.append(move)
            self.move_sum += move
        if full:
            self.value_sum -= values[0]
        values.append(x)
        self.value_sum += x
        self.steps.append(step)
        if not full and len(values) < self.window:
            return False
        if self.changes < self.min_changes or self.value_sum <= 0:
            return False
        # Running sums keep this O(1); they can drift by a few ulps over
        # millions of steps, so a swing near the threshold is recomputed exactly.
        approximate = self.move_sum / (self.window - 1) * self.window / self.value_sum
        if approximate < self.min_swing * (1 - 1e-9):
            return False
        self.mean = math.fsum(values) / self.window
        self.variation = math.fsum(moves)
        self.move_sum, self.value_sum = self.variation, self.mean * self.window
        self.swing = self.variation / (self.window - 1) / self.mean
        return self.swing >= self.min_swing

    def issue(self, step: Any, metrics: Mapping[str, Any]) -> Issue:
        name = str(self.train_loss)
        first = self.steps[0]
        possible = self.window - 2
        evidence = {
            "step": step,
            name: metrics[name],
            "sign_changes": self.changes,
            "possible_sign_changes": possible,
            "window_mean": self.mean,
            "total_variation": self.variation,
            "relative_swing": self.swing,
        }
        formulas = {
            "sign_changes": f"sign_changes({name}, {first}, {step})",
            "possible_sign_changes": "window - 2",
            "window_mean": f"mean({name}, {first}, {step})",
            "total_variation": f"total_variation({name}, {first}, {step})",
            "relative_swing": (
                f"total_variation({name}, {first}, {step}) / (window - 1) "
                f"/ mean({name}, {first}, {step})"
            ),
        }
        return Issue(
            kind="instability",
            probable_cause=_CAUSES["instability"],
            evidence=evidence,
            reasoning=(
                f"{name} changed direction {self.changes} of {possible} possible times over "
                f"its last {self.window} values (steps {first} to {step}; threshold fraction "
                f"{fmt(self.min_fraction)}) and moved on average {fmt(self.swing)} of its "
                f"mean {fmt(self.mean)} per step (total variation {fmt(self.variation)}; "
                f"threshold {fmt(self.min_swing)})."
            ),
            step=step,
            decision=_FLAGGED,
            formulas=formulas,
            thresholds={
                "window": self.window,
                "min_sign_change_fraction": self.min_fraction,
                "min_swing": self.min_swing,
            },
        )


# ------------------------------------------------------------------ the detector


class IssueDetector:
    """Incremental detection of training issues; feed it one step at a time.

    ``update(metrics, step)`` returns the issues that *start* at this step
    (usually none). Parameters and defaults are described in the module
    docstring. ``train_loss=None`` means ``"train_loss"``, else ``"loss"``,
    whichever the first call carrying one has; ``monitor=None`` means
    ``val_loss``, else the training loss. ``kinds`` limits the detectors run.
    """

    def __init__(
        self,
        *,
        monitor: str | None = None,
        mode: Mode | None = None,
        patience: int = 10,
        min_delta: float = 1e-3,
        train_loss: str | None = None,
        val_loss: str = "val_loss",
        train_accuracy: str = "train_accuracy",
        val_accuracy: str = "val_accuracy",
        overfit_checks: int = 5,
        gap_threshold: float = 0.1,
        divergence_factor: float = 10.0,
        window: int = 20,
        min_sign_change_fraction: float = 0.8,
        min_swing: float = 0.25,
        clear_after: int = 10,
        kinds: Iterable[str] = ISSUE_KINDS,
    ) -> None:
        if patience < 1 or overfit_checks < 1 or clear_after < 1:
            raise ValueError("patience, overfit_checks and clear_after must be at least 1")
        kinds = tuple(kinds)
        unknown = set(kinds) - set(ISSUE_KINDS)
        if unknown:
            raise ValueError(f"unknown issue kinds {sorted(unknown)}; known: {ISSUE_KINDS}")
        self._monitor_given = monitor
        self._train_given = train_loss
        self._resolved = False
        self._next_step: Any = 0
        #: The step of the last :meth:`update`.
        self.step: Any = None
        self._plateau = _Plateau(monitor, mode, patience, min_delta)
        self._overfitting = _Overfitting(
            train_loss,
            val_loss,
            train_accuracy,
            val_accuracy,
            overfit_checks,
            gap_threshold,
            clear_after,
        )
        self._divergence = _Divergence(train_loss, val_loss, divergence_factor, clear_after)
        self._instability = _Instability(
            train_loss, window, min_sign_change_fraction, min_swing, clear_after
        )
        all_rules: list[_Rule] = [
            self._divergence,
            self._overfitting,
            self._instability,
            self._plateau,
        ]
        self._rules = tuple(r for r in all_rules if r.kind in kinds)
        self._on_divergence = "divergence" in kinds
        self._on_overfitting = "overfitting" in kinds
        self._on_instability = "instability" in kinds
        self._on_plateau = "plateau" in kinds
        self._train_name: str | None = train_loss
        self._val_name = val_loss
        self._ta_name = train_accuracy
        self._va_name = val_accuracy

    @property
    def monitor(self) -> str | None:
        """The metric the plateau detector follows (``None`` until one was seen)."""
        return self._plateau.monitor

    @property
    def active(self) -> frozenset[str]:
        """The kinds of issue in progress now."""
        return frozenset(r.kind for r in self._rules if r.active)

    def _resolve(self, metrics: Mapping[str, Any]) -> None:
        # Names are fixed at the first call that carries a loss, so later calls
        # pay no lookup of alternatives.
        train = self._train_given
        if train is None:
            train = next((n for n in ("train_loss", "loss") if n in metrics), None)
        monitor = self._monitor_given
        if monitor is None:
            monitor = self._val_name if self._val_name in metrics else train
        if monitor is None:
            return
        self._resolved = True
        self._train_name = train
        for rule in (self._overfitting, self._divergence, self._instability):
            rule.train_loss = train
        plateau = self._plateau
        plateau.monitor = monitor
        if plateau.mode is None:
            plateau.mode = metric_mode(monitor)

    def update(self, metrics: Mapping[str, Any], step: Any = None) -> Sequence[Issue]:
        """Feed the metrics of one step; return the issues that start at this step."""
        if step is None:
            step = self._next_step
        try:
            self._next_step = step + 1
        except TypeError:
            pass
        self.step = step
        if not self._resolved:
            self._resolve(metrics)
        # Each metric is read once per call, here, not by every rule: this is
        # the hot path of TrainingRun.progress().
        get = metrics.get
        t = get(self._train_name) if self._train_name is not None else None
        if t is not None and type(t) is not float:
            t = _number(t)
        v = get(self._val_name)
        if v is not None and type(v) is not float:
            v = _number(v)
        found: list[Issue] | None = None
        if self._on_divergence:
            div = self._divergence
            state = div.check(step, t, v)
            if state or (div.active and state is not None):
                found = self._settle(div, state, step, metrics, found)
        if self._on_overfitting:
            ta = get(self._ta_name)
            if ta is not None and type(ta) is not float:
                ta = _number(ta)
            va = get(self._va_name)
            if va is not None and type(va) is not float:
                va = _number(va)
            over = self._overfitting
            state = over.check(step, t, v, ta, va)
            if state or (over.active and state is not None):
                found = self._settle(over, state, step, metrics, found)
        if self._on_instability:
            unstable = self._instability
            state = unstable.check(step, t)
            if state or (unstable.active and state is not None):
                found = self._settle(unstable, state, step, metrics, found)
        if self._on_plateau:
            plateau = self._plateau
            m = get(plateau.monitor) if plateau.monitor is not None else None
            if m is not None and type(m) is not float:
                m = _number(m)
            state = plateau.check(step, m)
            if state or (plateau.active and state is not None):
                found = self._settle(plateau, state, step, metrics, found)
        return found if found is not None else _NO_ISSUES

    @staticmethod
    def _settle(
        rule: _Rule,
        state: bool | None,
        step: Any,
        metrics: Mapping[str, Any],
        found: list[Issue] | None,
    ) -> list[Issue] | None:
        """Start, continue or clear an episode of ``rule``; report it when it starts."""
        if state:
            rule.quiet = 0
            if not rule.active:
                rule.active = True
                if found is None:
                    found = []
                found.append(rule.issue(step, metrics))
        else:
            rule.quiet += 1
            if rule.quiet >= rule.clear_after:
                rule.active = False
        return found


def _rows(history: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]) -> Iterable[Any]:
    if isinstance(history, Mapping):
        columns = {k: list(v) for k, v in history.items()}
        length = max((len(v) for v in columns.values()), default=0)
        for i in range(length):
            yield {k: v[i] for k, v in columns.items() if i < len(v)}
    else:
        yield from history


def detect_issues(
    history: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
    **options: Any,
) -> list[Issue]:
    """The issues in a whole training history, in the order they started.

    ``history`` is a sequence of per-step metric dicts (``[{"train_loss": 0.9,
    "val_loss": 1.0}, ...]``) or a mapping of metric name to its values per
    step (``{"train_loss": [...], "val_loss": [...]}``). A ``"step"`` entry, if
    present, gives the step numbers; otherwise steps are 0, 1, 2, ...
    ``options`` are :class:`IssueDetector` parameters.
    """
    detector = IssueDetector(**options)
    issues: list[Issue] = []
    for row in _rows(history):
        metrics = dict(row)
        step = metrics.pop("step", None)
        issues.extend(detector.update(metrics, step))
    return issues
