"""The report's only door to the logs: every file it reads, it reads here.

Two functions, :func:`read_items` (the records, streamed) and :func:`verify`
(what the chain check found), so that moving the report from one read layer to
another is a change to this file alone. Today they sit on
:mod:`audit_logging.reader` and :func:`audit_logging.chain.verify_paths`; the
read package (``audit_logging.read``: ``catalogue``, ``iter_records``,
``verify``) replaces both once it is merged.

Journal lines come in the order written (file after file, day order) and are
parsed with orjson when it is installed: on a 1 M-line journal, ``json.loads``
alone takes about 6 s of the report's 10 s budget, orjson about 1.5 s.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from audit_logging import reader
from audit_logging._files import size_between_batches
from audit_logging.chain import hasher_from_env, log_kind, verify_paths

__all__ = ["Item", "Verification", "read_items", "verify"]

_loads: Callable[[bytes], Any]
try:  # the `fast` extra; why: see the module docstring
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - orjson is in `all`
    _loads = json.loads

PathLike = str | os.PathLike[str]


class Item(NamedTuple):
    """One record read back: ``kind`` is ``journal``, ``action`` or ``warning``."""

    kind: str
    source: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Verification:
    """What checking the hash chains of the files found.

    ``files`` is the number of chained files checked (0: nothing could be
    verified); ``problems`` one line each; ``unproven`` the bytes that could
    not be proven either way (a writer still open), one line each.
    """

    ok: bool
    files: int
    lines: int
    problems: list[str] = field(default_factory=list)
    unproven: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``intact``, ``tampered`` or ``unverified`` (no chained file)."""
        if not self.ok:
            return "tampered"
        return "intact" if self.files else "unverified"


def read_items(paths: Sequence[PathLike], on_error: Callable[[str], None]) -> Iterator[Item]:
    """Every record under ``paths``: journal lines as written, then actions and warnings.

    Raises ``FileNotFoundError`` for a path that does not exist. A line that
    is not JSON is reported to ``on_error`` and skipped.
    """
    sources = reader.discover(paths)
    # A writer's rejects file (rejected-DAY.jsonl) holds records it refused: not the run's.
    journals = sorted(
        (p for p in sources.journals if log_kind(p) == "journal" or p.suffix != ".jsonl"),
        key=lambda p: (reader.journal_day(p), p.name),
    )
    for path in journals:
        source = str(path)
        for number, line in reader.iter_lines_forwards(path, size_between_batches(path)):
            try:
                data = _loads(line)
            except ValueError:
                data = _stdlib_loads(line)  # orjson refuses integers beyond 64 bits
            if data is None:
                on_error(f"{source}:{number}: malformed line skipped: {line[:60]!r}")
                continue
            if isinstance(data, dict):
                yield Item("journal", source, data)
    rest = reader.Sources(
        actions_json=sources.actions_json,
        actions_csv=sources.actions_csv,
        warnings=sources.warnings,
    )
    # One writer set puts an action in both audit_log.json and audit_log.csv of a
    # folder: it is one action (same folder, timestamp, type, status, error).
    seen: set[tuple[str, ...]] = set()
    for entry in reader.iter_entries(rest, newest_first=False, on_error=on_error):
        if entry.kind == "action":
            d = entry.data
            key = tuple(str(d.get(k)) for k in ("timestamp", "action_type", "status", "error"))
            key = (os.path.dirname(entry.source), *key)
            if entry.source.endswith(".csv") and key in seen:
                continue
            seen.add(key)
        yield Item(entry.kind, entry.source, entry.data)


def _stdlib_loads(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def verify(paths: Sequence[PathLike]) -> Verification:
    """Check the hash chains and digests of the journals and action logs under ``paths``.

    The HMAC key, if any, comes from ``AUDIT_LOG_HMAC_KEY`` as for ``verify``.
    """
    report = verify_paths(paths, hasher_from_env())
    problems = [str(p) for p in sorted(report.problems, key=lambda p: (p.path, p.line or 0))]
    return Verification(report.ok, report.files, report.lines, problems)
