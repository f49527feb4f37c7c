"""Helpers the tests share: strict readers of the outputs and a subprocess runner."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import portalocker

AUDIT_ENV = (
    "AUDIT_LOG_DIR",
    "AUDIT_LOG_FORMAT",
    "AUDIT_LOG_LEVEL",
    "AUDIT_SESSION_ID",
    "AUDIT_LOG_HMAC_KEY",
)
REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSONL file, parsed strictly (NaN and Infinity are refused)."""

    def refuse(token: str) -> Any:
        raise ValueError(f"non-strict JSON token {token}")

    with open(path, encoding="utf-8") as fh:
        return [json.loads(line, parse_constant=refuse) for line in fh]


def visible(directory: Path) -> list[Path]:
    """The entries of ``directory`` but the writers' manifest (``.audit-manifest.jsonl``)."""
    return [p for p in directory.iterdir() if p.name != ".audit-manifest.jsonl"]


def journal_files(directory: Path) -> list[Path]:
    """The ``*.jsonl`` files of ``directory`` but the hidden manifest."""
    return sorted(p for p in directory.glob("*.jsonl") if not p.name.startswith("."))


def run_python(code: str, cwd: Path, timeout: float = 60, **env: str) -> Any:
    """Run ``code`` in a fresh interpreter (this one's), returning the CompletedProcess."""
    full_env = {k: v for k, v in os.environ.items() if k not in AUDIT_ENV}
    full_env.update(env)
    full_env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def read_while_a_writer_is_mid_batch(
    locked: Path, torn: Callable[[], object], finish: Callable[[], object], read: Callable[[], T]
) -> T:
    """Run ``read`` while playing a writer in the middle of a batch; return what it returned.

    Holds the writers' lock on ``locked`` exclusively, calls ``torn()`` (the
    files as a half-written batch leaves them) and starts ``read`` in a
    thread. A reader that did not wait for the lock would have finished, with
    the torn state, within the second this waits; it must still be waiting.
    Then ``finish()`` completes the batch and the lock is released.
    """
    results: list[T] = []
    with open(locked, "rb") as fh:
        portalocker.lock(fh, portalocker.LockFlags.EXCLUSIVE)
        try:
            torn()
            reading = threading.Thread(target=lambda: results.append(read()))
            reading.start()
            reading.join(1.0)
            assert reading.is_alive(), "the reader did not wait for the writers' lock"
            finish()
        finally:
            portalocker.unlock(fh)
    reading.join()
    return results[0]


class UnprintableError(Exception):
    """An exception whose ``str()`` raises, as some C-extension errors do."""

    def __str__(self) -> str:
        raise RuntimeError("str refused")


class Collect(logging.Handler):
    """Keeps every record it is handed (``.warnings(kind)``: those with a ``warning_type``)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def warnings(self, kind: str | None = None) -> list[logging.LogRecord]:
        return [
            r
            for r in self.records
            if getattr(r, "warning_type", None) and (kind is None or r.warning_type == kind)  # type: ignore[attr-defined]
        ]
