"""What a verification finds: a problem (exit 1) or bytes it could not prove.

A private leaf shared by the read package's ``verify`` and the seal checks
(:mod:`audit_logging.seals.verify`), which sits below the read package and so
cannot import it: one definition of each, used by both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Problem", "Unproven"]


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
