"""check_git against real repositories, check_gcs against a real fake-gcs-server."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from audit_logging.probes import check_gcs, check_git
from audit_logging.writers.warnings import WarningFileHandler

from helpers import run_python

GIT = [
    "git",
    "-c",
    "user.name=t",
    "-c",
    "user.email=t@example.com",
    "-c",
    "init.defaultBranch=main",
]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        [*GIT, "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository with one commit (train.py, data.csv), isolated from any user git config."""
    pytest.importorskip("git", reason="the git probe needs the `git` extra (gitpython)")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q")
    (path / "train.py").write_text("print('train')\n")
    (path / "data.csv").write_text("a,b\n")
    git(path, "add", ".")
    git(path, "commit", "-qm", "first")
    return path


def warnings_in(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


# --------------------------------------------------------------------------- git


def test_clean_repository(repo: Path, captured: tuple[logging.Logger, Path]) -> None:
    logger, out = captured
    status = check_git(repo, logger)
    assert status.available and status.is_repo and not status.dirty
    assert status.commit == git(repo, "rev-parse", "HEAD")
    assert status.branch == "main" and not status.detached
    assert status.changed_files == status.untracked_files == ()
    assert warnings_in(out) == []


def test_dirty_repository_logs_dirty_git(repo: Path, captured: tuple[logging.Logger, Path]) -> None:
    logger, out = captured
    (repo / "train.py").write_text("print('changed')\n")
    (repo / "data.csv").unlink()
    (repo / "new_model.py").write_text("x = 1\n")
    (repo / "staged.py").write_text("y = 2\n")
    git(repo, "add", "staged.py")
    status = check_git(repo, logger)
    assert status.dirty
    assert sorted(status.changed_files) == ["data.csv", "staged.py", "train.py"]
    assert status.untracked_files == ("new_model.py",)
    [warning] = warnings_in(out)
    assert warning["type"] == "dirty_git" and warning["severity"] == "WARNING"
    assert warning["git_commit"] == status.commit
    assert warning["fingerprint"] == status.fingerprint
    assert warning["message"] == "Training with uncommitted changes (3 changed, 1 untracked files)"
    assert warning["recommendation"].startswith("Commit changes before production runs")
    assert sorted(warning["details"]["changed_files"]) == ["data.csv", "staged.py", "train.py"]
    assert warning["details"]["untracked_files"] == ["new_model.py"]
    assert warning["details"]["branch"] == "main"


def test_fingerprint_is_same_for_same_state_and_changes_with_it(
    repo: Path, captured: tuple[logging.Logger, Path]
) -> None:
    logger, out = captured
    (repo / "train.py").write_text("v1\n")
    first = check_git(repo, logger)
    again = check_git(repo, logger)
    assert first.fingerprint == again.fingerprint
    (repo / "train.py").write_text("v2\n")  # same file names, other content
    edited = check_git(repo, logger)
    (repo / "notes.txt").write_text("n")
    untracked = check_git(repo, logger)
    assert len({first.fingerprint, edited.fingerprint, untracked.fingerprint}) == 3
    assert len(warnings_in(out)) == 4  # same state twice: both kept (they may share a second)


def test_detached_head(repo: Path) -> None:
    (repo / "train.py").write_text("second\n")
    git(repo, "commit", "-qam", "second")
    first = git(repo, "rev-parse", "HEAD~1")
    git(repo, "checkout", "-q", "--detach", first)
    status = check_git(repo, logging.getLogger("unused"))
    assert status.detached and status.branch is None and status.commit == first
    assert not status.dirty


def test_own_warning_folder_does_not_make_the_tree_dirty(
    repo: Path, captured: tuple[logging.Logger, Path]
) -> None:
    logger, _ = captured
    inside = logging.getLogger(f"{logger.name}.inside")
    inside.addHandler(WarningFileHandler(directory=repo / "training_logs" / "warnings"))
    (repo / "train.py").write_text("dirty\n")
    check_git(repo, inside)
    git(repo, "checkout", "--", "train.py")
    assert list((repo / "training_logs" / "warnings").glob("*dirty_git*.json"))
    assert not check_git(repo, inside).dirty


def test_not_a_repository_and_no_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, captured: tuple[logging.Logger, Path]
) -> None:
    pytest.importorskip("git", reason="the git probe needs the `git` extra (gitpython)")
    logger, out = captured
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    plain = tmp_path / "plain"
    plain.mkdir()
    status = check_git(plain, logger)
    assert status.available and not status.is_repo and not status.dirty
    assert status.reason is not None and "not a git repository" in status.reason
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    (empty / "file.py").write_text("x")
    status = check_git(empty, logger)
    assert status.is_repo and status.commit is None and not status.dirty
    assert status.reason == "repository has no commits yet"
    assert check_git(tmp_path / "does-not-exist", logger).is_repo is False
    assert warnings_in(out) == []


