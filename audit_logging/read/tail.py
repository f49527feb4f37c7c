"""``tail``: the newest journal of a folder and its last lines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from audit_logging.formats import journal_key, kind_of
from audit_logging.read.records import iter_lines_backwards

__all__ = ["last_lines", "newest_journal"]


def newest_journal(path: Path) -> Path | None:
    """``path`` itself if a file, else its newest journal (by the day in the name, then mtime)."""
    if path.is_file():
        return path
    journals = [p for p in path.rglob("*.jsonl") if kind_of(p) == "journal"]

    def order(p: Path) -> tuple[str, float]:
        key = journal_key(p.name)
        return (key[2] if key else "", p.stat().st_mtime)

    return max(journals, key=order) if journals else None


def last_lines(path: Path, count: int, end: int) -> Iterator[bytes]:
    """The last ``count`` lines of ``path`` up to byte ``end``, oldest first."""
    lines: list[bytes] = []
    for line in iter_lines_backwards(path, end):
        if len(lines) >= count:
            break
        lines.append(line)
    return reversed(lines)
