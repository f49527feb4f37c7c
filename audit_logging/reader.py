"""Reading the outputs back: journals, action logs and warning files, streamed and filtered.

Used by the ``audit-logging`` command. Every reader streams: a journal is read
line by line (backwards, for newest-first queries), never whole. A line that is
not JSON is reported to ``on_error`` with its file and line number, and reading
goes on.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit_logging._files import iter_lines, size_between_batches
from audit_logging.array_file import read_array_bytes
from audit_logging.chain import journal_key
from audit_logging.records import restore_cell
from audit_logging.schema import format_timestamp

__all__ = [
    "Entry",
    "Query",
    "Summary",
    "classify",
    "discover",
    "iter_entries",
    "journal_day",
    "parse_time",
    "summarize",
]

ErrorSink = Callable[[str], None]
_WARNING = re.compile(r"^\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}_[a-z0-9_]+_[0-9a-f]{8}.*\.json$")
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Entry:
    """One record read back: its kind (journal, action, warning), where it came from, its fields."""

    kind: str
    source: str
    line: int | None
    data: dict[str, Any]

    @property
    def timestamp(self) -> str:
        value = self.data.get("timestamp")
        return value if isinstance(value, str) else ""


@dataclass
class Sources:
    journals: list[Path] = field(default_factory=list)
    actions_json: list[Path] = field(default_factory=list)
    actions_csv: list[Path] = field(default_factory=list)
    warnings: list[Path] = field(default_factory=list)


def classify(path: Path, sources: Sources) -> bool:
    """Add ``path`` to the list of its output kind in ``sources``; ``False`` if it is none."""
    name = path.name
    if name.endswith(".jsonl"):
        sources.journals.append(path)
    elif name.endswith(".csv"):
        sources.actions_csv.append(path)
    elif _WARNING.match(name):
        sources.warnings.append(path)
    elif name.endswith(".json") and not name.endswith(".digest.json"):
        sources.actions_json.append(path)
    else:
        return False
    return True


def discover(paths: Iterable[str | os.PathLike[str]]) -> Sources:
    """Sort the files named or found under ``paths`` by output kind.

    Raises ``FileNotFoundError`` for a path that does not exist.
    """
    sources = Sources()
    for item in paths:
        path = Path(item)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and not child.name.startswith("."):
                    classify(child, sources)
        elif path.is_file():
            if not classify(path, sources):
                sources.journals.append(path)  # an explicitly named file: read it as JSONL
        else:
            raise FileNotFoundError(2, "No such file or directory", str(path))
    return sources


def parse_time(text: str) -> str:
    """An ISO 8601 date or time as our timestamp text (UTC), for comparing with stored ones."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return format_timestamp(when.timestamp())


# ---------------------------------------------------------------------- line readers


def iter_lines_backwards(path: Path, end: int | None = None) -> Iterator[tuple[int | None, bytes]]:
    """The lines of a file (up to byte ``end``) from the last to the first, read in blocks.

    Line numbers are not known without reading the whole file first, so they
    are ``None``.
    """
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        pos = fh.tell() if end is None else min(end, fh.tell())
        rest = b""
        while pos > 0:
            step = min(_CHUNK, pos)
            pos -= step
            fh.seek(pos)
            block = fh.read(step) + rest
            lines = block.split(b"\n")
            rest = lines[0]
            for line in reversed(lines[1:]):
                if line:
                    yield None, line
        if rest:
            yield None, rest


def iter_lines_forwards(path: Path, end: int | None = None) -> Iterator[tuple[int | None, bytes]]:
    """The non-empty lines of a file (up to byte ``end``), without their newline, numbered."""
    for number, line in iter_lines(path, end):
        line = line.rstrip(b"\n")
        if line:
            yield number, line


def _journal_entries(path: Path, newest_first: bool, on_error: ErrorSink) -> Iterator[Entry]:
    reader = iter_lines_backwards if newest_first else iter_lines_forwards
    # Up to a size seen between two batches: a live journal's batch being
    # appended is not reported as a malformed line.
    for number, line in reader(path, size_between_batches(path)):
        try:
            data = json.loads(line)
        except ValueError:
            where = f"{path}:{number}" if number else f"{path}"
            on_error(f"{where}: malformed line skipped: {line[:60]!r}")
            continue
        if isinstance(data, dict):
            yield Entry("journal", str(path), number, data)


def _json_action_entries(path: Path, on_error: ErrorSink) -> Iterator[Entry]:
    try:
        data = json.loads(read_array_bytes(path))
    except (ValueError, OSError) as exc:
        on_error(f"{path}: not a readable JSON array ({exc})")
        return
    if not isinstance(data, list):
        return  # some other JSON file (a config, a model): not an audit log
    for index, item in enumerate(data, 1):
        if isinstance(item, dict) and "action_type" in item:
            yield Entry("action", str(path), index, item)


