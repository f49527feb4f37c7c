"""Shared fixtures: each test gets its own logger, a clean logging state and a clean environment."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest

from audit_logging import queue as audit_queue

from helpers import AUDIT_ENV


@pytest.fixture(autouse=True)
def _restore_logging_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Restore the root logger, close every AuditQueueHandler a test made, clear AUDIT_* vars."""
    for name in AUDIT_ENV:
        monkeypatch.delenv(name, raising=False)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    known = set(logging.Logger.manager.loggerDict)
    yield
    for handler in list(audit_queue._live_handlers):
        handler.close()
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    for name in set(logging.Logger.manager.loggerDict) - known:
        obj = logging.Logger.manager.loggerDict.pop(name)
        if isinstance(obj, logging.Logger):
            for handler in obj.handlers[:]:
                obj.removeHandler(handler)
                handler.close()


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A uniquely named logger at DEBUG that does not propagate; removed afterwards."""
    name = f"audit_test.{uuid.uuid4().hex[:12]}"
    log = logging.getLogger(name)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    for handler in log.handlers[:]:
        log.removeHandler(handler)
        handler.close()
    logging.Logger.manager.loggerDict.pop(name, None)
