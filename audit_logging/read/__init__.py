"""Reading audit output back: one catalogue, one merged stream, summary, query, verify.

Every reader of the package (the ``audit-logging`` command, the facade's
``get_log_summary``, the report) goes through here, so they never disagree::

    from audit_logging.read import catalogue, iter_records, summarize, verify

    cat = catalogue(["runs/"])                     # folders, files or gs://bucket/prefix
    for record in iter_records(cat, newest_first=True):
        ...
    print(summarize(cat).as_dict())
    report = verify(cat)                           # report.ok, .problems, .unproven

This package imports ``formats``, ``chain``, ``_files`` and ``schema``, never a writer.
"""

from __future__ import annotations

from audit_logging.read.catalogue import Catalogue, LogFile, Run, catalogue
from audit_logging.read.records import Record, iter_records
from audit_logging.read.report import Problem, Unproven, VerifyReport
from audit_logging.read.summary import Summary, summarize
from audit_logging.read.verify import verify

__all__ = [
    "Catalogue",
    "LogFile",
    "Problem",
    "Record",
    "Run",
    "Summary",
    "Unproven",
    "VerifyReport",
    "catalogue",
    "iter_records",
    "summarize",
    "verify",
]