def _csv_action_entries(path: Path, on_error: ErrorSink) -> Iterator[Entry]:
    # Up to a size seen between two batches: a row being appended is not read in part.
    lines = iter_lines(path, size_between_batches(path))
    reader = csv.DictReader(line.decode("utf-8", "replace") for _, line in lines)
    if "action_type" not in (reader.fieldnames or ()):
        return  # a data set or other table: not an audit log
    for row in reader:
        if not row.get("action_type"):
            on_error(f"{path}:{reader.line_num}: row without action_type skipped")
            continue
        # Cells the writer neutralised against spreadsheet formulas, as logged.
        data: dict[str, Any] = {
            k: restore_cell(v) if isinstance(v, str) else v for k, v in row.items()
        }
        details = data.get("details")
        try:
            data["details"] = json.loads(details) if details else {}
        except ValueError:
            pass
        data["error"] = data.get("error") or None
        yield Entry("action", str(path), reader.line_num, data)


def _warning_entries(paths: list[Path], on_error: ErrorSink) -> Iterator[Entry]:
    for path in paths:
        try:
            data = json.loads(path.read_bytes())
        except (ValueError, OSError) as exc:
            on_error(f"{path}: unreadable warning file ({exc})")
            continue
        if isinstance(data, dict):
            yield Entry("warning", str(path), None, data)


def journal_day(path: Path) -> str:
    """The ``YYYY-MM-DD`` in a journal's file name, or ``""`` (read as ``verify`` reads it)."""
    key = journal_key(path)
    return key[2] if key else ""


def iter_entries(
    sources: Sources, newest_first: bool = False, on_error: ErrorSink = lambda _: None
) -> Iterator[Entry]:
    """Every record of ``sources``: journals, then action logs, then warnings.

    With ``newest_first`` each kind comes newest first (journals by day, then
    backwards within a file; the JSON array as stored; CSV rows reversed;
    warnings by file name). Otherwise, in the order written.
    """
    journals = sorted(sources.journals, key=lambda p: (journal_day(p), p.name))
    if newest_first:
        journals.reverse()
    for path in journals:
        yield from _journal_entries(path, newest_first, on_error)
    for path in sources.actions_json:
        entries = list(_json_action_entries(path, on_error))  # stored newest first
        yield from (entries if newest_first else reversed(entries))
    for path in sources.actions_csv:
        if newest_first:
            yield from reversed(list(_csv_action_entries(path, on_error)))
        else:
            yield from _csv_action_entries(path, on_error)
    warnings = sorted(sources.warnings, key=lambda p: p.name, reverse=newest_first)
    yield from _warning_entries(warnings, on_error)


# ---------------------------------------------------------------------- query and summary


@dataclass
class Query:
    """Filters of ``audit-logging query``; ``None`` matches anything."""

    event: str | None = None
    action: str | None = None
    status: str | None = None
    type: str | None = None
    session: str | None = None
    since: str | None = None  # timestamp text, see parse_time
    until: str | None = None

    def matches(self, entry: Entry) -> bool:
        d = entry.data
        if self.event is not None and (entry.kind != "journal" or d.get("event") != self.event):
            return False
        if self.action is not None and (
            entry.kind != "action" or d.get("action_type") != self.action
        ):
            return False
        if self.status is not None and d.get("status") != self.status:
            return False
        if self.type is not None and (entry.kind != "warning" or d.get("type") != self.type):
            return False
        if self.session is not None and d.get("session_id") != self.session:
            return False
        ts = entry.timestamp
        if self.since is not None and ts < self.since:
            return False
        return not (self.until is not None and ts > self.until)

    def skips_journal(self, path: Path) -> bool:
        """Whether no line of the journal ``path`` can match (its day is out of range)."""
        if self.action is not None or self.type is not None:
            return True
        day = journal_day(path)
        if not day:
            return False
        return bool(
            (self.since and day < self.since[:10]) or (self.until and day > self.until[:10])
        )


@dataclass
class Summary:
    journal_lines: int = 0
    actions: int = 0
    warnings: int = 0
    events: Counter[str] = field(default_factory=Counter)
    action_types: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    warning_types: Counter[str] = field(default_factory=Counter)
    severities: Counter[str] = field(default_factory=Counter)
    sessions: set[str] = field(default_factory=set)
    first: str | None = None
    last: str | None = None

    def add(self, entry: Entry) -> None:
        d = entry.data
        if entry.kind == "journal":
            self.journal_lines += 1
            self.events[str(d.get("event"))] += 1
            if d.get("session_id"):
                self.sessions.add(str(d["session_id"]))
        elif entry.kind == "action":
            self.actions += 1
            self.action_types[str(d.get("action_type"))] += 1
            self.statuses[str(d.get("status"))] += 1
        else:
            self.warnings += 1
            self.warning_types[str(d.get("type"))] += 1
            self.severities[str(d.get("severity"))] += 1
        ts = entry.timestamp
        if ts:
            self.first = ts if self.first is None or ts < self.first else self.first
            self.last = ts if self.last is None or ts > self.last else self.last

    def as_dict(self) -> dict[str, Any]:
        return {
            "journal_lines": self.journal_lines,
            "actions": self.actions,
            "warnings": self.warnings,
            "by_event": dict(self.events.most_common()),
            "by_action_type": dict(self.action_types.most_common()),
            "by_status": dict(self.statuses.most_common()),
            "by_warning_type": dict(self.warning_types.most_common()),
            "by_severity": dict(self.severities.most_common()),
            "sessions": sorted(self.sessions),
            "first": self.first,
            "last": self.last,
        }


def summarize(sources: Sources, on_error: ErrorSink = lambda _: None) -> Summary:
    summary = Summary()
    for entry in iter_entries(sources, on_error=on_error):
        summary.add(entry)
    return summary
