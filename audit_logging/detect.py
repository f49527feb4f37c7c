"""Training issue detection: overfitting, plateau, divergence and instability.

Two ways in:

* :func:`detect_issues` looks at a whole history (a list of per-step metric
  dicts, or a mapping ``metric -> list of values``) and returns the issues found;
* :class:`IssueDetector` is fed one step at a time (``update(metrics, step)``),
  which is how :class:`audit_logging.training.TrainingRun` uses it.

Each :class:`Issue` is reported once per episode, at the step where it
starts. An episode ends only when its condition has been false for *more
than* its window of checks in a row (``patience`` for the plateau,
``clear_after`` for the others): a condition that clears and comes back
within its own window is the same issue (hysteresis). A slowly improving loss
clears its plateau on each small improvement and meets it again exactly
``patience`` checks later; that is one plateau, reported once. Each issue carries

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
  that states what the numbers show (with them), never a guess about why.

So nothing is invented: an auditor can recompute every number in the journal
from the numbers the training code passed in.

The detectors and their defaults
--------------------------------

Steps are the ``step`` values passed in, or, when none is passed, the number of
the call (0, 1, 2, ...). Windows and patience count calls that carry the metric
("checks"), as Keras and Lightning count epochs, so a metric reported every 500
steps is judged on its own checks.

``plateau`` (``monitor``, default ``val_loss``, else the training loss)
    The monitored metric stayed *flat* for ``patience`` (default 10) checks in
    a row: each within ``min_delta`` (default ``1e-3``) *times its best value's
    magnitude* of that best, neither improving on it by more nor worsening by
    more. A metric that has worsened (a validation loss rising above its best)
    is never a plateau. The tolerance is relative, as PyTorch's
    ``ReduceLROnPlateau(threshold_mode="rel")``: an absolute ``min_delta`` would
    call a loss that keeps falling 3% per step a plateau once it is small
    enough, and never stop a loss in the thousands. Direction (``mode``) is
    ``max`` for names containing accuracy, acc, auc, f1, precision, recall,
    iou, r2 or score, else ``min``. Decision: "Early stopping triggered"
    (:class:`~audit_logging.training.TrainingRun` writes it only for the kinds
    in its ``stop_on``, "Flagged for review; training continues" otherwise).
``overfitting`` (validation gets worse while training gets better)
    (a) validation loss rose at each of the last ``overfit_checks`` (default 5)
    checks while the training loss at the end of that span is below its value
    at the start; or (b) validation loss more than ``rise_threshold`` (default
    0.1, i.e. 10%) of its best value above that best, at least
    ``overfit_checks`` checks after it, while the training loss is below its
    value at the best's step; or (c) ``train_accuracy - val_accuracy`` above
    ``gap_threshold`` (default 0.1) and larger than it was ``overfit_checks``
    checks before. Only calls carrying both members of a pair are used.
    When the plateau rule starts at a step where overfitting is in progress,
    overfitting wins: one ``overfitting`` issue is reported, with
    ``also_matched=("plateau",)`` and a sentence saying so.
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

Cost: every detector is O(1) per call (running best values, ``deque`` windows
with ``maxlen``, running sums and a running count of sign changes); the only
O(window) work, the exact mean and total variation of the instability window,
runs only on steps whose running values already pass both thresholds. Memory
does not grow with the number of steps.

The rules live in :mod:`audit_logging.detect_fit` (plateau, overfitting) and
:mod:`audit_logging.detect_loss` (divergence, instability); the shared
:class:`Issue` in :mod:`audit_logging.detect_common`. Every public name stays
importable from here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from audit_logging.detect_common import Issue, Mode, Rule, fmt, metric_mode, number
from audit_logging.detect_fit import Overfitting, Plateau
from audit_logging.detect_loss import Divergence, Instability

__all__ = [
    "ISSUE_KINDS",
    "Issue",
    "IssueDetector",
    "detect_issues",
    "fmt",
    "metric_mode",
]

#: The kinds of issue the detectors report.
ISSUE_KINDS = ("overfitting", "plateau", "divergence", "instability")

_NO_ISSUES: tuple[Issue, ...] = ()


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
        rise_threshold: float = 0.1,
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
        self._plateau = Plateau(monitor, mode, patience, min_delta)
        self._overfitting = Overfitting(
            train_loss,
            val_loss,
            train_accuracy,
            val_accuracy,
            overfit_checks,
            gap_threshold,
            rise_threshold,
            clear_after,
        )
        self._divergence = Divergence(train_loss, val_loss, divergence_factor, clear_after)
        self._instability = Instability(
            train_loss, window, min_sign_change_fraction, min_swing, clear_after
        )
        all_rules: list[Rule] = [
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
            t = number(t)
        v = get(self._val_name)
        if v is not None and type(v) is not float:
            v = number(v)
        found: list[Issue] | None = None
        if self._on_divergence:
            div = self._divergence
            state = div.check(step, t, v)
            if (state or div.active) and div.settle(state):
                found = [div.issue(step, metrics)]
        over = self._overfitting
        if self._on_overfitting:
            ta = get(self._ta_name)
            if ta is not None and type(ta) is not float:
                ta = number(ta)
            va = get(self._va_name)
            if va is not None and type(va) is not float:
                va = number(va)
            state = over.check(step, t, v, ta, va)
            if (state or over.active) and over.settle(state):
                found = found or []
                found.append(over.issue(step, metrics))
        if self._on_instability:
            unstable = self._instability
            state = unstable.check(step, t)
            if (state or unstable.active) and unstable.settle(state):
                found = found or []
                found.append(unstable.issue(step, metrics))
        if self._on_plateau:
            plateau = self._plateau
            m = get(plateau.monitor) if plateau.monitor is not None else None
            if m is not None and type(m) is not float:
                m = number(m)
            state = plateau.check(step, m)
            if (state or plateau.active) and plateau.settle(state):
                found = self._plateau_or_overfitting(step, metrics, found)
        return found if found is not None else _NO_ISSUES

    def _plateau_or_overfitting(
        self, step: Any, metrics: Mapping[str, Any], found: list[Issue] | None
    ) -> list[Issue] | None:
        """Report a starting plateau, unless the model is overfitting: then overfitting wins.

        A metric that stops improving while validation gets worse is the
        overfitting, not a convergence. If the overfitting starts at this very
        step, its report says that the plateau rule matched too; if it started
        earlier, it stands and the plateau is not reported.
        """
        plateau = self._plateau.issue(step, metrics)
        if not self._overfitting.active:
            found = found or []
            found.append(plateau)
            return found
        for i, issue in enumerate(found or ()):
            if issue.kind != "overfitting":
                continue
            assert found is not None
            m = str(self._plateau.monitor)
            evidence = dict(issue.evidence)
            formulas = dict(issue.formulas)
            for key in (m, f"best_{m}", "flat_checks", "tolerance"):
                if key not in evidence:
                    evidence[key] = plateau.evidence[key]
                    if key in plateau.formulas:
                        formulas[key] = plateau.formulas[key]
            found[i] = dataclasses.replace(
                issue,
                evidence=evidence,
                formulas=formulas,
                thresholds={**issue.thresholds, **plateau.thresholds},
                reasoning=(
                    f"{issue.reasoning} The plateau rule matched too ({m} flat within "
                    f"{fmt(plateau.evidence['tolerance'])} of its best for "
                    f"{plateau.evidence['flat_checks']} checks); reported as overfitting, "
                    "which takes precedence: training kept improving while validation did not."
                ),
                also_matched=(*issue.also_matched, "plateau"),
            )
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
