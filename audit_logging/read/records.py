"""Every record of a catalogue, one merged stream ordered by timestamp.

Each file gives an iterator already in time order (a journal forwards or
backwards in blocks, an array as stored, a CSV forwards or backwards, warning
files by the time in their names); :func:`iter_records` merges them with
``heapq.merge``, so memory is bounded by the number of files (plus, for an
``audit_log.json``, its bytes: the array is read whole, under its writers'
lock, as every reader of it must).

Duplicates: an action that one writer set wrote to both ``audit_log.json``
and ``audit_log.csv`` of a folder is one action. The pair is recognised by the
same ``timestamp``, ``action_type``, ``status``, ``details`` and ``error``
(the default CSV carries no chain columns to compare); the first of the two
to come is kept.
"""

from __future__ import annotations

import csv
import heapq
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit_logging._files import iter_lines, size_between_batches
from audit_logging.array_file import read_array_bytes
from audit_logging.read.catalogue import Catalogue, LogFile
from audit_logging.records import restore_cell

__all__ = ["Record", "file_records", "iter_lines_backwards", "iter_records", "loads"]

ErrorSink = Callable[[str], None]
_CHUNK = 1 << 20
_WS = b" \t\r\n"

_fast_loads: Callable[[bytes], Any]
try:  # orjson parses a journal line about three times faster than json
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - the fast extra is missing
    _fast_loads = json.loads


def loads(data: bytes) -> Any:
    """One JSON value from bytes (orjson when installed); ``ValueError`` when malformed."""
    return _fast_loads(data)


@dataclass(frozen=True)
class Record:
    """One record read back.

    ``kind``: ``journal``, ``action``, ``warning`` or ``rejected``; ``source``
    the file (or ``gs://`` URL); ``line`` its 1-based line or position when
    known (reading backwards does not know it).
    """

    kind: str
    source: str
    line: int | None
    data: dict[str, Any]

    @property
    def timestamp(self) -> str:
        value = self.data.get("timestamp")
        return value if isinstance(value, str) else ""

    @property
    def session(self) -> str | None:
        value = self.data.get("session_id")
        return value if isinstance(value, str) else None


def _ignore(_: str) -> None:
    pass


# ---------------------------------------------------------------------- line readers


def iter_lines_backwards(path: Path, end: int | None = None) -> Iterator[bytes]:
    """The non-empty lines of a file (up to byte ``end``), last first, read in 1 MiB blocks."""
    with path.open("rb") as fh:
        pos = fh.seek(0, os.SEEK_END)
        if end is not None:
            pos = min(pos, end)
        rest = b""
        while pos > 0:
            step = min(_CHUNK, pos)
            pos -= step
            fh.seek(pos)
            lines = (fh.read(step) + rest).split(b"\n")
            rest = lines[0]
            for line in reversed(lines[1:]):
                if line:
                    yield line
        if rest:
            yield rest


def _json_lines(
    log: LogFile, kind: str, newest_first: bool, on_error: ErrorSink
) -> Iterator[Record]:
    # Up to a size seen between two batches: a batch being appended is not
    # reported as a malformed line.
    end = size_between_batches(log.path)
    source = log.name
    numbered: Iterable[tuple[int | None, bytes]]
    if newest_first:
        numbered = ((None, line) for line in iter_lines_backwards(log.path, end))
    else:
        numbered = iter_lines(log.path, end)
    for number, raw in numbered:
        line = raw.rstrip(b"\r\n")
        if not line:
            continue
        try:
            data = _fast_loads(line)
        except ValueError:
            where = f"{source}:{number}" if number else source
            on_error(f"{where}: malformed line skipped: {line[:60]!r}")
            continue
        if isinstance(data, dict):
            yield Record(kind, source, number, data)


def array_entries(data: bytes) -> list[Any] | None:
    """The entries of an array's bytes, newest first as stored; ``None`` if not a JSON array."""
    if not data.strip(_WS):
        return []
    try:
        value = _fast_loads(data)
    except ValueError:
        return None
    return value if isinstance(value, list) else None


def _array_records(log: LogFile, newest_first: bool, on_error: ErrorSink) -> Iterator[Record]:
    try:
        entries = array_entries(read_array_bytes(log.path))
    except OSError as exc:
        on_error(f"{log.name}: unreadable ({exc.strerror or exc})")
        return
    if entries is None:
        on_error(f"{log.name}: not a JSON array, skipped")
        return
    positions = range(len(entries)) if newest_first else range(len(entries) - 1, -1, -1)
    for at in positions:
        item = entries[at]
        if isinstance(item, dict) and "action_type" in item:
            yield Record("action", log.name, at + 1, item)


def _csv_data(header: Sequence[str], cells: Sequence[str]) -> dict[str, Any]:
    data: dict[str, Any] = {k: restore_cell(v) for k, v in zip(header, cells, strict=False)}
    details = data.get("details")
    try:
        data["details"] = json.loads(details) if details else {}
    except ValueError:
        pass
    data["error"] = data.get("error") or None
    for name in ("seq",):
        if isinstance(data.get(name), str) and data[name].isdigit():
            data[name] = int(data[name])
    return data


def _csv_rows_backwards(path: Path, end: int) -> Iterator[str]:
    """Whole CSV rows but the header, last first; a quoted newline joins its pieces."""
    pending: list[bytes] = []
    quotes = 0
    held: str | None = None  # one row behind, so that the header (the last) is not given
    for line in iter_lines_backwards(path, end):
        pending.append(line)
        quotes += line.count(b'"')
        if quotes % 2 == 0:  # an even count of quotes: the row is whole
            row = b"\n".join(reversed(pending)).decode("utf-8", "replace")
            pending, quotes = [], 0
            if held is not None:
                yield held
            held = row


