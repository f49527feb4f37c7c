"""`audit-logging verify` with seals' keys, `prove` and `check-proof` through the main command.

These run once the read package's ``verify`` takes the seals' keys and a kept
checkpoint (``since``) and the main command adds the seal commands; until
then they are skipped, saying so.
"""

from __future__ import annotations

import inspect
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from audit_logging import AuditQueueHandler, JsonlHandler
from audit_logging.seals.keys import keygen
from audit_logging.seals.sealer import list_seals

pytest.importorskip("cryptography")
read_verify = pytest.importorskip("audit_logging.read.verify")
if "since" not in inspect.signature(read_verify.verify).parameters:  # pragma: no cover
    pytest.skip("the read package's verify does not take seals' keys yet", allow_module_level=True)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "audit_logging", *args], capture_output=True, text=True, check=False
    )


def log_records(directory: Path, n: int, **writer: object) -> Path:
    handler = AuditQueueHandler(handlers=[JsonlHandler(directory=str(directory), **writer)])  # type: ignore[arg-type]
    log = logging.getLogger(f"seals.command.{directory.name}")
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    for i in range(n):
        log.info("progress", extra={"event": "TRAINING_PROGRESS", "metrics_snapshot": {"step": i}})
    handler.close()
    (journal,) = directory.glob("ml-platform-*.jsonl")
    return journal


def test_verify_checks_the_seals_with_the_public_key(tmp_path: Path) -> None:
    keys = keygen(tmp_path / "keys")
    journal = log_records(tmp_path / "runs", 600, signing_key=str(keys.private))
    done = cli("verify", str(tmp_path / "runs"), "--public-key", str(keys.public))
    assert done.returncode == 0, done.stdout + done.stderr
    bundle = tmp_path / "p.json"
    assert cli("prove", str(tmp_path / "runs"), "--seq", "300", "-o", str(bundle)).returncode == 0
    done = cli("check-proof", str(bundle), "--public-key", str(keys.public))
    assert done.returncode == 0 and "line 300" in done.stdout
    other = keygen(tmp_path / "other")
    done = cli("verify", str(tmp_path / "runs"), "--public-key", str(other.public))
    assert done.returncode == 1 and ": seal: " in done.stdout
    kept = tmp_path / "kept.note"
    kept.write_bytes(list_seals(journal)[-1][1].read_bytes())
    lines = journal.read_bytes().splitlines(keepends=True)
    lines[9] = lines[9].replace(b'"step":9', b'"step":99')
    journal.write_bytes(b"".join(lines))
    done = cli(
        "verify", str(tmp_path / "runs"), "--since", str(kept), "--public-key", str(keys.public)
    )
    assert done.returncode == 1 and ": seal: " in done.stdout


def test_verify_checks_forward_secure_seals_with_the_verification_key(tmp_path: Path) -> None:
    keys = keygen(tmp_path / "keys", forward_secure=True, interval=3600)
    log_records(tmp_path / "runs", 100, forward_secure_key=str(keys.private))
    done = cli("verify", str(tmp_path / "runs"), "--verification-key", keys.verifier_key)
    assert done.returncode == 0, done.stdout + done.stderr
    wrong = keygen(tmp_path / "wrong", forward_secure=True)
    assert (
        cli("verify", str(tmp_path / "runs"), "--verification-key", wrong.verifier_key).returncode
        == 1
    )
