"""Cutting a record to size without changing its shape.

:func:`truncate_fields` cuts a journal line over the writer's
``max_record_bytes`` inside its containers: an object stays an object, a list
a list, a string a string (ending with ``…[truncated N bytes]``), and each
container cut is noted under its jq path (:func:`jq_path`), for the line's
``truncated`` member. The caller-side snapshot
(:mod:`audit_logging.snapshot`) notes its own cuts the same way.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any, Final

from audit_logging.schema import dumps, safe_str, to_jsonable

__all__ = ["jq_path", "truncate_fields"]


_MARK: Final = "…[truncated {} bytes]"


def jq_path(parts: Sequence[object]) -> str:
    """``(".metrics_snapshot", "preds", 3)`` -> ``.metrics_snapshot.preds[3]``: a jq path."""
    out = []
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif isinstance(part, str) and part.isidentifier():
            out.append(f".{part}")
        else:
            out.append(f"[{dumps(safe_str(part)).decode('utf-8')}]")
    return "".join(out)


def _cut_string(text: str, budget: int) -> str:
    raw = text.encode("utf-8", "surrogatepass")
    kept = raw[: max(0, budget)].decode("utf-8", "ignore")
    return kept + _MARK.format(len(raw) - len(kept.encode("utf-8")))


def _shares(sizes: Sequence[int], budget: int) -> list[int]:
    """Split ``budget`` over members of ``sizes``: small ones keep theirs, big ones share."""
    shares = [0] * len(sizes)
    left, remaining = budget, len(sizes)
    for i in sorted(range(len(sizes)), key=sizes.__getitem__):
        shares[i] = min(sizes[i], left // remaining)
        left -= shares[i]
        remaining -= 1
    return shares


_MAX_MEMBERS: Final = 10_000  # members of one object weighed one by one
_SHARED_MEMBERS: Final = 64  # up to this many members, an object's budget is shared out


def _shrink(value: Any, budget: int, path: tuple[object, ...], cuts: dict[str, str]) -> Any:
    """``value`` with its JSON cut to about ``budget`` bytes, keeping its type at every level.

    Strings are shortened with a ``…[truncated N bytes]`` suffix; lists keep
    their first items that fit and objects their members, each shortened in
    turn; ``cuts`` gets a note under each container's jq path; numbers,
    booleans and ``null`` are kept.
    """
    if not isinstance(value, (str, list, dict)):
        value = to_jsonable(value)
    if isinstance(value, str):
        if len(value) + 2 > budget or len(dumps(value)) > budget:
            return _cut_string(value, max(16, budget - 40))
        return value
    if isinstance(value, dict):
        total = len(value)
        items = list(itertools.islice(value.items(), _MAX_MEMBERS))
        out: dict[Any, Any] = {}
        if len(items) <= _SHARED_MEMBERS:
            # A record-like object (metrics by name): every member gets its share.
            sizes = [len(dumps(k)) + len(dumps(v)) + 2 for k, v in items]
            for (k, v), size, share in zip(items, sizes, _shares(sizes, budget), strict=True):
                if share >= size:
                    out[k] = v
                elif share >= 32:
                    out[k] = _shrink(v, share - len(dumps(k)) - 2, (*path, k), cuts)
        else:  # a table (per-class scores): its first members that fit
            out = dict(_first_that_fit(items, budget, path, cuts))
        if len(out) < total:
            cuts[jq_path(path)] = f"kept {len(out)} of {total} members"
        return out
    kept = [item for _, item in _first_that_fit(enumerate(value), budget, path, cuts)]
    if len(kept) < len(value):
        cuts[jq_path(path)] = f"kept {len(kept)} of {len(value)} items"
    return kept


def _first_that_fit(
    items: Iterable[tuple[Any, Any]], budget: int, path: tuple[object, ...], cuts: dict[str, str]
) -> list[tuple[Any, Any]]:
    """The first ``(key, value)`` pairs whose JSON fits in ``budget``, large ones shrunk."""
    kept: list[tuple[Any, Any]] = []
    left = budget
    for key, item in items:
        size = len(dumps(item)) + len(dumps(key)) + 2
        if size > left // 4 and size > 64:
            item = _shrink(item, max(64, left // 4), (*path, key), cuts)
            size = len(dumps(item)) + len(dumps(key)) + 2
        if size > left:
            break
        kept.append((key, item))
        left -= size
    return kept


def truncate_fields(
    fields: dict[str, Any], limit: int, cuts: dict[str, str] | None = None
) -> dict[str, Any]:
    """``fields`` cut so that their JSON fits in about ``limit`` bytes, keeping every shape.

    An object stays an object and a list a list: long lists and objects keep
    their first members, long strings are shortened with a
    ``…[truncated N bytes]`` suffix. Each container cut is noted in ``cuts``
    (``{jq path: "kept 1000 of 3000000 items"}``), which the writer adds to
    the line as its ``truncated`` member. Small values are kept as they are.
    """
    if cuts is None:
        cuts = {}
    sizes = [len(dumps(value)) + len(key) + 4 for key, value in fields.items()]
    out: dict[str, Any] = {}
    for (key, value), size, share in zip(fields.items(), sizes, _shares(sizes, limit), strict=True):
        out[key] = value if share >= size else _shrink(value, share - len(key) - 4, (key,), cuts)
    return out
