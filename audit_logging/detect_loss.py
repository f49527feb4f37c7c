"""The rules about the training loss's health: ``divergence`` and ``instability``.

Run by :class:`audit_logging.detect.IssueDetector`; the rules, their defaults
and the formula language of ``formulas`` are described in :mod:`audit_logging.detect`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any

from audit_logging.detect_common import FLAGGED, Issue, Rule, fmt, isfinite, number

__all__ = ["Divergence", "Instability"]


class Divergence(Rule):
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
            if not isfinite(t):
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
            if isfinite(v):
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
            text = repr(number(value))
            evidence["non_finite_value"] = text
            sentence = f"{name} is {text} at step {step}"
            if last is not None:
                ls, lv = last
                evidence[f"last_finite_{name}"] = lv
                formulas[f"last_finite_{name}"] = f"{name}[{ls}]"
                sentence += f"; its last finite value was {fmt(lv)} at step {ls}"
            return Issue(
                kind="divergence",
                probable_cause=(
                    f"{name} is no longer a finite number ({text}), so training cannot be "
                    "measured from here"
                ),
                evidence=evidence,
                reasoning=sentence + ".",
                step=step,
                decision=FLAGGED,
                formulas=formulas,
            )
        best, bs = self.best, self.best_step
        assert best is not None
        fvalue = number(value)
        assert fvalue is not None
        ratio = fvalue / best
        evidence[f"best_{name}"] = best
        evidence["ratio_to_best"] = ratio
        formulas[f"best_{name}"] = f"{name}[{bs}]"
        formulas["ratio_to_best"] = f"{name} / {name}[{bs}]"
        return Issue(
            kind="divergence",
            probable_cause=(
                f"{name} moved away from the best value it reached: {fmt(ratio)} times {fmt(best)}"
            ),
            evidence=evidence,
            reasoning=(
                f"{name} is {fmt(fvalue)} at step {step}, {fmt(ratio)} times its best "
                f"{fmt(best)} (step {bs}), above the divergence factor {fmt(self.factor)}."
            ),
            step=step,
            decision=FLAGGED,
            formulas=formulas,
            thresholds={"divergence_factor": self.factor},
        )


class Instability(Rule):
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
        if x is None or not isfinite(x):
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
            probable_cause=(
                f"{name} goes up and down ({self.changes} of {possible} direction changes) by "
                f"{fmt(self.swing)} of its mean per step instead of settling"
            ),
            evidence=evidence,
            reasoning=(
                f"{name} changed direction {self.changes} of {possible} possible times over "
                f"its last {self.window} values (steps {first} to {step}; threshold fraction "
                f"{fmt(self.min_fraction)}) and moved on average {fmt(self.swing)} of its "
                f"mean {fmt(self.mean)} per step (total variation {fmt(self.variation)}; "
                f"threshold {fmt(self.min_swing)})."
            ),
            step=step,
            decision=FLAGGED,
            formulas=formulas,
            thresholds={
                "window": self.window,
                "min_sign_change_fraction": self.min_fraction,
                "min_swing": self.min_swing,
            },
        )
