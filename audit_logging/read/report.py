"""What ``verify`` found: problems (exit 1), bytes it could not prove, files retired."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from audit_logging._verdicts import Problem, Unproven

__all__ = ["Problem", "Unproven", "VerifyReport"]


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
