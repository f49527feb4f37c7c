"""What ``verify`` found: problems (exit 1), bytes it could not prove, files retired."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Problem", "Unproven", "VerifyReport"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong: where (file, 1-based line or ``None`` for the whole file) and what.

    ``kind``: edited | missing | duplicated | reordered | truncated | digest |
    chain-break | malformed | unchained | manifest | differs | seal
    """

    path: str
    line: int | None
    kind: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.kind}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "kind": self.kind, "message": self.message}


@dataclass(frozen=True)
class Unproven:
    """Bytes ``verify`` could neither prove nor fault: a writer still open, lines after
    the last digest or seal, a file no chain or manifest covers."""

    path: str
    bytes: int
    lines: int | None
    reason: str

    def __str__(self) -> str:
        lines = f", {self.lines} line(s)" if self.lines is not None else ""
        return f"{self.path}: unproven: {self.bytes} byte(s){lines}: {self.reason}"

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "bytes": self.bytes, "lines": self.lines, "reason": self.reason}


@dataclass
class VerifyReport:
    """The answer of :func:`audit_logging.read.verify`; ``ok`` when nothing is wrong.

    ``as_dict()`` is the documented ``verify --json`` shape.
    """

    files: int = 0
    lines: int = 0
    problems: list[Problem] = field(default_factory=list)
    unproven: list[Unproven] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        """The ``verify --json`` shape (see the README): stable keys, problems in path order."""
        problems = sorted(self.problems, key=lambda p: (p.path, p.line or 0))
        return {
            "ok": self.ok,
            "files": self.files,
            "lines": self.lines,
            "problems": [p.as_dict() for p in problems],
            "unproven": [u.as_dict() for u in self.unproven],
            "unproven_bytes": sum(u.bytes for u in self.unproven),
            "retired": sorted(self.retired),
        }
