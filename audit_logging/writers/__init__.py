"""The audit writers: one module per output, each a ``logging.Handler``."""

from audit_logging.writers._base import AuditWriter
from audit_logging.writers.gcs import GcsSyncHandler
from audit_logging.writers.jsonl import JsonlHandler
from audit_logging.writers.warnings import WarningFileHandler

__all__ = ["AuditWriter", "GcsSyncHandler", "JsonlHandler", "WarningFileHandler"]
