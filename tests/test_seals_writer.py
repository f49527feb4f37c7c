"""Seals written by the journal writer: JsonlHandler(signing_key=...), AUDIT_LOG_SIGNING_KEY, a forward-secure key."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

pytest.importorskip("cryptography")

from audit_logging import AuditQueueHandler, JsonlHandler
from audit_logging.seals.keys import keygen, load_verification_key, load_verifiers
from audit_logging.seals.proofs import check_proof, prove
from audit_logging.seals.sealer import list_seals
from audit_logging.seals.verify import verify_journal_seals, verify_since


def log_records(directory: Path, n: int, **writer: object) -> Path:
    handler = AuditQueueHandler(handlers=[JsonlHandler(directory=str(directory), **writer)])  # type: ignore[arg-type]
    log = logging.getLogger(f"seals.writer.{directory.name}.{n}")
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    for i in range(n):
        log.info("progress", extra={"event": "TRAINING_PROGRESS", "metrics_snapshot": {"step": i}})
    handler.close()
    (journal,) = directory.glob("ml-platform-*.jsonl")
    return journal


def test_a_signing_key_seals_each_journal_the_writer_writes(tmp_path: Path) -> None:
    keys = keygen(tmp_path / "keys")
    journal = log_records(tmp_path / "runs", 600, signing_key=str(keys.private))
    assert list_seals(journal) and (Path(f"{journal}.seals") / "tree.tiles").exists()
    verifiers = load_verifiers(keys.public)
    report = verify_journal_seals(journal, verifiers=verifiers)
    assert report.ok and report.sealed_lines == 600 and report.unsealed_lines == 0
    proved = check_proof(prove(journal, 299), verifiers)
    assert b'"step":299' in proved.line and proved.checkpoint.size == 600
    # A second run appends to the same journal; its seal extends the first one's.
    kept = list_seals(journal)[-1][1].read_bytes()
    log_records(tmp_path / "runs", 100, signing_key=str(keys.private))
    assert verify_journal_seals(journal, verifiers=verifiers).sealed_lines == 700
    assert verify_since(journal, kept, verifiers=verifiers) == []


def test_the_environment_names_the_key_and_an_edit_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = keygen(tmp_path / "keys")
    monkeypatch.setenv("AUDIT_LOG_SIGNING_KEY", str(keys.private))
    journal = log_records(tmp_path / "runs", 50)
    lines = journal.read_bytes().splitlines(keepends=True)
    lines[9] = lines[9].replace(b'"step":9', b'"step":99')
    journal.write_bytes(b"".join(lines))
    report = verify_journal_seals(journal, verifiers=load_verifiers(keys.public))
    assert [p.kind for p in report.problems] == ["seal-mismatch"]


def test_a_forward_secure_key_seals_with_its_epoch_s_key(tmp_path: Path) -> None:
    keys = keygen(tmp_path / "keys", forward_secure=True, interval=3600)
    journal = log_records(tmp_path / "runs", 100, forward_secure_key=str(keys.private))
    vk = load_verification_key(keys.verifier_key)
    assert verify_journal_seals(journal, verification_key=vk).ok
    wrong = load_verification_key(keygen(tmp_path / "wrong", forward_secure=True).verifier_key)
    kinds = [p.kind for p in verify_journal_seals(journal, verification_key=wrong).problems]
    assert kinds[:1] == ["seal-forged"]


def test_two_processes_writing_one_journal_keep_one_tree(tmp_path: Path) -> None:
    keys = keygen(tmp_path / "keys")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            log_records(tmp_path / "runs", 300, signing_key=str(keys.private))
        finally:
            os._exit(0)
    log_records(tmp_path / "runs", 300, signing_key=str(keys.private))
    os.waitpid(pid, 0)
    (journal,) = (tmp_path / "runs").glob("ml-platform-*.jsonl")
    report = verify_journal_seals(journal, verifiers=load_verifiers(keys.public))
    assert report.ok, report.problems
    assert report.lines == 600 and report.sealed_lines == 600
