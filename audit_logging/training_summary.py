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

Cost: :meth:`Summary.add` only appends the call's own metrics dict (the
``**metrics`` of ``progress()``, a fresh dict the run may keep) to a list, a
few tens of nanoseconds; the arithmetic runs when a line is written, or every
``_FOLD`` calls so that memory stays bounded however rare the lines are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["Summary"]

_FOLD = 1024  # unwritten calls kept as given before they are folded into running figures


class Summary:
    """Running count, min, max, sum and last of each metric over unwritten calls."""

    __slots__ = ("_calls", "_first", "_last_step", "_pending", "_stats")

    def __init__(self) -> None:
        self._pending: list[Mapping[str, Any]] = []
        self._stats: dict[str, list[Any]] = {}  # name -> [count, min, max, sum, last]
        self._calls = 0
        self._first: Any = None
        self._last_step: Any = None

    def add(self, step: Any, metrics: Mapping[str, Any]) -> None:
        """Remember one unwritten call (its step and its metrics, kept as given)."""
        if not self._calls:
            self._first = step
        self._calls += 1
        self._last_step = step
        pending = self._pending
        pending.append(metrics)
        if len(pending) >= _FOLD:
            self._fold()

    def _fold(self) -> None:
        stats = self._stats
        isfinite = math.isfinite
        for metrics in self._pending:
            for name, value in metrics.items():
                entry = stats.get(name)
                if entry is None:
                    entry = stats[name] = [0, None, None, 0.0, None]
                entry[4] = value
                if type(value) is not float:
                    if value is None or isinstance(value, (bool, str, bytes)):
                        continue
                    try:
                        value = float(value)  # ints, numpy scalars, 0-d tensors
                    except (TypeError, ValueError):
                        continue
                if not isfinite(value):
                    continue
                if entry[0] == 0:
                    entry[1] = entry[2] = value
                elif value < entry[1]:
                    entry[1] = value
                elif value > entry[2]:
                    entry[2] = value
                entry[0] += 1
                entry[3] += value
        self._pending.clear()

    def take(self) -> dict[str, Any] | None:
        """The summary since the last :meth:`take` (``None`` if no call was added); resets."""
        if not self._calls:
            return None
        self._fold()
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
