"""One home per record kind: how a :class:`logging.LogRecord` becomes each output's record.

Writers call these functions and readers use the same names, so that the
rules of a record kind live in one place:

* the journal line: :func:`journal_fields` (the per-record part, with the
  caller's other ``extra`` keys under ``extra``), :func:`journal_context`,
  :func:`journal_record` (a line over the writer's size limit is cut by
  :func:`audit_logging.truncate.truncate_fields`, keeping its shape);
* the action entry and its CSV row: :func:`action_entry`, :func:`action_row`,
  :func:`cell` and the formula guard (:func:`neutralise`, :func:`restore_cell`);
* the warning body: :func:`warning_body`;
* the line of a rejects file: :func:`rejected_line`.

What the caller's thread cut when it took its snapshot (a list of millions of
items) is carried on the record under :data:`CUTS_KEY` as ``{path: note}``
and reported in the record's ``truncated`` member, with what the writer cut.
"""

from __future__ import annotations

import csv
import difflib
import enum
import hashlib
import io
import itertools
import logging
import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any, Final

from audit_logging import context
from audit_logging.redact import DEFAULT_REDACTOR, Redactor
from audit_logging.schema import (
    ACTION_FIELDS,
    ACTION_KEY,
    AUDIT_EXTRA_KEYS,
    DEFAULT_SEVERITIES,
    HOST,
    WARNING_KEY,
    dumps,
    event_name,
    format_timestamp,
    known_events,
    safe_str,
    session_id,
    to_jsonable,
)
from audit_logging.schemas import SCHEMA_VERSION

__all__ = [
    "CHAINED_HEADER",
    "CUTS_KEY",
    "FORMULA_TRIGGERS",
    "HEADER",
    "NOT_EXTRA",
    "action_entry",
    "action_row",
    "cell",
    "did_you_mean",
    "extra_fields",
    "journal_context",
    "journal_fields",
    "journal_record",
    "neutralise",
    "record_exception",
    "record_message",
    "record_time",
    "rejected_line",
    "render_row",
    "restore_cell",
    "warning_body",
    "warning_type_name",
]

#: Record attribute holding what the caller-side snapshot cut: ``{jq path: note}``.
CUTS_KEY: Final = "_audit_cuts"

# --------------------------------------------------------------------------- messages


def record_message(record: logging.LogRecord) -> str:
    """``record.getMessage()``, or a readable stand-in when the %-args do not fit."""
    try:
        return record.getMessage()
    except Exception:
        return f"{safe_str(record.msg)} {safe_str(record.args)}"


def record_exception(record: logging.LogRecord) -> str | None:
    """The record's traceback (and stack) as text, or ``None``."""
    parts: list[str] = []
    if record.exc_text:
        parts.append(record.exc_text)
    elif record.exc_info and record.exc_info[0] is not None:
        try:
            parts.append("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        except Exception:
            parts.append(safe_str(record.exc_info[1]))
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts) if parts else None


# --------------------------------------------------------------------------- extra keys

_BASE_ATTRIBUTES: Final = tuple(logging.LogRecord("", 0, "", 0, "", None, None).__dict__)
# LogRecord.__init__ sets its attributes first; makeRecord adds the caller's
# ``extra`` after them, so only the keys past these need looking at.
_BASE_LEN: Final = len(_BASE_ATTRIBUTES)
_islice: Final = itertools.islice
#: Record attributes that are never the caller's extra keys.
NOT_EXTRA: Final = frozenset(
    (*_BASE_ATTRIBUTES, *AUDIT_EXTRA_KEYS, "message", "asctime", "taskName", CUTS_KEY)
)


def extra_fields(record: logging.LogRecord) -> dict[str, Any] | None:
    """The caller's ``extra`` keys that are not audit fields (``epoch``, ...), or ``None``.

    Standard :class:`logging.LogRecord` attributes (``taskName`` too) and the
    audit fields of any output are not extras.
    """
    d = record.__dict__
    if len(d) <= _BASE_LEN:
        return None
    tail = list(itertools.islice(d, _BASE_LEN, None))
    if NOT_EXTRA.issuperset(tail):  # the common case, one C-level test
        return None
    return {key: d[key] for key in tail if key not in NOT_EXTRA and type(key) is str} or None


