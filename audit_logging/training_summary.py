"""The summary of the progress calls that wrote no journal line (``since_last_line``).

Between two TRAINING_PROGRESS lines, :class:`~audit_logging.training.TrainingRun`
hands each unwritten call to :meth:`Summary.add`; the next line carries
:meth:`Summary.take`::

    {"calls": 99, "first_step": 1, "last_step": 99,
     "metrics": {"train_loss": {"count": 99, "min": 0.41, "max": 0.93,
                                "mean": 0.58, "last": 0.41}}}

``count``, ``min``, ``max`` and ``mean`` are over the finite numbers passed
for that metric (``None`` when there were none); ``last`` is the last value
passed, as given. So the shape of a curve survives the throttling of lines.

Cost: adding a call only appends its step and its own metrics dict (the
``**metrics`` of ``progress()``, a fresh dict the run may keep) to two lists,
a few tens of nanoseconds (``TrainingRun.progress`` does it inline, without
the method call); the arithmetic runs when a line is written, or every
``FOLD`` calls so that memory stays bounded however rare the lines are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from operator import itemgetter
from typing import Any

__all__ = ["FOLD", "Summary"]

FOLD = 1024  # unwritten calls kept as given before they are folded into running figures


def _finite(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` (NaN, inf, strings, None, bools, arrays)."""
    if value is None or isinstance(value, (bool, str, bytes)):
        return None
    try:
        number = float(value)  # ints, numpy scalars, 0-d tensors
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class Summary:
    """Running count, min, max, sum and last of each metric over unwritten calls."""

    __slots__ = ("_calls", "_first", "_last_step", "_stats", "metrics", "steps")

    def __init__(self) -> None:
        #: The unwritten calls not folded yet: their steps and metrics, as given.
        self.steps: list[Any] = []
        self.metrics: list[Mapping[str, Any]] = []
        self._stats: dict[str, list[Any]] = {}  # name -> [count, min, max, sum, last]
        self._calls = 0
        self._first: Any = None
        self._last_step: Any = None

    def add(self, step: Any, metrics: Mapping[str, Any]) -> None:
        """Remember one unwritten call (its step and its metrics, kept as given)."""
        self.steps.append(step)
        self.metrics.append(metrics)
        if len(self.steps) >= FOLD:
            self.fold()

    def fold(self) -> None:
        """Fold the calls added so far into the running figures (keeps memory bounded)."""
        pending = self.metrics
        if not pending:
            return
        steps = self.steps
        if not self._calls:
            self._first = steps[0]
        self._calls += len(steps)
        self._last_step = steps[-1]
        steps.clear()
        stats = self._stats
        # Column by column with builtins (min, max, sum run in C): about
        # 0.1 us per unwritten call for four metrics, paid by the call that
        # writes the line.
        first = pending[0]
        columns: dict[str, list[Any]] = {}
        if sum(map(len, pending)) == len(first) * len(pending):
            # The usual case: every call has the same names (same count, and
            # each has all of the first call's names, or itemgetter raises).
            try:
                for name in first:
                    columns[name] = list(map(itemgetter(name), pending))
            except KeyError:
                columns = {}
        if not columns:
            for name in set().union(*pending):  # some calls carry other metrics
                columns[name] = [m[name] for m in pending if name in m]
        for name, column in columns.items():
            entry = stats.get(name)
            if entry is None:
                entry = stats[name] = [0, None, None, 0.0, None]
            entry[4] = column[-1]
            try:
                total = sum(column)
                fast = (type(total) is float and math.isfinite(total)) or type(total) is int
            except TypeError:
                fast = False
            if fast:
                low, high = min(column), max(column)
            else:
                numbers = [x for x in map(_finite, column) if x is not None]
                if not numbers:
                    continue
                total, low, high = sum(numbers), min(numbers), max(numbers)
                column = numbers
            if entry[0] == 0:
                entry[1], entry[2] = low, high
            else:
                entry[1], entry[2] = min(entry[1], low), max(entry[2], high)
            entry[0] += len(column)
            entry[3] += total
        pending.clear()

    def take(self) -> dict[str, Any] | None:
        """The summary since the last :meth:`take` (``None`` if no call was added); resets."""
        self.fold()
        if not self._calls:
            return None
        metrics = {
            name: {
                "count": count,
                "min": low,
                "max": high,
                "mean": total / count if count else None,
                "last": last,
            }
            for name, (count, low, high, total, last) in self._stats.items()
        }
        summary = {
            "calls": self._calls,
            "first_step": self._first,
            "last_step": self._last_step,
            "metrics": metrics,
        }
        self._stats = {}
        self._calls = 0
        self._first = self._last_step = None
        return summary