def test_without_gitpython(
    repo: Path, monkeypatch: pytest.MonkeyPatch, captured: tuple[logging.Logger, Path]
) -> None:
    logger, out = captured
    (repo / "train.py").write_text("dirty\n")
    monkeypatch.setitem(sys.modules, "git", None)  # what find_spec sees when it is not installed
    status = check_git(repo, logger)
    assert not status.available and status.reason is not None and "gitpython" in status.reason
    assert warnings_in(out) == []


def test_without_a_git_binary(repo: Path, tmp_path: Path) -> None:
    (repo / "train.py").write_text("dirty\n")
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    code = f"""
import logging
from audit_logging.probes import check_git
status = check_git({str(repo)!r}, logging.getLogger("x"))
print(status.available, status.reason)
"""
    result = run_python(code, cwd=tmp_path, PATH=str(empty_bin))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False no git executable found on PATH"


# --------------------------------------------------------------------------- gcs


def gcs_warnings(out: Path) -> list[dict[str, Any]]:
    return [w for w in warnings_in(out) if w["type"] in ("credentials_missing", "gcs_auth_failed")]


@pytest.mark.usefixtures("gcs_hermetic_env")
def test_no_credentials_at_all(captured: tuple[logging.Logger, Path]) -> None:
    logger, out = captured
    start = time.monotonic()
    status = check_gcs("some-bucket", logger)
    assert time.monotonic() - start < 5
    assert status.available and not status.ok and not status.credentials_found
    assert status.warning_type == "credentials_missing"
    [warning] = gcs_warnings(out)
    assert warning["type"] == "credentials_missing" and warning["severity"] == "CRITICAL"
    assert warning["details"]["exception"].endswith("DefaultCredentialsError")
    assert "gcloud auth application-default login" in warning["recommendation"]


@pytest.mark.usefixtures("gcs_hermetic_env")
def test_malformed_key_file_is_an_auth_failure(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    captured: tuple[logging.Logger, Path],
) -> None:
    logger, out = captured
    key = tmp_path / "key.json"
    key.write_text(
        '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIplanted'
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    status = check_gcs(None, logger)
    # Credentials were configured and are broken: a different fix than "configure some".
    assert status.warning_type == "gcs_auth_failed"
    [warning] = gcs_warnings(out)
    assert warning["details"]["exception"].endswith("DefaultCredentialsError")
    assert "MIIplanted" not in json.dumps(warning)
    # A path to no file at all: nothing is configured that exists.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    assert check_gcs(None, logger).warning_type == "credentials_missing"


@pytest.mark.usefixtures("gcs_hermetic_env")
def test_valid_looking_key_that_cannot_refresh(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    captured: tuple[logging.Logger, Path],
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    logger, out = captured
    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    key = tmp_path / "sa.json"
    key.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "p",
                "private_key_id": "planted-key-id-0123",
                "private_key": pem,
                "client_email": "trainer@p.iam.gserviceaccount.com",
                "client_id": "1",
                # Port 9 on loopback: refused at once, no network needed.
                "token_uri": "http://127.0.0.1:9/token",
            }
        )
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    start = time.monotonic()
    status = check_gcs("bucket", logger, timeout=2.0)
    assert time.monotonic() - start < 5
    assert status.credentials_found and status.warning_type == "gcs_auth_failed"
    assert status.service_account == "trainer@p.iam.gserviceaccount.com"
    for path in out.iterdir():
        text = path.read_text()
        assert pem.splitlines()[1] not in text and "planted-key-id-0123" not in text


