"""A metric's points in bounded memory: :class:`Curve` (x, y) and :class:`Band` (ranges).

Each keeps raw points up to ``COMPACT_AT`` and then folds them to the lowest
and highest point of narrow buckets. Why min/max per bucket: a chart about
1000 pixels wide cannot show more than that many x positions; keeping each
bucket's lowest and highest point (and the first and last) draws the same
picture, spikes included, from a few thousand points instead of a million.
numpy (a matplotlib dependency) does the folding.
"""

from __future__ import annotations

from array import array
from typing import Any

from audit_logging._optional import require_module

__all__ = ["COMPACT_AT", "SCREEN_BUCKETS", "Band", "Curve", "numpy"]

#: The x positions a chart can show (about its width in pixels).
SCREEN_BUCKETS = 1000
#: Raw points a curve keeps before folding them to 4 x SCREEN_BUCKETS buckets.
COMPACT_AT = 1 << 18


def numpy() -> Any:
    """numpy (a matplotlib dependency); MissingExtraError names the ``report`` extra."""
    return require_module("numpy", extra="report", package="matplotlib", feature="The run report")


def _to_array(values: Any) -> array[float]:
    out: array[float] = array("d")
    out.frombytes(values.astype("float64").tobytes())
    return out


def _buckets(x: Any, buckets: int) -> Any:
    """The bucket of each of the sorted positions ``x`` (``buckets`` equal widths)."""
    np = numpy()
    lo, hi = float(x[0]), float(x[-1])
    if hi <= lo:
        return np.arange(len(x)) * buckets // max(len(x), 1)
    return np.minimum(((x - lo) / (hi - lo) * buckets).astype(np.int64), buckets - 1)


class Curve:
    """The (x, y) points of one metric; beyond ``COMPACT_AT`` raw points, folded to min/max."""

    __slots__ = ("xs", "ys")

    def __init__(self) -> None:
        self.xs: array[float] = array("d")
        self.ys: array[float] = array("d")

    def add(self, x: float, y: float) -> None:
        self.xs.append(x)
        self.ys.append(y)
        if len(self.xs) >= COMPACT_AT:
            self.compact()

    def compact(self) -> None:
        """Fold the points to the minimum and maximum of 4 x SCREEN_BUCKETS buckets."""
        x_kept, y_kept = self.points(4 * SCREEN_BUCKETS)
        self.xs, self.ys = _to_array(x_kept), _to_array(y_kept)

    def __len__(self) -> int:
        return len(self.xs)

    def points(self, buckets: int = SCREEN_BUCKETS) -> tuple[Any, Any]:
        """numpy arrays x, y in x order: each bucket's minimum and maximum, first and last."""
        np = numpy()
        x = np.frombuffer(self.xs, dtype=np.float64)
        y = np.frombuffer(self.ys, dtype=np.float64)
        order = np.argsort(x, kind="stable")  # steps may arrive out of order (ranks, resumes)
        x, y = x[order], y[order]
        n = len(x)
        if n <= 2 * buckets:
            return x.copy(), y.copy()
        bucket = _buckets(x, buckets)
        starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
        ends = np.r_[starts[1:], n] - 1
        by_value = np.lexsort((y, bucket))  # within each bucket, lowest y first
        keep = np.unique(np.r_[by_value[starts], by_value[ends], 0, n - 1])
        return x[keep], y[keep]


class Band:
    """Summarised ranges of one metric: between x0 and x1 it stayed within [lo, hi]."""

    __slots__ = ("hi", "lo", "x0", "x1")

    def __init__(self) -> None:
        self.x0: array[float] = array("d")
        self.x1: array[float] = array("d")
        self.lo: array[float] = array("d")
        self.hi: array[float] = array("d")

    def add(self, x0: float, x1: float, lo: float, hi: float) -> None:
        self.x0.append(x0)
        self.x1.append(x1)
        self.lo.append(lo)
        self.hi.append(hi)
        if len(self.x0) >= COMPACT_AT:
            self.x0, self.x1, self.lo, self.hi = (
                _to_array(a) for a in self.ranges(4 * SCREEN_BUCKETS)
            )

    def __len__(self) -> int:
        return len(self.x0)

    def ranges(self, buckets: int = SCREEN_BUCKETS) -> tuple[Any, Any, Any, Any]:
        """numpy arrays x0, x1, lo, hi in x order, merged to at most ``buckets`` ranges."""
        np = numpy()
        x0, x1, lo, hi = (
            np.frombuffer(a, dtype=np.float64) for a in (self.x0, self.x1, self.lo, self.hi)
        )
        order = np.argsort(x1, kind="stable")
        x0, x1, lo, hi = x0[order], x1[order], lo[order], hi[order]
        if len(x1) <= buckets:
            return x0.copy(), x1.copy(), lo.copy(), hi.copy()
        bucket = _buckets(x1, buckets)
        starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
        return (
            np.minimum.reduceat(x0, starts),
            np.maximum.reduceat(x1, starts),
            np.minimum.reduceat(lo, starts),
            np.maximum.reduceat(hi, starts),
        )
