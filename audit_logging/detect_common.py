"""What every issue detector shares: the :class:`Issue` report, number formatting,
a metric's direction, and the episode bookkeeping of a rule (:class:`Rule`).

The rules themselves live in :mod:`audit_logging.detect_fit` (plateau,
overfitting) and :mod:`audit_logging.detect_loss` (divergence, instability);
:mod:`audit_logging.detect` runs them (:class:`~audit_logging.detect.IssueDetector`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["FLAGGED", "Issue", "Mode", "Rule", "fmt", "isfinite", "metric_mode", "number"]

Mode = Literal["min", "max"]

_MAX_WORDS = ("accuracy", "acc", "auc", "f1", "precision", "recall", "iou", "r2", "score")

#: The decision of an issue that does not stop training.
FLAGGED = "Flagged for review; training continues"

isfinite = math.isfinite


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


def number(value: Any) -> float | None:
    """``value`` as a float, or ``None`` when it is not a number (strings, None, arrays)."""
    if type(value) is float:
        return value
    if value is None or isinstance(value, (str, bytes, bool)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Issue:
    """One detected training issue, with the numbers that show it.

    ``evidence`` holds the step and the triggering metric values exactly as
    passed, plus named derived values; ``formulas`` says how each derived value
    is computed from the inputs; ``thresholds`` the parameters it was judged by.
    ``probable_cause`` states what the numbers show, with the numbers, and
    nothing they cannot support. ``also_matched`` names the rules that matched
    at the same step and were folded into this report (a plateau of a metric
    while the model overfits is reported as the overfitting).
    """

    kind: str
    probable_cause: str
    evidence: dict[str, Any]
    reasoning: str
    step: Any
    decision: str
    formulas: dict[str, str] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=dict)
    also_matched: tuple[str, ...] = ()

    def snapshot(self) -> dict[str, Any]:
        """The ``metrics_snapshot`` of the journal line: evidence, then formulas and thresholds.

        ``also_matched`` is written only when a rule was folded into this one.
        """
        snap = {
            "issue": self.kind,
            **self.evidence,
            "formulas": dict(self.formulas),
            "thresholds": dict(self.thresholds),
        }
        if self.also_matched:
            snap["also_matched"] = list(self.also_matched)
        return snap

    def __str__(self) -> str:
        return f"{self.kind} at step {self.step}: {self.reasoning}"


class Rule:
    """A detector whose condition is re-evaluated at every check, with hysteresis.

    ``check(step, *values)`` (values already read as floats by the detector)
    returns ``True``/``False`` for the condition at this step, or ``None`` when
    the step does not carry the metrics it looks at (the state is then left
    unchanged). ``issue`` builds the report of the current step.

    An episode starts when the condition becomes true; it ends only once the
    condition has been false for *more than* ``clear_after`` checks in a row (``patience``
    for the plateau). A
    condition that clears and comes back within its own window is the same
    episode, reported once: a plateau that clears on an improvement comes back
    exactly ``patience`` checks later if nothing else improves, and that is
    the same plateau, not a new one.
    """

    kind = ""
    clear_after = 10
    active = False
    quiet = 0

    def issue(self, step: Any, metrics: Mapping[str, Any]) -> Issue:
        raise NotImplementedError

    def settle(self, state: bool | None) -> bool:
        """Update the episode with this check's condition; ``True`` when an episode starts."""
        if state:
            self.quiet = 0
            if not self.active:
                self.active = True
                return True
        elif state is not None and self.active:
            self.quiet += 1
            if self.quiet > self.clear_after:
                self.active = False
        return False
