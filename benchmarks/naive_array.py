"""The rewrite-per-event ``audit_log.json``: the approach ``JsonArrayHandler`` replaces.

Each event loads the whole array, puts the new entry first (newest first) and
writes the whole file again, as the original WeightsLab ``AuditLogger`` did.
Its cost per event grows with the file; scenario 2 measures how fast.
Benchmark code only: it is neither locked across processes nor crash-safe.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from audit_logging.schema import format_timestamp


def entry(record: logging.LogRecord) -> dict[str, Any]:
    d = record.__dict__
    return {
        "timestamp": format_timestamp(record.created),
        "action_type": d.get("action_type"),
        "status": d.get("status", "success"),
        "details": d.get("details"),
        "error": d.get("error"),
    }


class RewriteJsonArrayHandler(logging.Handler):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def emit(self, record: logging.LogRecord) -> None:
        try:
            entries: list[Any] = []
            if os.path.exists(self.path):
                with open(self.path, encoding="utf-8") as fh:
                    entries = json.load(fh)
            entries.insert(0, entry(record))
            with open(self.path, "w", encoding="utf-8") as fh:
                json.dump(entries, fh, indent=2)
        except Exception:
            self.handleError(record)
