"""The seal commands run as a user runs them: keygen, prove, check-proof (real subprocesses)."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("cryptography")

from audit_logging.seals.forward import ForwardKey
from audit_logging.seals.keys import load_signer
from audit_logging.seals.sealer import JournalSealer


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "audit_logging.seals.cli", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def sealed_journal(folder: Path, **keys: object) -> Path:
    journal = folder / "ml-platform-2026-05-27.jsonl"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        b'{"event":"TRAINING_PROGRESS","step":%d,"seq":%d,"hash":"x"}' % (i, i + 1)
        for i in range(40)
    ]
    journal.write_bytes(b"".join(x + b"\n" for x in lines))
    JournalSealer(journal, **keys).seal()  # type: ignore[arg-type]
    return journal


def test_keygen_prove_and_check_proof(tmp_path: Path) -> None:
    done = run("keygen", str(tmp_path / "keys"))
    assert done.returncode == 0, done.stderr
    pem, pub = (
        tmp_path / "keys" / "audit-signing-key.pem",
        tmp_path / "keys" / "audit-signing-key.pub",
    )
    assert done.stdout.splitlines()[:2] == [str(pem), str(pub)]
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert run("keygen", str(tmp_path / "keys")).returncode == 2  # never over a key
    sealed_journal(tmp_path / "run", signer=load_signer(pem))
    bundle = tmp_path / "proof.json"
    done = run("prove", str(tmp_path / "run"), "--seq", "5", "-o", str(bundle))
    assert done.returncode == 0, done.stderr
    assert (
        json.loads(bundle.read_text())["line"]
        == '{"event":"TRAINING_PROGRESS","step":4,"seq":5,"hash":"x"}'
    )
    done = run("check-proof", str(bundle), "--public-key", str(pub))
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.startswith("proven: line 5 of audit-logging/") and "(40 lines)" in done.stdout
    )
    data = json.loads(bundle.read_text())
    data["line"] = data["line"].replace('"step":4', '"step":44')
    bundle.write_text(json.dumps(data))
    done = run("check-proof", str(bundle), "--public-key", str(pub))
    assert done.returncode == 1 and "NOT PROVEN" in done.stderr
    assert run("prove", str(tmp_path / "run"), "--seq", "99").returncode == 1


def test_forward_secure_keygen_prints_the_verification_key_once(tmp_path: Path) -> None:
    done = run("keygen", str(tmp_path), "--forward-secure", "--interval", "60")
    assert done.returncode == 0, done.stderr
    state = tmp_path / "audit-fss.state"
    assert done.stdout.splitlines()[0] == str(state)
    vkey = done.stdout.strip().splitlines()[-1]
    assert vkey.startswith("FSS-VERIFY+") and "OFF this host" in done.stdout
    sealed_journal(tmp_path / "run", forward_key=ForwardKey(state))
    bundle = tmp_path / "p.json"
    assert run("prove", str(tmp_path / "run"), "--seq", "40", "-o", str(bundle)).returncode == 0
    done = run("check-proof", str(bundle), "--verification-key", vkey)
    assert done.returncode == 0 and "epoch 0" in done.stdout, done.stderr
