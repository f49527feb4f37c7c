"""The caller-side snapshot of a record: a copy later mutation cannot change, bounded in cost.

:class:`~audit_logging.AuditQueueHandler` calls :func:`snapshot_record` in the
caller's thread before it queues the record: the containers of the caller's
``extra`` keys (audit fields and any other) and of the %-args are copied, so
that a dict the caller mutates after the call does not change the log. A
container longer than :data:`SNAPSHOT_ITEMS` (or past :data:`SNAPSHOT_BUDGET`
items for the whole record) keeps its first items, and the record carries a
note of each cut under :data:`~audit_logging.records.CUTS_KEY`
(``{".metrics_snapshot.preds": "kept 10000 of 3000000 items (cut when logged)"}``),
which the writers report: a 3-million-element list costs the caller about
10 ms, not a copy of all of it.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping
from typing import Any, Final

from audit_logging.records import CUTS_KEY
from audit_logging.truncate import jq_path

__all__ = ["MAX_NOTES", "SNAPSHOT_BUDGET", "SNAPSHOT_ITEMS", "snapshot", "snapshot_record"]

_BASE_LEN: Final = len(logging.LogRecord("", 0, "", 0, "", None, None).__dict__)
_IMMUTABLE: Final = frozenset({str, int, float, bool, type(None), bytes, complex})
#: Most items (list items, object members) the caller's snapshot copies of one container;
#: a longer one is cut there, and the record says so (its ``truncated`` member).
SNAPSHOT_ITEMS: Final = 10_000
#: Most items the snapshot of one record copies in all (nested containers share it).
SNAPSHOT_BUDGET: Final = 100_000
#: Most cuts noted one by one on a record; the rest are counted under :data:`MORE_CUTS`.
MAX_NOTES: Final = 20
MORE_CUTS: Final = "..."
# Record attributes never copied: the stdlib's, and what formatters and we add.
_NOT_COPIED: Final = frozenset(("message", "asctime", CUTS_KEY))


class _Copier:
    """One record's snapshot: the items left to copy, what was cut, containers seen."""

    __slots__ = ("cuts", "left", "memo")

    def __init__(self) -> None:
        self.left = SNAPSHOT_BUDGET
        self.cuts: dict[str, str] | None = None
        self.memo: dict[int, Any] = {}

    def quota(self, n: int) -> int:
        keep = min(n, SNAPSHOT_ITEMS, max(0, self.left))
        self.left -= keep
        return keep

    def cut(self, path: tuple[object, ...], kept: int, total: int, unit: str) -> None:
        cuts = self.cuts
        if cuts is None:
            cuts = self.cuts = {}
        if len(cuts) < MAX_NOTES:
            cuts[jq_path(path)] = f"kept {kept} of {total} {unit} (cut when logged)"
        else:
            cuts[MORE_CUTS] = f"{int(cuts.get(MORE_CUTS, '0').split()[0]) + 1} more cut"

    def copy(self, value: Any, path: tuple[object, ...]) -> Any:
        t = type(value)
        if t in _IMMUTABLE:
            return value
        ident = id(value)
        memo = self.memo
        if ident in memo:
            return memo[ident]
        if isinstance(value, dict):
            n = len(value)
            keep = self.quota(n)
            if keep == n and t is dict:
                # The common case, a flat dict of numbers or strings: one C-level copy.
                for v in value.values():
                    if type(v) not in _IMMUTABLE:
                        break
                else:
                    memo[ident] = out = value.copy()
                    return out
            out = {}
            memo[ident] = out
            try:
                for k, v in itertools.islice(value.items(), keep):
                    if type(v) in _IMMUTABLE:
                        out[k] = v
                    elif self.left > 0:
                        out[k] = self.copy(v, (*path, k))
                    else:  # the record's budget is spent: cut here, not in every child
                        break
            except Exception:  # a mapping that cannot be iterated: keep what we have
                pass
            if len(out) < n:
                self.cut(path, len(out), n, "members")
            return out
        if isinstance(value, (list, tuple)):
            n = len(value)
            keep = self.quota(n)
            items = list(value[:keep]) if keep < n else list(value)
            if t is not tuple:
                memo[ident] = items
            for index, v in enumerate(items):
                if type(v) not in _IMMUTABLE:
                    if self.left <= 0:  # the record's budget is spent: cut here
                        del items[index:]
                        break
                    items[index] = self.copy(v, (*path, index))
            if len(items) < n:
                self.cut(path, len(items), n, "items")
            return tuple(items) if isinstance(value, tuple) else items
        if isinstance(value, (set, frozenset)):
            n = len(value)
            keep = self.quota(n)
            kept = itertools.islice(value, keep) if keep < n else value
            if keep < n:
                self.cut(path, keep, n, "items")
            return frozenset(kept) if t is frozenset else set(kept)
        copy = getattr(value, "copy", None)
        if copy is not None and type(value).__module__ == "numpy":
            try:
                size = int(getattr(value, "size", 1))
                keep = self.quota(size)
                if keep < size:  # cut flat: a prefix of the values, still an array
                    self.cut(path, keep, size, "items")
                    return value.reshape(-1)[:keep].copy()
                return copy()
            except Exception:
                return value
        return value


def snapshot(value: Any) -> Any:
    """A copy of ``value`` that later mutation of the original cannot change.

    Containers (dict, list, tuple, set) are copied recursively; numpy arrays
    with ``copy()``; immutable scalars and other objects are kept as they are.
    Cycles are preserved, not followed forever. A container longer than
    :data:`SNAPSHOT_ITEMS` keeps its first items (:meth:`AuditQueueHandler.prepare`
    notes the cut on the record), so that the caller's cost stays bounded.
    """
    return _Copier().copy(value, ())


def snapshot_record(record: logging.LogRecord) -> logging.LogRecord:
    """Copy, in place, what the caller could still change in ``record``; note what was cut.

    The containers of the keys added after ``LogRecord.__init__``'s own (the
    caller's ``extra``), of the %-args and of a non-string ``msg``; numpy
    values with ``copy()``; other objects are kept, as the stdlib does.
    """
    d = record.__dict__
    copier: _Copier | None = None
    if len(d) > _BASE_LEN:
        for key in itertools.islice(d, _BASE_LEN, None):
            value = d[key]
            t = type(value)
            if t in _IMMUTABLE or key in _NOT_COPIED:
                continue
            if t is dict and len(value) <= SNAPSHOT_ITEMS:
                # The common case, a flat dict of numbers or strings: one C-level copy.
                for v in value.values():
                    if type(v) not in _IMMUTABLE:
                        break
                else:
                    d[key] = value.copy()
                    continue
            if copier is None:
                copier = _Copier()
            d[key] = copier.copy(value, (key,))
    args = record.args
    if args:
        values = args.values() if isinstance(args, Mapping) else args
        if any(type(a) not in _IMMUTABLE for a in values):
            if copier is None:
                copier = _Copier()
            record.args = copier.copy(args, ("args",))
    if type(record.msg) is not str:
        if copier is None:
            copier = _Copier()
        record.msg = copier.copy(record.msg, ("msg",))
    if copier is not None and copier.cuts:
        d[CUTS_KEY] = copier.cuts
    return record
