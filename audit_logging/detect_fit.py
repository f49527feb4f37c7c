"""The rules about how well the model fits: ``plateau`` and ``overfitting``.

Run by :class:`audit_logging.detect.IssueDetector`; the rules, their defaults
and the formula language of ``formulas`` are described in :mod:`audit_logging.detect`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from audit_logging.detect_common import FLAGGED, Issue, Mode, Rule, fmt, isfinite, number

__all__ = ["Overfitting", "Plateau"]


class Plateau(Rule):
    """The monitored metric flat within ``min_delta`` x |best| of its best for ``patience`` checks.

    A value worse than the best by more than that tolerance breaks the flat
    run: a metric that has worsened is not a plateau (a rising validation loss
    is overfitting, not convergence).
    """

    kind = "plateau"

    def __init__(self, monitor: str | None, mode: Mode | None, patience: int, min_delta: float):
        self.monitor = monitor
        self.mode = mode
        self.patience = patience
        self.min_delta = min_delta
        self.clear_after = patience
        self.best: float | None = None
        self.best_step: Any = None
        # The flat run: checks in a row within tolerance of the best and not
        # improving on it, counted after the check at step flat_from.
        self.flat = 0
        self.flat_from: Any = None

    def check(self, step: Any, value: float | None) -> bool | None:
        if value is None or not isfinite(value):
            return None
        best = self.best
        if best is None:
            self.best, self.best_step, self.flat, self.flat_from = value, step, 0, step
            return False
        tolerance = self.min_delta * abs(best)
        worse = best - value if self.mode == "max" else value - best
        if worse < -tolerance:  # improved by more than the tolerance
            self.best, self.best_step, self.flat, self.flat_from = value, step, 0, step
            return False
        if worse > tolerance:  # worsened: not flat
            self.flat, self.flat_from = 0, step
            return False
        self.flat += 1
        return self.flat >= self.patience

    def issue(self, step: Any, metrics: Mapping[str, Any]) -> Issue:
        m = str(self.monitor)
        value = metrics[m]
        best = self.best
        assert best is not None
        bs, ff = self.best_step, self.flat_from
        fvalue = number(value)
        assert fvalue is not None
        tolerance = self.min_delta * abs(best)
        evidence: dict[str, Any] = {
            "step": step,
            m: value,
            f"best_{m}": best,
            "flat_checks": self.flat,
            "tolerance": tolerance,
        }
        formulas = {
            f"best_{m}": f"{m}[{bs}]",
            "flat_checks": f"count({m}, {ff}, {step})",
            "tolerance": f"min_delta * abs({m}[{bs}])",
        }
        if best != 0:
            evidence["relative_change"] = (fvalue - best) / abs(best)
            formulas["relative_change"] = f"({m} - {m}[{bs}]) / abs({m}[{bs}])"
        direction = "increased" if self.mode == "max" else "decreased"
        reasoning = (
            f"{m} has not {direction} by more than {fmt(tolerance)} (min_delta "
            f"{fmt(self.min_delta)} x its best {fmt(best)} at step {bs}) for {self.flat} "
            f"checks (patience {self.patience}), and stayed within that of its best: it is "
            f"{fmt(fvalue)} at step {step}."
        )
        cause = (
            f"{m} has stopped improving: flat within {fmt(tolerance)} of its best {fmt(best)} "
            f"for {self.flat} checks"
        )
        return Issue(
            kind="plateau",
            probable_cause=cause,
            evidence=evidence,
            reasoning=reasoning,
            step=step,
            decision="Early stopping triggered",
            formulas=formulas,
            thresholds={"patience": self.patience, "min_delta": self.min_delta},
        )


class Overfitting(Rule):
    """Validation gets worse while training gets better (three rules, see ``detect``)."""

    kind = "overfitting"

    def __init__(
        self,
        train_loss: str | None,
        val_loss: str,
        train_accuracy: str,
        val_accuracy: str,
        checks: int,
        gap_threshold: float,
        rise_threshold: float,
        clear_after: int,
    ):
        self.train_loss = train_loss
        self.val_loss = val_loss
        self.train_accuracy = train_accuracy
        self.val_accuracy = val_accuracy
        self.checks = checks
        self.gap_threshold = gap_threshold
        self.rise_threshold = rise_threshold
        self.clear_after = clear_after
        # (step, train, val) of the last checks+1 calls carrying both losses.
        self.losses: deque[tuple[Any, float, float]] = deque(maxlen=checks + 1)
        self.rises = 0
        self.gaps: deque[tuple[Any, float]] = deque(maxlen=checks + 1)
        # The best validation loss, its step, the training loss then, checks since.
        self.best: tuple[Any, float, float] | None = None
        self.since_best = 0
        self.loss_rule = self.rise_rule = self.gap_rule = False

    def check(
        self, step: Any, t: float | None, v: float | None, ta: float | None, va: float | None
    ) -> bool | None:
        seen = False
        if t is not None and v is not None and isfinite(t) and isfinite(v):
            seen = True
            losses = self.losses
            if losses and v > losses[-1][2]:
                self.rises += 1
            else:
                self.rises = 0
            losses.append((step, t, v))
            self.loss_rule = self.rises >= self.checks and t < losses[0][1]
            best = self.best
            if best is None or v < best[2]:
                self.best, self.since_best = (step, t, v), 0
                self.rise_rule = False
            else:
                self.since_best += 1
                self.rise_rule = (
                    self.since_best >= self.checks
                    and v - best[2] > self.rise_threshold * abs(best[2])
                    and t < best[1]
                )
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
        return self.loss_rule or self.rise_rule or self.gap_rule

    def issue(self, step: Any, metrics: Mapping[str, Any]) -> Issue:
        evidence: dict[str, Any] = {"step": step}
        formulas: dict[str, str] = {}
        sentences: list[str] = []
        causes: list[str] = []
        thresholds: dict[str, Any] = {"overfit_checks": self.checks}
        tn, vn = str(self.train_loss), self.val_loss
        if self.rise_rule or self.loss_rule:
            evidence[tn] = metrics[tn]
            evidence[vn] = metrics[vn]
            _, t, v = self.losses[-1]
        if self.rise_rule:
            assert self.best is not None
            bs, tb, vb = self.best
            evidence[f"best_{vn}"] = vb
            evidence[f"{tn}_at_best"] = tb
            evidence[f"{vn}_rise"] = (v - vb) / abs(vb)
            formulas[f"best_{vn}"] = f"{vn}[{bs}]"
            formulas[f"{tn}_at_best"] = f"{tn}[{bs}]"
            formulas[f"{vn}_rise"] = f"({vn} - {vn}[{bs}]) / abs({vn}[{bs}])"
            thresholds["rise_threshold"] = self.rise_threshold
            sentences.append(
                f"{vn} is {fmt(v)} at step {step}, above its best {fmt(vb)} (step {bs}) by "
                f"{fmt((v - vb) / abs(vb))} of that best (threshold {fmt(self.rise_threshold)}) "
                f"{self.since_best} checks later, while {tn} fell from {fmt(tb)} to {fmt(t)}."
            )
            causes.append(
                f"the model fits the training data better while validation gets worse "
                f"({tn} {fmt(tb)} -> {fmt(t)}, {vn} {fmt(vb)} -> {fmt(v)})"
            )
        if self.loss_rule:
            s0, t0, v0 = self.losses[0]
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
            if not self.rise_rule:
                causes.append(
                    f"the model fits the training data better while validation gets worse "
                    f"({tn} {fmt(t0)} -> {fmt(t)}, {vn} {fmt(v0)} -> {fmt(v)})"
                )
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
            causes.append(
                f"the model fits the training data better than held-out data by a widening "
                f"margin (accuracy gap {fmt(gap0)} -> {fmt(gap)})"
            )
        return Issue(
            kind="overfitting",
            probable_cause="; ".join(causes),
            evidence=evidence,
            reasoning=" ".join(sentences),
            step=step,
            decision=FLAGGED,
            formulas=formulas,
            thresholds=thresholds,
        )
