"""Run hooks: uncaught exceptions, Ctrl+C, SIGTERM, resume config and corrupt checkpoints."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from audit_logging.hooks import (
    MISSING,
    ConfigDifference,
    check_resume_config,
    checkpoint_load,
    install_hooks,
    report_checkpoint_corrupted,
    uninstall_hooks,
)

from helpers import REPO, run_python


def warnings_in(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


@pytest.fixture
def hooks_restored() -> Iterator[None]:
    before = sys.excepthook, threading.excepthook, signal.getsignal(signal.SIGTERM)
    yield
    uninstall_hooks()
    assert (sys.excepthook, threading.excepthook, signal.getsignal(signal.SIGTERM)) == before


SETUP = """
import logging, sys
from audit_logging.writers.warnings import WarningFileHandler
from audit_logging.queue import AuditQueueHandler
import audit_logging.hooks as hooks
logging.getLogger().addHandler(AuditQueueHandler([WarningFileHandler(directory="w")]))
logging.getLogger().setLevel(logging.INFO)  # as configure() does: interruptions are INFO
hooks.install_hooks()
"""


def test_uncaught_exception_logs_training_failed_and_chains(tmp_path: Path) -> None:
    code = SETUP + "def step():\n    raise ValueError('loss is nan')\nstep()\n"
    result = run_python(code, cwd=tmp_path)
    assert result.returncode == 1
    assert "ValueError: loss is nan" in result.stderr  # the default hook still printed it
    [warning] = warnings_in(tmp_path / "w")
    assert warning["type"] == "training_failed" and warning["severity"] == "ERROR"
    assert warning["message"] == "Training failed: ValueError: loss is nan"
    assert warning["details"]["exception_type"] == "ValueError"
    assert warning["details"]["traceback"][-1].endswith(" in step")


def test_keyboard_interrupt_logs_training_interrupted(tmp_path: Path) -> None:
    result = run_python(SETUP + "raise KeyboardInterrupt\n", cwd=tmp_path)
    assert result.returncode != 0 and "KeyboardInterrupt" in result.stderr
    [warning] = warnings_in(tmp_path / "w")
    assert warning["type"] == "training_interrupted" and warning["severity"] == "INFO"


def test_thread_exception_idempotent_chain_and_uninstall(
    captured: tuple[logging.Logger, Path], hooks_restored: None
) -> None:
    logger, out = captured
    seen: list[str] = []
    previous_thread_hook = threading.excepthook
    threading.excepthook = lambda args: seen.append(f"thread:{args.exc_type.__name__}")
    previous_hook = sys.excepthook
    sys.excepthook = lambda t, v, tb: seen.append(f"main:{t.__name__}")
    try:
        install_hooks(logger)
        install_hooks(logger)  # idempotent: one record per failure, previous hooks once

        def worker() -> None:
            raise RuntimeError("data loader died")

        thread = threading.Thread(target=worker, name="loader-0")
        thread.start()
        thread.join()
        try:
            raise OSError("disk gone")
        except OSError as exc:
            sys.excepthook(type(exc), exc, exc.__traceback__)
        assert seen == ["thread:RuntimeError", "main:OSError"]
        bodies = warnings_in(out)
        assert sorted(b["details"]["exception_type"] for b in bodies) == ["OSError", "RuntimeError"]
        [from_thread] = [b for b in bodies if b["details"].get("thread") == "loader-0"]
        assert from_thread["message"] == "Training failed: RuntimeError: data loader died"
        uninstall_hooks()
        sys.excepthook(ValueError, ValueError("after"), None)
        assert len(warnings_in(out)) == 2 and seen[-1] == "main:ValueError"
    finally:
        uninstall_hooks()
        sys.excepthook = previous_hook
        threading.excepthook = previous_thread_hook


SIGTERM_CHILD = (
    SETUP
    + """
