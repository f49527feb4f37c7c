"""WeightsLab's own ``AuditLogger`` design, the peer of the action-audit thread benchmark.

As its documentation describes it: thread-safe through one lock, each event
written before ``log_event`` returns, ``audit_log.json`` rewritten whole per
event (newest first, ``indent=2``), ``audit_log.csv`` appended one row per
event. Benchmark code only: rebuilt from that description, not its source.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import threading
from typing import Any


class WeightsLabAuditLogger:
    def __init__(self, root_log_dir: str, formats: tuple[str, ...]) -> None:
        self.json_path = os.path.join(root_log_dir, "audit_log.json")
        self.csv_path = os.path.join(root_log_dir, "audit_log.csv")
        self.formats = formats
        self._lock = threading.Lock()

    def log_event(
        self,
        action_type: str,
        status: str = "success",
        details: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        event = {
            "timestamp": dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z"),
            "action_type": action_type,
            "status": status,
            "details": details or {},
            "error": error,
        }
        with self._lock:
            if "json" in self.formats:
                events: list[Any] = []
                if os.path.exists(self.json_path):
                    with open(self.json_path, encoding="utf-8") as fh:
                        events = json.load(fh)
                events.insert(0, event)
                with open(self.json_path, "w", encoding="utf-8") as fh:
                    json.dump(events, fh, indent=2)
            if "csv" in self.formats:
                new = not os.path.exists(self.csv_path)
                with open(self.csv_path, "a", encoding="utf-8", newline="") as fh:
                    writer = csv.writer(fh)
                    if new:
                        writer.writerow(["timestamp", "action_type", "status", "details", "error"])
                    writer.writerow(
                        [
                            event["timestamp"],
                            action_type,
                            status,
                            json.dumps(event["details"]),
                            error or "",
                        ]
                    )
