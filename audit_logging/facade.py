"""AuditLogger: a drop-in for the WeightsLab audit logger API, built on the audit writers.

A user of ``weightslab.backend.audit_logger`` changes one import line::

    from audit_logging.facade import AuditLogger, AuditEvent

and keeps every call: ``AuditLogger(root_log_dir, experiment_name="default",
format=None)``, ``log_event(action_type, status="success", details=None,
error=None)``, ``get_log_summary()``, and the attributes ``root_log_dir``,
``json_path``, ``csv_path`` (:class:`pathlib.Path`) and ``experiment_name``.

What changes is underneath: each event is a :class:`logging.LogRecord` handed
straight to a :class:`~audit_logging.writers.json_array.JsonArrayHandler`
and/or :class:`~audit_logging.writers.csv.CsvHandler` in the caller's thread,
not through a queue, so that ``log_event`` returns only once the event is in
the file (UI actions are rare and each one matters). The records do not go
through a :class:`logging.Logger`, so ``logging.disable()`` or a logger's level
elsewhere in the application cannot silence the audit trail. The handlers
lock across threads and processes: several ``AuditLogger`` objects and
processes on one folder keep every event exactly once.

Format: the ``format`` argument, else ``AUDIT_LOG_FORMAT``, else ``json``;
``json``, ``csv``, ``json,csv`` or ``none``, case-insensitive. ``none``
(anywhere in the list) writes no file at all. Anything else raises
``ValueError`` naming those when the logger is built; in
``AUDIT_LOG_FORMAT``, which :func:`~audit_logging.configure` reads too, its
outputs ``jsonl`` and ``warnings`` are passed over.

``experiment_name`` is written with every JSON entry as a top-level
``experiment`` field (the default ``"default"`` too, so every entry of the
file has the same fields); the CSV keeps its five columns.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from audit_logging._group_commit import GroupCommit
from audit_logging._options import check_writable_dir
from audit_logging.config import parse_formats
from audit_logging.read import Catalogue, LogFile, summarize
from audit_logging.schema import ActionType
from audit_logging.writers._base import AuditWriter
from audit_logging.writers.csv import CsvHandler
from audit_logging.writers.json_array import JsonArrayHandler

__all__ = [
    "ACCEPTED",
    "VALID_FORMATS",
    "Action",
    "ActionType",
    "AuditEvent",
    "AuditLogger",
    "changes",
    "resolve_formats",
]

#: The formats ``AuditLogger`` writes (and ``none``).
VALID_FORMATS = ("json", "csv")
#: What its ``format`` accepts, as the errors spell it.
ACCEPTED = "json, csv, json,csv, none"
_DEFAULT_FORMAT = "json"
_LOGGER_NAME = "audit_logging.facade"


@dataclass
class AuditEvent:
    """One audit entry, as the WeightsLab API exposes it."""

    timestamp: str
    action_type: str
    status: str
    details: dict[str, Any] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_MISSING = object()


def changes(before: Any, after: Any) -> list[dict[str, Any]] | None:
    """``[{"key", "old", "new"}]`` for the keys of two dicts whose values differ, in key order.

    Nested dicts are compared key by key, with dotted keys (``optimizer.lr``);
    a key only on one side has ``None`` on the other and ``"added"`` or
    ``"removed"`` set. ``None`` when either side is not a dict.
    """
    if not isinstance(before, Mapping) or not isinstance(after, Mapping):
        return None
    out: list[dict[str, Any]] = []
    _diff(before, after, "", out)
    return out


def _diff(before: Mapping[Any, Any], after: Mapping[Any, Any], prefix: str, out: list[Any]) -> None:
    keys = list(before) + [k for k in after if k not in before]
    for key in keys:
        name = f"{prefix}{key}"
        old = before.get(key, _MISSING)
        new = after.get(key, _MISSING)
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            _diff(old, new, name + ".", out)
        elif old is _MISSING:
            out.append({"key": name, "old": None, "new": new, "added": True})
        elif new is _MISSING:
            out.append({"key": name, "old": old, "new": None, "removed": True})
        elif not _equal(old, new):
            out.append({"key": name, "old": old, "new": new})


def _equal(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    try:
        result = a == b
        if isinstance(result, bool):
            return result
        every = getattr(result, "all", None)  # numpy: an array of element-wise results
        if callable(every):
            return getattr(a, "shape", None) == getattr(b, "shape", None) and bool(every())
        return bool(result)
    except Exception:  # values without a comparable truth value
        return a is b


@dataclass
class Action:
    """What :meth:`AuditLogger.action` yields: set ``after`` (and add ``details``) in the block.

    ``status`` may be set to something other than ``"success"`` (``"denied"``,
    say) for an action that ended without raising.
    """

    action_type: str
    before: Any = None
    after: Any = None
    details: dict[str, Any] = field(default_factory=dict)
    status: str = "success"
    error: str | None = None
    #: Who did it (a user, a service account); the entry's ``actor``, ``None`` when unknown.
    actor: str | None = None

    def entry(self, exc: BaseException | None, duration: float | None) -> dict[str, Any]:
        """The ``details`` of the entry: before, after, changes, the extra details, duration."""
        details: dict[str, Any] = dict(self.details)
        details["before"] = self.before
        details["after"] = self.after
        details["changes"] = changes(self.before, self.after)
        if duration is not None:
            details["duration_ms"] = round(duration * 1000, 3)
        if exc is not None:
            details.setdefault("exception_type", type(exc).__name__)
        return details


def resolve_formats(value: str | None) -> tuple[str, ...]:
    """The action formats selected by ``value`` (argument), else ``AUDIT_LOG_FORMAT``, else json.

    ``AUDIT_LOG_FORMAT`` is shared with :func:`~audit_logging.configure`: its
    other outputs (``jsonl``, ``warnings``) are not this class's and are passed
    over. ``()`` means ``none``. An unknown name, or one of configure()'s
    outputs given as the argument, raises ``ValueError`` naming the formats
    accepted.
    """
    if value is not None and not isinstance(value, str):
        raise TypeError(
            f"AuditLogger: format must be a string ({ACCEPTED}), not {type(value).__name__}"
        )
    from_env = value is None or not value.strip()
    text = os.environ.get("AUDIT_LOG_FORMAT", "") if from_env else str(value)
    if not text.strip():
        return (_DEFAULT_FORMAT,)
    where = f"AUDIT_LOG_FORMAT={text!r}" if from_env else f"format={text!r}"
    try:
        names = parse_formats(text)
    except ValueError:
        raise ValueError(f"AuditLogger: unknown {where}; accepted: {ACCEPTED}") from None
    if not names:
        return ()  # none
    if not from_env and any(n not in VALID_FORMATS for n in names):
        others = ", ".join(n for n in names if n not in VALID_FORMATS)
        raise ValueError(
            f"AuditLogger: {where} names configure()'s output {others}, which AuditLogger "
            f"does not write; accepted: {ACCEPTED}"
        )
    return tuple(n for n in names if n in VALID_FORMATS) or (_DEFAULT_FORMAT,)


def _existing(path: str | os.PathLike[str]) -> list[Path]:
    return [Path(path)] if os.path.exists(path) else []


class AuditLogger:
    """Records user actions in ``{root_log_dir}/audit_log.json`` and/or ``audit_log.csv``."""

    def __init__(
        self,
        root_log_dir: str | os.PathLike[str],
        experiment_name: str = "default",
        format: str | None = None,
    ) -> None:
        self.root_log_dir = Path(root_log_dir)
        self.experiment_name = experiment_name
        self.json_path = self.root_log_dir / "audit_log.json"
        self.csv_path = self.root_log_dir / "audit_log.csv"
        #: The formats written, in order (``()`` for ``none``).
        self.formats = resolve_formats(format)
        self.root_log_dir.mkdir(parents=True, exist_ok=True)
        if self.formats:
            # The writers open their files at the first event: a folder they
            # cannot write is reported now, naming it, not at that event.
            check_writable_dir(self.root_log_dir)
        self._handlers: list[AuditWriter] = []
        self._commits = GroupCommit(self._write_batch)
        if "json" in self.formats:
            self._handlers.append(JsonArrayHandler(directory=self.root_log_dir))
        if "csv" in self.formats:
            self._handlers.append(CsvHandler(directory=self.root_log_dir))

    @property
    def format(self) -> str:
        """The selected formats as ``AUDIT_LOG_FORMAT`` spells them (``"none"`` for none)."""
        return ",".join(self.formats) or "none"

    def log_event(
        self,
        action_type: str,
        status: str = "success",
        details: dict[str, Any] | None = None,
        error: str | None = None,
        actor: str | None = None,
    ) -> None:
        """Write one event; it is in the file(s) when this returns. Never raises.

        ``actor`` says who did it (the entry's ``actor``; ``audit_log.csv``
        keeps its five columns).

        A write that fails is reported through ``logging.Handler.handleError``
        (printed to stderr) and counted in the handler's ``records_failed``.
        """
        if not self._handlers:
            return
        failed = status == "failed"
        fields = {
            "action_type": action_type,
            "status": status,
            "details": details,
            "error": error,
            "actor": actor,
            "experiment": self.experiment_name,
        }

        def make_record() -> logging.LogRecord:
            record = logging.LogRecord(
                _LOGGER_NAME,
                logging.ERROR if failed else logging.INFO,
                __file__,
                0,
                "%s %s",
                (str(action_type), status),
                None,
            )
            record.__dict__.update(fields)
            return record

        self._commits.submit(make_record)

    def _write_batch(self, records: list[logging.LogRecord]) -> None:
        for handler in self._handlers:
            handler.handle_batch(records)

    @contextmanager
    def action(
        self,
        action_type: str,
        before: Any = None,
        *,
        details: Mapping[str, Any] | None = None,
        actor: str | None = None,
    ) -> Iterator[Action]:
        """Log one action when the block ends, with ``before``, ``after`` and their ``changes``.

        ::

            with audit.action("hp_change", before={"lr": 0.01}) as act:
                trainer.lr = 0.001
                act.after = {"lr": 0.001}

        writes ``details = {"before": {...}, "after": {...}, "changes": [{"key": "lr",
        "old": 0.01, "new": 0.001}], "duration_ms": ...}`` (``changes`` is
        ``None`` unless both sides are dicts). An exception in the block
        writes status ``failed`` with ``error`` = ``"Type: message"`` and is
        re-raised. ``before`` and ``after`` are written as they are when the
        block ends: pass copies if the block mutates them.
        """
        act = Action(str(action_type), before, details=dict(details or {}), actor=actor)
        start = time.monotonic()
        try:
            yield act
        except BaseException as exc:
            error = act.error or f"{type(exc).__name__}: {exc}"
            self.log_event(
                act.action_type,
                "failed",
                act.entry(exc, time.monotonic() - start),
                error,
                actor=act.actor,
            )
            raise
        self.log_event(
            act.action_type,
            act.status,
            act.entry(None, time.monotonic() - start),
            act.error,
            actor=act.actor,
        )

    def get_log_summary(self) -> dict[str, Any]:
        """``{"total_events", "by_action_type", "by_status"}`` counted from the file.

        Read from ``audit_log.json`` when JSON is written, else from
        ``audit_log.csv`` (streamed); all zero with format ``none``.
        """
        # Read as `audit-logging summary` reads: under the writers' lock, CSV
        # cells restored. A file not written yet counts nothing.
        files: list[LogFile] = []
        if "json" in self.formats:
            files = [LogFile(p, "array") for p in _existing(self.json_path)]
        elif "csv" in self.formats:
            files = [LogFile(p, "csv") for p in _existing(self.csv_path)]
        summary = summarize(Catalogue([str(self.root_log_dir)], files))
        return {
            "total_events": summary.actions,
            "by_action_type": dict(summary.action_types),
            "by_status": dict(summary.statuses),
        }

    def close(self) -> None:
        """Close the files (the object may still log; they are reopened)."""
        self._commits.run_alone(self._close_handlers)

    def _close_handlers(self) -> None:
        for handler in self._handlers:
            handler.close()

    def __enter__(self) -> AuditLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<AuditLogger {str(self.root_log_dir)!r} {self.experiment_name!r} {self.format}>"