import os, signal, threading
{extra}
print("ready", flush=True)
threading.Event().wait(30)
print("not killed", flush=True)
"""
)


def _run_and_terminate(tmp_path: Path, extra: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGTERM_CHILD.format(extra=extra)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    os.kill(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_sigterm_drains_the_queue_then_dies_of_sigterm(tmp_path: Path) -> None:
    # SIGTERM right after logging: the records are still queued, and the default action
    # skips atexit (where the queue is drained otherwise). Without the hook: 0 files.
    code = SETUP + "\n".join(
        [
            "import os, signal",
            "log = logging.getLogger('trainer')",
            "for i in range(50):",
            "    log.warning('w %d', i, extra={'warning_type': 'queued'})",
            "os.kill(os.getpid(), signal.SIGTERM)",
            "print('survived')",
        ]
    )
    result = run_python(code, cwd=tmp_path)
    assert result.returncode == -signal.SIGTERM, result.stderr
    assert "survived" not in result.stdout
    bodies = warnings_in(tmp_path / "w")
    assert len([b for b in bodies if b["type"] == "queued"]) == 50
    [stop] = [b for b in bodies if b["type"] == "training_interrupted"]
    assert stop["details"]["signal"] == "SIGTERM"


def test_sigterm_from_another_process_while_waiting(tmp_path: Path) -> None:
    result = _run_and_terminate(tmp_path)
    assert result.returncode == -signal.SIGTERM, result.stderr
    assert "not killed" not in result.stdout
    [stop] = warnings_in(tmp_path / "w")
    assert stop["type"] == "training_interrupted"


def test_sigterm_chains_to_the_previous_handler(tmp_path: Path) -> None:
    # The previous handler was installed first; install_hooks() in SETUP ran before it
    # here, so re-install on top of a handler set afterwards.
    extra = "\n".join(
        [
            "hooks.uninstall_hooks()",
            "def previous(signum, frame):",
            "    print('previous handler', flush=True)",
            "    raise SystemExit(7)",
            "signal.signal(signal.SIGTERM, previous)",
            "hooks.install_hooks()",
        ]
    )
    result = _run_and_terminate(tmp_path, extra)
    assert result.returncode == 7, result.stderr
    assert "previous handler" in result.stdout and "not killed" not in result.stdout
    [stop] = warnings_in(tmp_path / "w")
    assert stop["type"] == "training_interrupted"


def test_check_resume_config(captured: tuple[logging.Logger, Path]) -> None:
    logger, out = captured
    saved = {
        "model": "resnet50",
        "optimizer": {"name": "adam", "lr": 1e-3, "betas": [0.9, 0.999]},
        "seed": 42,
        "loss_scale": math.nan,
        "mask": np.array([1, 2, 3]),
        "dropped": True,
        "wandb": {"api_key": "planted-secret-key"},
    }
    current = {
        "model": "resnet50",
        "optimizer": {"name": "adam", "lr": 3e-4, "betas": [0.9, 0.99]},
        "seed": 42,
        "loss_scale": math.nan,
        "mask": np.array([1, 2, 4]),
        "added": {"k": 1},
        "wandb": {"api_key": "other-secret-key"},
    }
    assert check_resume_config(saved, dict(saved), logger) == []
    assert warnings_in(out) == []
    diffs = check_resume_config(saved, current, logger)
    assert [d.path for d in diffs] == [
        "optimizer.lr",
        "optimizer.betas.1",
        "mask",
        "dropped",
        "wandb.api_key",
        "added",
    ]
    assert diffs[0] == ConfigDifference("optimizer.lr", 1e-3, 3e-4)
    assert diffs[3].new is MISSING and diffs[5].old is MISSING
    [warning] = warnings_in(out)
    assert warning["type"] == "resume_config_mismatch" and warning["severity"] == "WARNING"
    assert warning["details"]["count"] == 6
    listed = {d["path"]: d for d in warning["details"]["differences"]}
    assert listed["optimizer.lr"] == {
        "path": "optimizer.lr",
        "old": 0.001,
        "new": 0.0003,
        "change": "changed",
    }
    assert listed["dropped"] == {"path": "dropped", "old": True, "change": "removed"}
    assert listed["added"] == {"path": "added", "new": {"k": 1}, "change": "added"}
    assert warning["message"].startswith("Resuming with a different config: optimizer.lr, ")
    assert listed["wandb.api_key"]["old"] == "[REDACTED]"
    text = "".join(p.read_text() for p in out.iterdir())
    assert "planted-secret-key" not in text and "other-secret-key" not in text


def test_checkpoint_load_reports_and_reraises(
    tmp_path: Path, captured: tuple[logging.Logger, Path]
) -> None:
    logger, out = captured
    ckpt = tmp_path / "epoch3.ckpt"
    ckpt.write_bytes(b"\x00not json at all")
    with pytest.raises(json.JSONDecodeError), checkpoint_load(ckpt, logger):
        json.loads(ckpt.read_bytes())
    [warning] = warnings_in(out)
    assert warning["type"] == "checkpoint_corrupted" and warning["severity"] == "ERROR"
    details = warning["details"]
    assert details["path"] == str(ckpt) and details["size"] == 16 and details["exists"]
    assert details["error_type"] == "json.decoder.JSONDecodeError"
    with checkpoint_load(ckpt, logger):
        pass  # a load that works logs nothing
    report_checkpoint_corrupted(tmp_path / "gone.ckpt", "file vanished", logger)
    gone = [w for w in warnings_in(out) if w["details"]["path"].endswith("gone.ckpt")]
    assert gone[0]["details"]["exists"] is False and gone[0]["details"]["size"] is None
    assert len(warnings_in(out)) == 2


def test_a_training_run_and_the_hooks_log_one_failure(tmp_path: Path) -> None:
    code = SETUP + (
        "from audit_logging import TrainingRun\n"
        "with TrainingRun(dataset='d.csv', model='m', git=None):\n"
        "    raise ValueError('loss is nan')\n"
    )
    result = run_python(code, cwd=tmp_path)
    assert result.returncode == 1 and "ValueError: loss is nan" in result.stderr
    [warning] = warnings_in(tmp_path / "w")
    assert warning["type"] == "training_failed"
    assert warning["details"]["exception_type"] == "ValueError"
