"""The audit writers: one module per output, each a ``logging.Handler``."""

from audit_logging.writers._base import AuditWriter
from audit_logging.writers.csv import AuditCsvFormatter, CsvHandler
from audit_logging.writers.gcs import GcsSyncHandler
from audit_logging.writers.json_array import JsonArrayHandler
from audit_logging.writers.jsonl import JsonlHandler
from audit_logging.writers.warnings import WarningFileHandler

__all__ = [
    "AuditCsvFormatter",
    "AuditWriter",
    "CsvHandler",
    "GcsSyncHandler",
    "JsonArrayHandler",
    "JsonlHandler",
    "WarningFileHandler",
]