@pytest.mark.usefixtures("gcs_hermetic_env")
def test_emulator_bucket_readable_missing_and_server_down(
    gcs_server: Any,
    gcs_bucket: Any,
    monkeypatch: pytest.MonkeyPatch,
    captured: tuple[logging.Logger, Path],
) -> None:
    logger, out = captured
    gcs_bucket.blob("ckpt/epoch1.pt").upload_from_string(b"weights")
    ok = check_gcs(gcs_bucket.name, logger, client=gcs_server.client())
    assert ok.ok and ok.warning_type is None
    assert gcs_warnings(out) == []

    missing = check_gcs("no-such-bucket", logger, client=gcs_server.client())
    assert missing.warning_type == "gcs_auth_failed" and missing.status_code == 404
    [warning] = gcs_warnings(out)
    assert warning["details"]["status_code"] == 404
    assert warning["details"]["exception"].endswith("NotFound")
    assert "no-such-bucket" in warning["message"]

    # The same through STORAGE_EMULATOR_HOST, as a training script would run against it.
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.url)
    assert check_gcs(gcs_bucket.name, logger).ok
    assert check_gcs("no-such-bucket", logger).status_code == 404

    with gcs_server.down():
        start = time.monotonic()
        down = check_gcs(gcs_bucket.name, logger, timeout=2.0)
        assert time.monotonic() - start < 5
    assert down.warning_type == "gcs_auth_failed" and not down.ok


def test_without_google_cloud_storage(
    monkeypatch: pytest.MonkeyPatch, logger: logging.Logger
) -> None:
    monkeypatch.setitem(sys.modules, "google.cloud.storage", None)
    status = check_gcs("bucket", logger)
    assert not status.available and status.reason == "google-cloud-storage is not installed"


_SCRIPT = """
import audit_logging, json, logging
from audit_logging.probes import check_git
handler = audit_logging.configure(formats="jsonl,json,csv,warnings")
logging.getLogger("train").info("started", extra={"event": "TRAINING_STARTED"})
logging.getLogger("ui").info("tag", extra={"action_type": "tag_add", "details": {}})
status = check_git()
handler.close()
print(json.dumps({"dirty": status.dirty, "untracked": list(status.untracked_files),
                  "ignored": list(status.ignored_paths)}))
"""


def test_second_run_of_a_configured_script_is_not_dirty_from_its_own_logs(repo: Path) -> None:
    # The first run writes logs/, audit_log.json, audit_log.csv in the clean
    # repository; the second run must not take them for uncommitted changes.
    first = run_python(_SCRIPT, cwd=repo)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["dirty"] is False
    assert (repo / "audit_log.csv").exists() and list((repo / "logs").glob("*.jsonl"))
    second = run_python(_SCRIPT, cwd=repo)
    assert second.returncode == 0, second.stderr
    status = json.loads(second.stdout)
    assert status == {
        "dirty": False,
        "untracked": [],
        "ignored": status["ignored"],
    }
    for prefix in ("training_logs/", "logs/", "audit_log.json", "audit_log.csv"):
        assert prefix in status["ignored"]
    assert not (repo / "training_logs" / "warnings").exists() or not list(
        (repo / "training_logs" / "warnings").glob("*dirty_git*")
    )
    # A real change is still seen, and the warning says what was ignored.
    (repo / "train.py").write_text("changed\n")
    third = run_python(_SCRIPT, cwd=repo)
    assert json.loads(third.stdout)["dirty"] is True
    [warning] = warnings_in(repo / "training_logs" / "warnings")
    assert warning["type"] == "dirty_git"
    assert warning["details"]["changed_files"] == ["train.py"]
    assert warning["details"]["untracked_files"] == []
    assert "logs/" in warning["details"]["ignored_paths"]


def test_outputs_outside_the_repository_are_not_listed(
    repo: Path, tmp_path: Path, logger: logging.Logger
) -> None:
    logger.addHandler(WarningFileHandler(directory=tmp_path / "elsewhere"))
    inside = WarningFileHandler(directory=repo / "out" / "warnings")
    logger.addHandler(inside)
    status = check_git(repo, warn=False)
    assert "out/warnings/" in status.ignored_paths
    assert not any("elsewhere" in p for p in status.ignored_paths)
