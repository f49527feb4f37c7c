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

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names below, imported on first use (see __getattr__)
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

#: Where each public name lives. Imported on first use (PEP 562), so that
#: ``audit-logging query`` does not pay for the writers, the detectors and the
#: probes it never uses (start-up is most of a small query's time).
_HOMES: dict[str, str] = {
    "probes": "audit_logging.probes",
    "configure": "audit_logging.config",
    "Issue": "audit_logging.detect",
    "IssueDetector": "audit_logging.detect",
    "detect_issues": "audit_logging.detect",
    "AuditEvent": "audit_logging.facade",
    "AuditLogger": "audit_logging.facade",
    "AuditJsonFormatter": "audit_logging.formatters",
    "check_resume_config": "audit_logging.hooks",
    "checkpoint_load": "audit_logging.hooks",
    "install_hooks": "audit_logging.hooks",
    "report_checkpoint_corrupted": "audit_logging.hooks",
    "uninstall_hooks": "audit_logging.hooks",
    "AuditQueueHandler": "audit_logging.queue",
    "redact": "audit_logging.redact",
    "ActionType": "audit_logging.schema",
    "Event": "audit_logging.schema",
    "UnknownEventError": "audit_logging.schema",
    "WarningType": "audit_logging.schema",
    "register_event": "audit_logging.schema",
    "TrainingRun": "audit_logging.training",
    "AuditCsvFormatter": "audit_logging.writers",
    "AuditWriter": "audit_logging.writers",
    "CsvHandler": "audit_logging.writers",
    "GcsSyncHandler": "audit_logging.writers",
    "JsonArrayHandler": "audit_logging.writers",
    "JsonlHandler": "audit_logging.writers",
    "WarningFileHandler": "audit_logging.writers",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'audit_logging' has no attribute {name!r}")
    module = importlib.import_module(home)
    value = module if home == "audit_logging." + name else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))


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
