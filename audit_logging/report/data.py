"""The report's only door to the logs: every file it reads, it reads here.

Two functions, :func:`read_items` (the records, streamed) and :func:`verify`
(what the chain check found), on the read package (``audit_logging.read``:
``catalogue``, ``iter_records``, ``verify``), so that the report reads and
verifies exactly as the other commands do, and a change of read layer is a
change to this file alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from audit_logging.read import catalogue, iter_records
from audit_logging.read import verify as verify_catalogue

__all__ = ["Item", "Verification", "read_items", "verify"]

PathLike = str | os.PathLike[str]
_KINDS = ("journal", "action", "warning")


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
    not be proven either way (a writer still open, lines after the last seal),
    one line each.
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
    """Every record under ``paths``, oldest first, all kinds merged by timestamp.

    Raises ``FileNotFoundError`` for a path that does not exist. A line that
    is not JSON is reported to ``on_error`` and skipped. A writer's rejects
    file is not the run's (kind ``rejected``, left out), and an action in both
    ``audit_log.json`` and ``audit_log.csv`` of a folder comes once.
    """
    cat = catalogue(paths)
    for record in iter_records(cat, newest_first=False, kinds=_KINDS, on_error=on_error):
        yield Item(record.kind, record.source, record.data)


def verify(paths: Sequence[PathLike]) -> Verification:
    """Check the hash chains, digests and manifests of the files under ``paths``.

    The HMAC key, if any, comes from ``AUDIT_LOG_HMAC_KEY`` as for ``verify``.
    """
    report = verify_catalogue(catalogue(paths))
    problems = [str(p) for p in sorted(report.problems, key=lambda p: (p.path, p.line or 0))]
    unproven = [str(u) for u in report.unproven]
    return Verification(report.ok, report.files, report.lines, problems, unproven)
