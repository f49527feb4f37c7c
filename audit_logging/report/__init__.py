"""The offline run report and run comparison (``audit-logging report`` / ``compare``).

::

    from audit_logging.report import write_report
    paths = write_report("runs/", "report.html")      # one HTML file per run found

The pages are self-contained (inline CSS and SVG, no script, nothing fetched),
so they open from disk or from a CI artifact. Charts need matplotlib (the
``report`` extra); reading and comparing as text do not.
"""

from __future__ import annotations

from audit_logging.report.build import (
    ReportError,
    compare_runs,
    load_runs,
    pick_run,
    write_compare,
    write_report,
)
from audit_logging.report.data import Verification
from audit_logging.report.model import RunData

__all__ = [
    "ReportError",
    "RunData",
    "Verification",
    "compare_runs",
    "load_runs",
    "pick_run",
    "write_compare",
    "write_report",
]
