"""Shared fixtures: each test gets its own logger, a clean logging state and a clean environment.

Also shared: the GCS emulator's fixtures (``gcs_server``, ``gcs_bucket``,
``gcs_hermetic_env``, from ``gcs_server.py``; they skip when the ``gcs``
extra or the emulator is absent), ``captured`` (a logger whose warnings become
files), ``lib_log`` (what the library says on its own logger) and
``read_only_dir``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from audit_logging import queue as audit_queue
from audit_logging.writers.warnings import WarningFileHandler

from gcs_server import gcs_bucket, gcs_hermetic_env, gcs_server  # noqa: F401
from helpers import AUDIT_ENV, Collect


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


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """An empty folder this process may not write in.

    A mode of 0o555 is enough for a normal user; root ignores modes, so as
    root it is a read-only tmpfs mount instead (skipped where mounting is
    not allowed).
    """
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mount = ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)]
    if subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("root ignores file modes, and a read-only tmpfs cannot be mounted here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def captured(tmp_path: Path, logger: logging.Logger) -> tuple[logging.Logger, Path]:
    """``logger`` with a warning writer into ``tmp_path/warnings`` (returned with it)."""
    out = tmp_path / "warnings"
    logger.addHandler(WarningFileHandler(directory=out))
    return logger, out


@pytest.fixture
def lib_log() -> Iterator[Collect]:
    """What the library says on its own logger ``audit_logging``."""
    handler = Collect()
    log = logging.getLogger("audit_logging")
    log.addHandler(handler)
    old = log.level
    log.setLevel(logging.DEBUG)
    yield handler
    log.removeHandler(handler)
    log.setLevel(old)
