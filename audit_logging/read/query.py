"""``query`` and ``export``: filter the merged stream; write it as JSONL, a JSON array or CSV.

CSV of mixed kinds has one header, the union of the kinds' columns in a fixed
order (``kind``, then journal, action, warning and rejected columns, each
once), so every record's fields land in their own column.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TextIO

from audit_logging.formats import journal_key
from audit_logging.read.catalogue import Catalogue
from audit_logging.read.records import RECORD_KIND, ErrorSink, Record, iter_records
from audit_logging.records import cell
from audit_logging.schema import (
    ACTION_FIELDS,
    JOURNAL_CONTEXT_FIELDS,
    JOURNAL_FIELDS,
    WARNING_FIELDS,
    format_timestamp,
)

__all__ = [
    "COLUMNS",
    "Query",
    "columns_for",
    "kinds_in",
    "parse_time",
    "select",
    "write_csv",
    "write_json",
    "write_jsonl",
]

#: The columns of each record kind, in the order they are written.
COLUMNS: dict[str, tuple[str, ...]] = {
    "journal": (*JOURNAL_FIELDS, *JOURNAL_CONTEXT_FIELDS, "hash"),
    "action": (*ACTION_FIELDS, "seq", "hash"),
    "warning": WARNING_FIELDS,
    "rejected": ("timestamp", "reason", "writer"),
}


def columns_for(kinds: Iterable[str]) -> tuple[str, ...]:
    """``kind`` then the union of the columns of ``kinds``, in :data:`COLUMNS` order."""
    wanted = set(kinds)
    out: dict[str, None] = {"kind": None}
    for kind, names in COLUMNS.items():
        if kind in wanted:
            out.update(dict.fromkeys(names))
    return tuple(out)


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

    def kinds(self) -> set[str]:
        """The record kinds that can match."""
        if self.event is not None or self.session is not None:
            return {"journal"}
        if self.action is not None:
            return {"action"}
        if self.type is not None:
            return {"warning"}
        return {"journal", "action", "warning", "rejected"}

    def matches(self, record: Record) -> bool:
        d = record.data
        if self.event is not None and d.get("event") != self.event:
            return False
        if self.action is not None and d.get("action_type") != self.action:
            return False
        if self.status is not None and d.get("status") != self.status:
            return False
        if self.type is not None and d.get("type") != self.type:
            return False
        ts = record.timestamp
        if self.since is not None and ts < self.since:
            return False
        return not (self.until is not None and ts > self.until)

    def skips_journal(self, name: str) -> bool:
        """Whether no line of the journal named ``name`` can match (its day is out of range)."""
        key = journal_key(name)
        if key is None:
            return False
        day = key[2]
        return bool(
            (self.since and day < self.since[:10]) or (self.until and day > self.until[:10])
        )


def select(
    cat: Catalogue,
    query: Query,
    *,
    limit: int | None = None,
    newest_first: bool = True,
    on_error: ErrorSink = lambda _: None,
) -> Iterator[Record]:
    """The records of ``cat`` matching ``query``, newest first: at most ``limit`` (``0``: none)."""
    if limit is not None and limit <= 0:
        return
    kinds = query.kinds()
    files = [f for f in cat.files if f.kind != "journal" or not query.skips_journal(f.path.name)]
    count = 0
    for record in iter_records(
        cat,
        newest_first=newest_first,
        kinds=kinds,
        session=query.session,
        files=files,
        on_error=on_error,
    ):
        if query.matches(record):
            yield record
            count += 1
            if limit is not None and count >= limit:
                return


def kinds_in(cat: Catalogue, query: Query | None = None) -> set[str]:
    """The record kinds ``cat``'s files can give (and ``query`` can match)."""
    present = {RECORD_KIND[f.kind] for f in cat.files if f.kind in RECORD_KIND}
    return present & query.kinds() if query is not None else present


def write_csv(out: TextIO, records: Iterable[Record], columns: Sequence[str]) -> int:
    """``records`` as CSV with ``columns`` (see :func:`columns_for`); returns the row count."""
    writer = csv.writer(out)
    writer.writerow(columns)
    rows = 0
    for record in records:
        data = record.data
        writer.writerow([record.kind, *(cell(data.get(c)) for c in columns[1:])])
        rows += 1
    return rows


def write_json(out: TextIO, records: Iterable[Record]) -> int:
    """``records`` as one JSON array, an entry per line, streamed (never held whole)."""
    out.write("[")
    rows = 0
    for rows, record in enumerate(records, 1):
        out.write(("," if rows > 1 else "") + "\n  " + json.dumps(record.data, ensure_ascii=False))
    out.write("\n]\n")
    return rows


def write_jsonl(out: TextIO, records: Iterable[Record]) -> int:
    """``records`` one JSON object per line."""
    rows = 0
    for record in records:
        out.write(json.dumps(record.data, ensure_ascii=False) + "\n")
        rows += 1
    return rows