def _csv_records(log: LogFile, newest_first: bool, on_error: ErrorSink) -> Iterator[Record]:
    end = size_between_batches(log.path)
    with log.path.open("rb") as fh:
        first = fh.readline()
    header = next(csv.reader([first.decode("utf-8-sig", "replace")]), [])
    if "action_type" not in header:
        return  # a data set or other table: not an audit log
    if newest_first:
        for text in _csv_rows_backwards(log.path, end):
            cells = next(csv.reader([text]), [])
            if cells:
                yield _csv_record(log, header, cells, None, on_error)
        return
    lines = (raw.decode("utf-8", "replace") for _, raw in iter_lines(log.path, end))
    reader = csv.reader(lines)
    next(reader, None)
    for cells in reader:
        if cells:
            yield _csv_record(log, header, cells, reader.line_num, on_error)


def _csv_record(
    log: LogFile, header: Sequence[str], cells: Sequence[str], line: int | None, on_error: ErrorSink
) -> Record:
    data = _csv_data(header, cells)
    if not data.get("action_type"):
        on_error(f"{log.name}:{line or '?'}: row without action_type")
    return Record("action", log.name, line, data)


def _warning_records(
    files: Sequence[LogFile], newest_first: bool, on_error: ErrorSink
) -> Iterator[Record]:
    # The name starts with the creation time, so name order is time order.
    for log in sorted(files, key=lambda f: f.path.name, reverse=newest_first):
        try:
            data = _fast_loads(log.path.read_bytes())
        except (ValueError, OSError) as exc:
            on_error(f"{log.name}: unreadable warning file ({exc})")
            continue
        if isinstance(data, dict):
            yield Record("warning", log.name, None, data)


def file_records(
    log: LogFile, *, newest_first: bool = True, on_error: ErrorSink = _ignore
) -> Iterator[Record]:
    """The records of one file, in time order (see the module docstring)."""
    if log.kind == "journal":
        return _json_lines(log, "journal", newest_first, on_error)
    if log.kind == "rejects":
        return _json_lines(log, "rejected", newest_first, on_error)
    if log.kind == "array":
        return _array_records(log, newest_first, on_error)
    if log.kind == "csv":
        return _csv_records(log, newest_first, on_error)
    if log.kind == "warning":
        return _warning_records([log], newest_first, on_error)
    return iter(())


#: Record kinds per file kind.
RECORD_KIND = {
    "journal": "journal",
    "rejects": "rejected",
    "array": "action",
    "csv": "action",
    "warning": "warning",
}


def _action_key(data: dict[str, Any]) -> tuple[str, ...]:
    return (
        str(data.get("action_type")),
        str(data.get("status")),
        json.dumps(data.get("details"), sort_keys=True, default=str),
        str(data.get("error") or ""),
    )


def _drop_pairs(records: Iterator[Record], paired: dict[str, str]) -> Iterator[Record]:
    """Of an action in both the array and the CSV of one folder (``paired``: source -> folder),
    yield the first to come only."""
    stamp = None
    seen: Counter[tuple[str, str, tuple[str, ...]]] = Counter()
    for record in records:
        folder = paired.get(record.source) if record.kind == "action" else None
        if folder is None:
            yield record
            continue
        if record.timestamp != stamp:
            stamp, seen = record.timestamp, Counter()
        side = "csv" if record.source.endswith(".csv") else "json"
        other = "json" if side == "csv" else "csv"
        key = _action_key(record.data)
        if seen[(folder, other, key)] > 0:
            seen[(folder, other, key)] -= 1
            continue
        seen[(folder, side, key)] += 1
        yield record


def _pairs(files: Sequence[LogFile]) -> dict[str, str]:
    """Sources of the action files that share a folder with one of the other format."""
    by_folder: dict[str, set[str]] = {}
    for log in files:
        if log.kind in ("array", "csv"):
            by_folder.setdefault(str(log.path.parent), set()).add(log.kind)
    return {
        log.name: str(log.path.parent)
        for log in files
        if log.kind in ("array", "csv") and len(by_folder[str(log.path.parent)]) == 2
    }


def iter_records(
    cat: Catalogue,
    *,
    newest_first: bool = True,
    kinds: Iterable[str] | None = None,
    session: str | None = None,
    files: Sequence[LogFile] | None = None,
    on_error: ErrorSink = _ignore,
) -> Iterator[Record]:
    """Every record of every kind and run in ``cat``, merged by timestamp.

    ``kinds`` keeps record kinds (``journal``, ``action``, ``warning``,
    ``rejected``); ``session`` keeps records of that session id; ``files``
    replaces the catalogue's file list (a caller that skipped some).
    """
    wanted = set(kinds) if kinds is not None else None
    chosen = [
        f
        for f in (cat.files if files is None else files)
        if f.kind in RECORD_KIND and (wanted is None or RECORD_KIND[f.kind] in wanted)
    ]
    streams: list[Iterator[Record]] = [
        file_records(f, newest_first=newest_first, on_error=on_error)
        for f in chosen
        if f.kind != "warning"
    ]
    warnings = [f for f in chosen if f.kind == "warning"]
    if warnings:
        streams.append(_warning_records(warnings, newest_first, on_error))
    merged: Iterator[Record] = heapq.merge(
        *streams, key=lambda r: r.timestamp, reverse=newest_first
    )
    paired = _pairs(chosen)
    if paired:
        merged = _drop_pairs(merged, paired)
    if session is not None:
        merged = (r for r in merged if r.session == session)
    return merged
