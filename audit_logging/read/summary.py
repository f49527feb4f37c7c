"""``summary``: counts by event, action type, status, warning type, severity, rejection reason.

Journals are counted without parsing each line: the writer puts
``{"timestamp":"…","event":"…"`` first on every line and ``"level":…,"logger":…,
"session_id":…,"host":…`` in its context, so a regular expression over 4 MiB
blocks finds them (C speed, no ``json.loads`` per line). A block with any line
of another shape is read line by line with a JSON parser instead, so the
answer is the same as parsing everything.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit_logging._files import size_between_batches
from audit_logging.read._pieces import PARALLEL_FROM, in_pieces
from audit_logging.read.catalogue import Catalogue, LogFile, Run
from audit_logging.read.records import Record, iter_records, loads

__all__ = ["Summary", "summarize"]

_BLOCK = 4 << 20
# Each pattern starts with a literal (the line's start), which the regex engine
# searches for fast; two simple patterns run faster than one with two groups.
_STAMP = re.compile(rb'\n\{"timestamp":"([^"\\]*)"')
_EVENT = re.compile(rb'\n\{"timestamp":"[^"\\]*","event":"([^"\\]*)"')
_CONTEXT = re.compile(rb',"session_id":"([^"\\]*)","host":"([^"\\]*)","pid":')


@dataclass
class Summary:
    """What ``summary`` prints; :meth:`as_dict` is the ``summary --json`` shape."""

    files: int = 0
    journal_lines: int = 0
    actions: int = 0
    warnings: int = 0
    rejected: int = 0
    malformed: int = 0
    events: Counter[str] = field(default_factory=Counter)
    action_types: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    warning_types: Counter[str] = field(default_factory=Counter)
    severities: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    sessions: set[str] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)
    first: str | None = None
    last: str | None = None
    runs: list[Run] = field(default_factory=list)

    def stamp(self, low: str, high: str) -> None:
        if low and (self.first is None or low < self.first):
            self.first = low
        if high and (self.last is None or high > self.last):
            self.last = high

    def add(self, record: Record) -> None:
        """Count one record (any kind)."""
        d = record.data
        if record.kind == "journal":
            self.journal_lines += 1
            self.events[str(d.get("event"))] += 1
            if isinstance(d.get("session_id"), str):
                self.sessions.add(d["session_id"])
            if isinstance(d.get("host"), str):
                self.hosts.add(d["host"])
        elif record.kind == "action":
            self.actions += 1
            self.action_types[str(d.get("action_type"))] += 1
            self.statuses[str(d.get("status"))] += 1
        elif record.kind == "rejected":
            self.rejected += 1
            self.reasons[str(d.get("reason"))] += 1
        else:
            self.warnings += 1
            self.warning_types[str(d.get("type"))] += 1
            self.severities[str(d.get("severity"))] += 1
        ts = record.timestamp
        self.stamp(ts, ts)

    def as_dict(self) -> dict[str, Any]:
        """The documented, stable ``summary --json`` shape (see the README)."""
        return {
            "files": self.files,
            "journal_lines": self.journal_lines,
            "actions": self.actions,
            "warnings": self.warnings,
            "rejected": self.rejected,
            "malformed_lines": self.malformed,
            "first": self.first,
            "last": self.last,
            "sessions": sorted(self.sessions),
            "hosts": sorted(self.hosts),
            "by_event": dict(self.events.most_common()),
            "by_action_type": dict(self.action_types.most_common()),
            "by_status": dict(self.statuses.most_common()),
            "by_warning_type": dict(self.warning_types.most_common()),
            "by_severity": dict(self.severities.most_common()),
            "by_rejected_reason": dict(self.reasons.most_common()),
            "runs": [
                {
                    "session_id": run.session_id,
                    "first": run.first,
                    "last": run.last,
                    "hosts": sorted(run.hosts),
                    "ranks": sorted(run.ranks),
                    "files": [f.name for f in run.files],
                }
                for run in self.runs
            ],
        }


def _slow_block(
    summary: Summary, log: LogFile, block: bytes, on_error: Callable[[str], None]
) -> None:
    for line in block.split(b"\n"):
        if not line.strip():
            continue
        try:
            data = loads(line)
        except ValueError:
            summary.malformed += 1
            on_error(f"{log.name}: malformed line skipped: {line[:60]!r}")
            continue
        if isinstance(data, dict):
            summary.add(Record("journal", log.name, None, data))


def _scan_block(summary: Summary, block: bytes) -> bool:
    """Count a block of whole lines (starting with ``\\n``) by pattern; ``False`` if any line
    has another shape (the caller then parses the block line by line)."""
    lines = block.count(b"\n")
    stamps = _STAMP.findall(block)
    events = _EVENT.findall(block)
    if len(stamps) != lines or len(events) != lines:
        return False
    # Sessions rarely change within a block: count the first line's context
    # (C speed); only a block with several is searched in full.
    first = _CONTEXT.search(block)
    if first is None:
        return False
    if block.count(first[0]) == lines == block.count(b'"session_id":'):
        contexts = {(first[1], first[2])}
    else:
        contexts = set(_CONTEXT.findall(block))
    summary.journal_lines += lines
    for event, count in Counter(events).items():
        summary.events[event.decode("utf-8", "replace")] += count
    summary.stamp(min(stamps).decode(), max(stamps).decode())
    for session, host in contexts:
        summary.sessions.add(session.decode("utf-8", "replace"))
        summary.hosts.add(host.decode("utf-8", "replace"))
    return True


def _scan_range(
    path: str, start: int, end: int, name: str = "", on_bytes: Callable[[int], None] | None = None
) -> tuple[Summary, list[str]]:
    """Count the lines in ``[start, end)`` (whole lines); the counts and the errors met."""
    summary = Summary()
    errors: list[str] = []
    log = LogFile(Path(path), "journal", remote=name or None)
    with open(path, "rb") as fh:
        fh.seek(start)
        rest = b""
        done = start
        while done < end:
            data = fh.read(min(_BLOCK, end - done))
            if not data:
                break
            done += len(data)
            if on_bytes is not None:
                on_bytes(len(data))
            cut = data.rfind(b"\n")
            if cut < 0:
                rest += data
                continue
            block, rest = b"\n" + rest + data[:cut], data[cut + 1 :]
            if not _scan_block(summary, block):
                _slow_block(summary, log, block, errors.append)
        if rest.strip():
            _slow_block(summary, log, rest, errors.append)
    return summary, errors


def _merge(into: Summary, part: Summary) -> None:
    into.journal_lines += part.journal_lines
    into.malformed += part.malformed
    into.events.update(part.events)
    into.sessions |= part.sessions
    into.hosts |= part.hosts
    into.stamp(part.first or "", part.last or "")


def scan_journal(
    summary: Summary,
    log: LogFile,
    on_error: Callable[[str], None] = lambda _: None,
    on_bytes: Callable[[int], None] | None = None,
) -> None:
    """Add the lines of one journal to ``summary``: 4 MiB blocks, in worker processes when big."""
    end = size_between_batches(log.path)
    if end < PARALLEL_FROM:
        parts = [_scan_range(str(log.path), 0, end, log.name, on_bytes)]
    else:
        parts = in_pieces(functools.partial(_scan_range, name=log.name), log.path, end)
        if on_bytes is not None:
            on_bytes(end)
    for part, errors in parts:
        _merge(summary, part)
        for message in errors:
            on_error(message)


def summarize(
    cat: Catalogue,
    *,
    on_error: Callable[[str], None] = lambda _: None,
    on_bytes: Callable[[int], None] | None = None,
) -> Summary:
    """Count everything in ``cat``: journals by block scan, the rest record by record.

    An action in both ``audit_log.json`` and ``audit_log.csv`` of a folder
    counts once (see :mod:`audit_logging.read.records`).
    """
    summary = Summary(files=len(cat.files), runs=cat.runs)
    for log in cat.of("journal"):
        scan_journal(summary, log, on_error, on_bytes)
    for record in iter_records(
        cat, newest_first=False, kinds=("action", "warning", "rejected"), on_error=on_error
    ):
        summary.add(record)
    return summary