# --------------------------------------------------------------------------- journal


def journal_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The per-record part of a journal line.

    :data:`~audit_logging.schema.JOURNAL_FIELDS`, then ``message``,
    ``exception`` and ``extra`` (the caller's other ``extra`` keys, ``None``
    when there are none). Every field is present, ``None`` where the record
    does not carry it.
    """
    d = record.__dict__
    get = d.get
    event = get("event")
    msg = record.msg
    return {
        "timestamp": format_timestamp(record.created),
        "event": event if type(event) is str else event_name(event),
        "dataset": get("dataset"),
        "model": get("model"),
        "decision": get("decision"),
        "reasoning": get("reasoning"),
        "metrics_snapshot": get("metrics_snapshot"),
        "message": msg if not record.args and type(msg) is str else record_message(record),
        "exception": (
            record_exception(record)
            if record.exc_info or record.exc_text or record.stack_info
            else None
        ),
        # Most records carry no extra key: one C-level test, no call.
        "extra": (
            extra_fields(record)
            if len(d) > _BASE_LEN and not NOT_EXTRA.issuperset(_islice(d, _BASE_LEN, None))
            else None
        ),
    }


def journal_context(record: logging.LogRecord, session: str | None = None) -> dict[str, Any]:
    """The context part of a journal line: the same for every record of one logger and process.

    ``level, logger, session_id, host, pid``, then the process's place in a
    distributed job (``rank, local_rank, world_size``: ``None`` when not
    distributed; see :mod:`audit_logging.context`) and ``schema_version``.
    """
    run = context.current()
    return {
        "level": record.levelname,
        "logger": record.name,
        "session_id": session if session is not None else run.session_id,
        "host": HOST,
        "pid": record.process,
        "rank": run.rank,
        "local_rank": run.local_rank,
        "world_size": run.world_size,
        "schema_version": SCHEMA_VERSION,
    }


def journal_record(record: logging.LogRecord, session: str | None = None) -> dict[str, Any]:
    """The journal line of ``record`` as a dict, without ``seq`` (the writer numbers lines).

    Fields in order: :data:`~audit_logging.schema.JOURNAL_FIELDS`, then
    :data:`~audit_logging.schema.JOURNAL_CONTEXT_FIELDS` but ``seq``. The
    field set is the same on every Python version (no ``taskName``).
    """
    return {**journal_fields(record), **journal_context(record, session)}


# --------------------------------------------------------------------------- actions


def _name(value: object) -> Any:
    if isinstance(value, enum.Enum):
        value = value.value
    return value if isinstance(value, str) else to_jsonable(value)


def _cuts_under(record: logging.LogRecord, *names: str) -> dict[str, str] | None:
    cuts = record.__dict__.get(CUTS_KEY)
    if not cuts:
        return None
    mine = {p: n for p, n in cuts.items() if any(p.startswith(f".{name}") for name in names)}
    return mine or None


def action_entry(
    record: logging.LogRecord, redactor: Redactor | None = DEFAULT_REDACTOR
) -> dict[str, Any]:
    """The action-audit entry of ``record`` (``timestamp, action_type, status, details, error``).

    ``status`` is written as given (by convention ``"success"`` or
    ``"failed"``); without one it is ``"failed"`` if the record carries an
    ``error``, an exception or a level of ERROR and above, else ``"success"``.
    ``error`` is ``null`` unless given (or, for a failed record, taken from
    its exception). ``details`` is an object, ``{}`` when absent; any other
    value is wrapped as ``{"value": ...}``. ``experiment`` is added when the
    record carries it, and ``truncated`` when the caller's snapshot cut a
    container of ``details``. Values are not yet JSON-converted (``dumps`` does it).
    """
    d = record.__dict__
    error = d.get("error")
    status = d.get("status")
    exc = record.exc_info[1] if record.exc_info else None
    if status is None:
        failed = error is not None or exc is not None or record.levelno >= logging.ERROR
        status = "failed" if failed else "success"
    else:
        status = _name(status)
    if error is None and status == "failed" and exc is not None:
        error = f"{type(exc).__name__}: {safe_str(exc)}"
    details = d.get("details")
    if details is None:
        details = {}
    elif not isinstance(details, Mapping):
        details = {"value": details}
    entry: dict[str, Any] = {
        "timestamp": format_timestamp(record.created),
        "action_type": _name(d.get(ACTION_KEY)),
        "status": status,
        # Secrets never reach an action log (both the JSON array and the CSV).
        "details": redactor(details) if redactor is not None else details,
        "error": redactor(error) if redactor is not None else error,
        "actor": _actor(d.get("actor")),
    }
    if "experiment" in d:
        entry["experiment"] = _name(d["experiment"])
    if CUTS_KEY in d:
        cuts = _cuts_under(record, "details", "error")
        if cuts:
            entry["truncated"] = cuts
    entry.update(_rank_fields())
    return entry


def _actor(value: object) -> str | None:
    """Who did it, as text (an identity object's ``str``), ``None`` when not given."""
    if value is None:
        return None
    return value if type(value) is str else safe_str(_name(value))


def _rank_fields() -> dict[str, Any]:
    """``rank, local_rank, world_size, schema_version``: the members every record ends with."""
    run = context.current()
    return {
        "rank": run.rank,
        "local_rank": run.local_rank,
        "world_size": run.world_size,
        "schema_version": SCHEMA_VERSION,
    }


#: Characters that make a spreadsheet cell a formula (OWASP).
FORMULA_TRIGGERS: Final = ("=", "+", "-", "@", "\t", "\r")


def render_row(fields: Sequence[str]) -> str:
    """One CSV row (RFC 4180 quoting), ending in ``\\r\\n``."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(fields)
    return buffer.getvalue()


#: The header line of ``audit_log.csv``.
HEADER: Final = render_row(ACTION_FIELDS)
#: The header line of a chained ``audit_log.csv`` (``CsvHandler(chain=True)``).
CHAINED_HEADER: Final = render_row((*ACTION_FIELDS, "seq", "hash"))


def neutralise(cell: str) -> str:
    """``cell`` with a leading ``'`` if a spreadsheet would read it as a formula."""
    return "'" + cell if cell.startswith(FORMULA_TRIGGERS) else cell


def restore_cell(cell: str) -> str:
    """The value :func:`neutralise` was given (for readers of the CSV file)."""
    if cell.startswith("'") and cell[1:2] and cell[1] in FORMULA_TRIGGERS:
        return cell[1:]
    return cell


def cell(value: Any) -> str:
    """``value`` as a cell: text as it is, anything else compact JSON, formulas neutralised."""
    value = to_jsonable(value)
    if value is None:
        return ""
    return neutralise(value if isinstance(value, str) else dumps(value).decode("utf-8"))


def action_row(
    record: logging.LogRecord, redactor: Redactor | None = DEFAULT_REDACTOR
) -> list[str]:
    """The five cells of ``record`` (``timestamp, action_type, status, details, error``)."""
    entry = action_entry(record, redactor)
    return [entry["timestamp"], *(cell(entry[name]) for name in ACTION_FIELDS[1:])]


# --------------------------------------------------------------------------- warnings

_MAX_TYPE_LEN: Final = 100


def warning_type_name(value: object) -> str | None:
    """``value`` as a warning type (``[a-z0-9_]+``, at most 100 characters), else ``None``."""
    if isinstance(value, enum.Enum):
        value = value.value
    if (
        isinstance(value, str)
        and 0 < len(value) <= _MAX_TYPE_LEN
        and all(c.isascii() and (c.islower() or c.isdigit() or c == "_") for c in value)
    ):
        return str(value)
    return None


def _plain(value: Any, redactor: Redactor | None) -> Any:
    # Strict JSON types first (numpy, datetimes, cycles), then redaction on plain data.
    plain = to_jsonable(value)
    return redactor(plain) if redactor is not None else plain


def warning_body(
    record: logging.LogRecord, redactor: Redactor | None = DEFAULT_REDACTOR
) -> tuple[str, dict[str, Any]]:
    """The warning type and the redacted, JSON-safe body of ``record``.

    Body: ``timestamp, type, severity, fingerprint, git_commit, message,
    recommendation`` plus ``details`` when the record carries them.
    ``severity`` defaults to the type's standard severity, else the record's
    level name; ``fingerprint`` to a SHA-256 over the type, the message and
    the details (after redaction, so that it cannot help guess a secret);
    ``git_commit`` is ``None`` unless given (the writer looks ``HEAD`` up).
    Raises ``ValueError`` when ``warning_type`` is not a valid name.
    """
    d = record.__dict__
    wtype = warning_type_name(d.get(WARNING_KEY))
    if wtype is None:
        raise ValueError(
            f"warning_type must match [a-z0-9_]+ (at most {_MAX_TYPE_LEN} characters), "
            f"not {d.get(WARNING_KEY)!r}"
        )
    severity = d.get("severity")
    if isinstance(severity, int) and not isinstance(severity, bool):
        severity = logging.getLevelName(severity)
    elif isinstance(severity, enum.Enum):
        severity = severity.value
    if severity is None:
        severity = DEFAULT_SEVERITIES.get(wtype, record.levelname)
    body: dict[str, Any] = {
        "timestamp": format_timestamp(record.created),
        "type": wtype,
        "severity": severity,
        "fingerprint": None,
        "git_commit": d.get("git_commit"),
        "message": record_message(record),
        "recommendation": d.get("recommendation"),
    }
    if d.get("details") is not None:
        body["details"] = d["details"]
    body = _plain(body, redactor)
    fingerprint = d.get("fingerprint")
    if fingerprint is None:
        basis = dumps([wtype, body["message"], body.get("details")])
        fingerprint = hashlib.sha256(basis).hexdigest()
    else:
        fingerprint = _plain(fingerprint, redactor)
    body["fingerprint"] = fingerprint
    body.update(_rank_fields())
    return wtype, body


# --------------------------------------------------------------------------- rejects


def did_you_mean(name: str) -> str | None:
    """The known event name closest to ``name``, when one is close (``TRAINING_STARTED``)."""
    close = difflib.get_close_matches(name.upper(), sorted(known_events()), n=1, cutoff=0.75)
    return close[0] if close else None


def record_time(record: logging.LogRecord) -> float:
    """``record.created``, or now when a filter or factory broke it (a rejected record's time)."""
    created = record.created
    if type(created) in (int, float) and created == created:
        return created
    return time.time()


def rejected_line(
    record: logging.LogRecord,
    reason: str,
    writer: str,
    redactor: Redactor | None = DEFAULT_REDACTOR,
) -> bytes:
    """The line of a rejects file: the whole record as JSON, plus ``reason`` and ``writer``.

    The record's time, level, logger, message and exception, every audit
    field and every other ``extra`` key it carries, redacted and JSON-safe,
    so that nothing logged is lost with it.
    """
    d = record.__dict__
    line: dict[str, Any] = {
        "timestamp": format_timestamp(record_time(record)),
        "level": record.levelname,
        "logger": record.name,
        "message": record_message(record),
        "exception": record_exception(record),
    }
    for key in AUDIT_EXTRA_KEYS:
        if key in d:
            line[key] = d[key]
    line["extra"] = extra_fields(record)
    line["session_id"] = session_id()
    line["host"] = HOST
    line["pid"] = record.process
    if CUTS_KEY in d:
        line["truncated"] = d[CUTS_KEY]
    line = _plain(line, redactor)
    line["reason"] = reason
    line["writer"] = writer
    return dumps(line) + b"\n"
