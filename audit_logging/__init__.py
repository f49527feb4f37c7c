"""Trustworthy, non-blocking audit logs of ML training runs, for the standard ``logging`` module.

Records that carry audit fields in ``extra`` are written by the handlers of
this package; everything else about ``logging`` stays as it is::

    import logging, logging.config
    logging.config.dictConfig({
        "version": 1,
        "handlers": {
            "journal": {"class": "audit_logging.JsonlHandler", "directory": "logs"},
            "audit": {"class": "audit_logging.AuditQueueHandler", "handlers": ["journal"]},
        },
        "root": {"handlers": ["audit"], "level": "INFO"},
    })
    logging.getLogger("trainer").info(
        "Training started", extra={"event": "TRAINING_STARTED", "model": "RandomForest"}
    )
"""

from audit_logging import probes
from audit_logging.config import configure
from audit_logging.detect import Issue, IssueDetector, detect_issues
from audit_logging.facade import AuditEvent, AuditLogger
from audit_logging.formatters import AuditJsonFormatter
from audit_logging.hooks import (
    check_resume_config,
    checkpoint_load,
    install_hooks,
    report_checkpoint_corrupted,
    uninstall_hooks,
)
from audit_logging.queue import AuditQueueHandler
from audit_logging.redact import redact
from audit_logging.schema import (
    ActionType,
    Event,
    UnknownEventError,
    WarningType,
    register_event,
)
from audit_logging.training import TrainingRun
from audit_logging.writers import (
    AuditCsvFormatter,
    AuditWriter,
    CsvHandler,
    GcsSyncHandler,
    JsonArrayHandler,
    JsonlHandler,
    WarningFileHandler,
)

__version__ = "0.1.0"

__all__ = [
    "ActionType",
    "AuditCsvFormatter",
    "AuditEvent",
    "AuditJsonFormatter",
    "AuditLogger",
    "AuditQueueHandler",
    "AuditWriter",
    "CsvHandler",
    "Event",
    "GcsSyncHandler",
    "Issue",
    "IssueDetector",
    "JsonArrayHandler",
    "JsonlHandler",
    "TrainingRun",
    "UnknownEventError",
    "WarningFileHandler",
    "WarningType",
    "__version__",
    "check_resume_config",
    "checkpoint_load",
    "configure",
    "detect_issues",
    "install_hooks",
    "probes",
    "redact",
    "register_event",
    "report_checkpoint_corrupted",
    "uninstall_hooks",
]
