"""Formatters that render audit records for any handler (a stream, a socket, Cloud Logging).

:class:`AuditJsonFormatter` is a python-json-logger ``JsonFormatter`` that
renders the journal line, the same fields in the same order as
:class:`~audit_logging.JsonlHandler` writes, for users who want the journal on
stdout in a container, secrets masked as in the journal. (The action-audit row
formatter, :class:`~audit_logging.writers.csv.AuditCsvFormatter`, lives with
the CSV writer.)
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from audit_logging.records import journal_record
from audit_logging.redact import DEFAULT_REDACTOR
from audit_logging.schema import JOURNAL_USER_FIELDS, dumps

__all__ = ["AuditJsonFormatter"]


class AuditJsonFormatter(JsonFormatter):
    """Formats every record as one strict-JSON journal line (``event`` ``null`` when absent).

    Secret-looking keys and values are masked, as :class:`~audit_logging.JsonlHandler` does.

    ``seq`` numbers the lines this formatter has produced, from 1. The
    ``prefix`` option of python-json-logger is honoured.

    dictConfig::

        "formatters": {"journal": {"()": "audit_logging.AuditJsonFormatter"}}
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seq = itertools.count(1)

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        fields = journal_record(record)
        DEFAULT_REDACTOR.scrub(fields, JOURNAL_USER_FIELDS)
        log_data.update(fields)
        log_data["seq"] = next(self._seq)

    def jsonify_log_record(self, log_data: Any) -> str:
        return dumps(log_data).decode("utf-8")
