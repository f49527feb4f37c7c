"""WarningFileHandler: one JSON file per warning, names, atomicity, retention, secrets, modes."""

from __future__ import annotations

import json
import logging
import logging.config
import multiprocessing
import os
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from audit_logging import _git_head as git_head
from audit_logging.queue import AuditQueueHandler
from audit_logging.schema import WARNING_FIELDS
from audit_logging.writers.warnings import NAME_RE, WarningFileHandler

from helpers import visible

T0 = float((int(time.time()) // 86400 - 1) * 86400)  # yesterday 00:00:00 UTC: within max_age
T0_NAME = time.strftime("%Y-%m-%d_%H-%M-%S", time.gmtime(T0))
T0_ISO = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(T0))


def read_warnings(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    """(name, body) of every *.json in ``directory``, in name order, parsed strictly."""

    def refuse(token: str) -> Any:
        raise ValueError(token)

    return [
        (p.name, json.loads(p.read_text(encoding="utf-8"), parse_constant=refuse))
        for p in sorted(directory.glob("*.json"))
    ]


class Clock(logging.Filter):
    """Stamps records with an injected creation time."""

    def __init__(self, when: float) -> None:
        super().__init__()
        self.when = when

    def filter(self, record: logging.LogRecord) -> bool:
        record.created = self.when
        return True


@pytest.fixture
def in_tmp_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in an empty tmp dir (no git repo around it): git_commit lookups find nothing."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    git_head._commit_cache.clear()
    return work


def test_body_fields_name_and_indentation(in_tmp_cwd: Path, logger: logging.Logger) -> None:
    out = in_tmp_cwd / "warnings"
    logger.addHandler(WarningFileHandler(directory=out))
    logger.addFilter(Clock(T0 + 0.25))
    logger.warning(
        "Training with %s changes",
        "uncommitted",
        extra={
            "warning_type": "dirty_git",
            "details": {"files": ["train.py"]},
            "recommendation": "Commit changes before production runs",
        },
    )
    [(name, body)] = read_warnings(out)
    assert list(body) == [
        *WARNING_FIELDS,
        *("details", "rank", "local_rank", "world_size", "schema_version"),
    ]
    assert body["timestamp"] == f"{T0_ISO}.250000Z"
    assert body["type"] == "dirty_git"
    assert body["severity"] == "WARNING"
    assert body["message"] == "Training with uncommitted changes"
    assert body["recommendation"] == "Commit changes before production runs"
    assert body["details"] == {"files": ["train.py"]}
    assert body["git_commit"] is None  # not in a repository
    assert len(body["fingerprint"]) == 64
    assert name == f"{T0_NAME}_dirty_git_{body['fingerprint'][:8]}.json"
    text = (out / name).read_text()
    assert text.startswith('{\n  "timestamp"') and text.endswith("}\n")  # reviewable in git


def test_severity_defaults_override_and_other_types(
    in_tmp_cwd: Path, logger: logging.Logger
) -> None:
    out = in_tmp_cwd / "w"
    logger.addHandler(WarningFileHandler(directory=out))
    logger.info("no creds", extra={"warning_type": "credentials_missing"})
    logger.info("resume", extra={"warning_type": "resume_config_mismatch", "severity": "ERROR"})
    logger.error("custom", extra={"warning_type": "data_drift"})
    logger.info("numeric", extra={"warning_type": "data_leak", "severity": logging.CRITICAL})
    severities = {b["type"]: b["severity"] for _, b in read_warnings(out)}
    assert severities == {
        "credentials_missing": "CRITICAL",
        "resume_config_mismatch": "ERROR",
        "data_drift": "ERROR",
        "data_leak": "CRITICAL",
    }
    # A record without warning_type is not a warning.
    logger.warning("plain")
    assert len(read_warnings(out)) == 4


def test_fingerprint_is_stable_given_or_computed(in_tmp_cwd: Path, logger: logging.Logger) -> None:
    out = in_tmp_cwd / "w"
    logger.addHandler(WarningFileHandler(directory=out))
    for _ in range(2):
        logger.warning("same", extra={"warning_type": "x", "details": {"a": 1}})
    logger.warning("same", extra={"warning_type": "x", "details": {"a": 2}})
    logger.warning("given", extra={"warning_type": "x", "fingerprint": "abc123def4567890"})
    logger.warning("odd", extra={"warning_type": "x", "fingerprint": "../../etc/passwd"})
    bodies = [b for _, b in read_warnings(out)]
    fps = [b["fingerprint"] for b in bodies]
    computed = [b["fingerprint"] for b in bodies if b["message"] == "same"]
    assert len(set(computed)) == 2 and sorted(computed).count(computed[0]) in (1, 2)
    assert "abc123def4567890" in fps and "../../etc/passwd" in fps
    names = [n for n, _ in read_warnings(out)]
    assert any(n.endswith("_x_abc123de.json") for n in names)
    assert all(NAME_RE.fullmatch(n) for n in names)  # the odd fingerprint is hashed for the name
    assert [p.name for p in visible(out) if not p.name.endswith(".json")] == []


def test_git_commit_given_or_head_of_the_working_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logger: logging.Logger
) -> None:
    pytest.importorskip("git", reason="HEAD is read with the `git` extra (gitpython)")
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", str(repo)], check=True)
    (repo / "a.txt").write_text("a")
    subprocess.run([*git, "-C", str(repo), "add", "a.txt"], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-qm", "one"], check=True)
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    monkeypatch.chdir(repo)
    git_head._commit_cache.clear()
    out = tmp_path / "w"
    logger.addHandler(WarningFileHandler(directory=out))
    logger.warning("from head", extra={"warning_type": "a"})
    logger.warning("given", extra={"warning_type": "b", "git_commit": "f" * 40})
    by_type = {b["type"]: b for _, b in read_warnings(out)}
    assert by_type["a"]["git_commit"] == head
    assert by_type["b"]["git_commit"] == "f" * 40


def test_same_second_same_fingerprint_keeps_all_in_order(
    in_tmp_cwd: Path, logger: logging.Logger
) -> None:
    out = in_tmp_cwd / "w"
    handler = WarningFileHandler(directory=out)
    logger.addHandler(handler)
    clock = Clock(T0)
    logger.addFilter(clock)
    for i in range(12):
        clock.when = T0 + i / 100  # the same second, increasing microseconds
        logger.warning("again", extra={"warning_type": "dirty_git", "fingerprint": "ab" * 32})
    found = read_warnings(out)
    names = [n for n, _ in found]
    assert len(found) == 12 == handler.records_written
    assert names[0] == f"{T0_NAME}_dirty_git_abababab.json"
    assert names[1] == f"{T0_NAME}_dirty_git_abababab_0002.json"
    assert names[-1] == f"{T0_NAME}_dirty_git_abababab_0012.json"
    stamps = [b["timestamp"] for _, b in found]
    assert stamps == sorted(stamps)  # plain name order is creation order


def _write_same_second(directory: str, count: int, start: Any) -> None:
    log = logging.getLogger(f"same-second-{os.getpid()}")
    log.propagate = False
    log.addFilter(Clock(T0))
    handler = WarningFileHandler(directory=directory, max_files_per_type=None)
    log.addHandler(handler)
    start.wait()
    for i in range(count):
        log.warning("dup %d", i, extra={"warning_type": "gcs_auth_failed", "fingerprint": "c" * 64})
    handler.close()
    assert handler.records_failed == 0


def test_same_second_collisions_across_processes_lose_nothing(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [
        ctx.Process(target=_write_same_second, args=(str(tmp_path), 20, start)) for _ in range(3)
    ]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    found = read_warnings(tmp_path)
    assert len(found) == 60
    assert sorted(m for m in (b["message"] for _, b in found)) == sorted(
        [f"dup {i}" for i in range(20)] * 3
    )


def test_readers_never_see_partial_files(in_tmp_cwd: Path, logger: logging.Logger) -> None:
    out = in_tmp_cwd / "w"
    handler = WarningFileHandler(directory=out, max_files_per_type=20)
    logger.addHandler(handler)
    stop = threading.Event()
    problems: list[str] = []
    seen = 0

    def reader() -> None:
        nonlocal seen
        while not stop.is_set():
            for path in out.glob("*.json") if out.exists() else []:
                try:
                    data = path.read_bytes()
                except FileNotFoundError:
                    continue  # retention deleted it: fine, it was whole or absent
                seen += 1
                try:
                    json.loads(data)
                except ValueError:
                    problems.append(path.name)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        big = {"rows": ["x" * 200] * 300}  # ~60 kB: several write() calls per file
        for i in range(80):
            logger.warning("w %d", i, extra={"warning_type": "t", "details": big})
    finally:
        stop.set()
        thread.join()
    assert problems == []
    assert seen > 0
    assert len(list(out.glob("*.json"))) == 20
    assert [p.name for p in visible(out) if not NAME_RE.fullmatch(p.name)] == []


@pytest.mark.parametrize(
    "bad", ["../escape", "/abs/path", "a/b", "Dirty", "", "x" * 101, "dirty git", 42, None, "a\0b"]
)
def test_invalid_warning_types_are_rejected(
    tmp_path: Path, logger: logging.Logger, bad: object, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sub" / "w"
    handler = WarningFileHandler(directory=out)
    logger.addHandler(handler)
    logger.warning("bad", extra={"warning_type": bad})
    assert handler.records_rejected == 1 and handler.records_written == 0
    assert "warning_type must match" in capsys.readouterr().err
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != ".audit-manifest.jsonl"]
    [rejects] = files  # only the rejects file, in the warnings folder, holding the record
    assert rejects.parent == out and rejects.name.startswith("rejected-")
    [line] = [json.loads(text) for text in rejects.read_text(encoding="utf-8").splitlines()]
    assert (line["message"], line["writer"]) == ("bad", "WarningFileHandler")
    assert "warning_type must match" in line["reason"]
    assert not Path("/abs/path").exists()


def test_retention_per_type_oldest_out_and_across_restart(
    in_tmp_cwd: Path, logger: logging.Logger
) -> None:
    out = in_tmp_cwd / "w"
    clock = Clock(T0)
    logger.addFilter(clock)
    first = WarningFileHandler(directory=out, max_files_per_type=None)
    logger.addHandler(first)
    for i in range(8):
        clock.when = T0 + i
        logger.warning("a%d", i, extra={"warning_type": "a"})
        logger.warning("b%d", i, extra={"warning_type": "b"})
    logger.removeHandler(first)
    first.close()
    assert len(read_warnings(out)) == 16
    # A new process (here: a new handler) with a limit trims what an earlier run left.
    second = WarningFileHandler(directory=out, max_files_per_type=3)
    logger.addHandler(second)
    clock.when = T0 + 100
    logger.warning("a-new", extra={"warning_type": "a"})
    kept = read_warnings(out)
    assert [b["message"] for _, b in kept if b["type"] == "a"] == ["a6", "a7", "a-new"]
    assert [b["message"] for _, b in kept if b["type"] == "b"] == ["b5", "b6", "b7"]
    assert second.files_deleted == 6 + 5


def test_retention_by_age_reads_the_name_and_spares_other_files(
    in_tmp_cwd: Path, logger: logging.Logger
) -> None:
    out = in_tmp_cwd / "w"
    out.mkdir()
    (out / "README.md").write_text("# Training Audit Logs\n")
    old = out / "2000-01-01_00-00-00_dirty_git_0123abcd.json"
    old.write_text("{}")
    recent = out / time.strftime("%Y-%m-%d_%H-%M-%S_dirty_git_89abcdef.json", time.gmtime())
    recent.write_text("{}")
    os.utime(recent, (0, 0))  # an ancient mtime (a git checkout sets any): the name decides
    logger.addHandler(WarningFileHandler(directory=out, max_age_days=90))
    logger.warning("now", extra={"warning_type": "dirty_git"})
    names = sorted(p.name for p in visible(out))
    assert old.name not in names
    assert recent.name in names and "README.md" in names and len(names) == 3


def test_retention_by_total_size_drops_oldest_of_any_type(
    in_tmp_cwd: Path, logger: logging.Logger
) -> None:
    out = in_tmp_cwd / "w"
    clock = Clock(T0)
    logger.addFilter(clock)
    handler = WarningFileHandler(directory=out, max_total_bytes=4_000)
    logger.addHandler(handler)
    for i in range(20):
        clock.when = T0 + i
        logger.warning("m", extra={"warning_type": f"t{i % 3}", "details": {"pad": "x" * 500}})
    files = list(out.glob("*.json"))
    assert sum(p.stat().st_size for p in files) <= 4_000
    kept = sorted(int(b["timestamp"][17:19]) for _, b in read_warnings(out))
    assert kept == list(range(20 - len(kept), 20))  # the newest, whatever their type
    # A single warning bigger than the cap is still kept (it is the newest).
    logger.warning("huge", extra={"warning_type": "t0", "details": {"pad": "x" * 10_000}})
    [(_, body)] = read_warnings(out)
    assert body["message"] == "huge"


def _retention_worker(directory: str, pid_tag: int, start: Any) -> None:
    log = logging.getLogger(f"retention-{pid_tag}")
    log.propagate = False
    handler = WarningFileHandler(directory=directory, max_files_per_type=10)
    log.addHandler(handler)
    start.wait()
    for i in range(40):
        log.warning("p%d-%d", pid_tag, i, extra={"warning_type": "shared", "details": {"i": i}})
        log.warning("p%d-%d", pid_tag, i, extra={"warning_type": f"own{pid_tag}"})
    handler.close()
    if handler.records_failed or handler.retention_errors:
        raise SystemExit(3)


def test_retention_across_three_processes(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [
        ctx.Process(target=_retention_worker, args=(str(tmp_path), n, start)) for n in range(3)
    ]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    found = read_warnings(tmp_path)
    by_type: dict[str, list[str]] = {}
    for _, body in found:
        by_type.setdefault(body["type"], []).append(body["message"])
    assert set(by_type) == {"shared", "own0", "own1", "own2"}
    assert all(len(v) == 10 for v in by_type.values()), {k: len(v) for k, v in by_type.items()}
    for n in range(3):  # each process's own type keeps its newest ten
        assert sorted(by_type[f"own{n}"]) == sorted(f"p{n}-{i}" for i in range(30, 40))
    assert [p.name for p in visible(tmp_path) if not NAME_RE.fullmatch(p.name)] == []


def test_secrets_never_reach_a_file(in_tmp_cwd: Path, logger: logging.Logger) -> None:
    out = in_tmp_cwd / "w"
    logger.addHandler(WarningFileHandler(directory=out))
    planted = {
        "hunter2-password",
        "sk-live-0123456789abcdef",
        "ya29.A0ARrdaM-planted-bearer",
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCplanted",
        "planted-private-key-id-42",
    }
    logger.error(
        "login failed with password=hunter2-password via Bearer ya29.A0ARrdaM-planted-bearer",
        extra={
            "warning_type": "gcs_auth_failed",
            "details": {
                "db": {"password": "hunter2-password"},
                "OPENAI_API_KEY": "sk-live-0123456789abcdef",
                "key_file": {
                    "type": "service_account",
                    "private_key_id": "planted-private-key-id-42",
                    "private_key": "-----BEGIN PRIVATE KEY-----\n"
                    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCplanted\n-----END PRIVATE KEY-----\n",
                },
            },
            "recommendation": "rotate token=sk-live-0123456789abcdef",
        },
    )
    files = list(visible(out))
    assert len(files) == 1
    for path in files:
        data = path.read_text()
        for secret in planted:
            assert secret not in data, (secret, path.name)
    [(_, body)] = read_warnings(out)
    assert body["details"]["db"]["password"] == "[REDACTED]"
    assert body["details"]["key_file"] == "[REDACTED service account key]"


def test_file_and_directory_modes(in_tmp_cwd: Path, logger: logging.Logger) -> None:
    out = in_tmp_cwd / "deep" / "w"
    logger.addHandler(WarningFileHandler(directory=out))
    logger.warning("m", extra={"warning_type": "x"})
    [path] = out.glob("*.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    shared = in_tmp_cwd / "shared"
    old_umask = os.umask(0o022)
    try:
        handler = WarningFileHandler(directory=shared, file_mode=0o644, dir_mode=0o755)
        logger.addHandler(handler)
        logger.warning("m", extra={"warning_type": "y"})
    finally:
        os.umask(old_umask)
    [path] = shared.glob("*_y_*.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_planted_symlink_is_never_followed(in_tmp_cwd: Path, logger: logging.Logger) -> None:
    out = in_tmp_cwd / "w"
    out.mkdir()
    target = in_tmp_cwd / "precious.txt"
    target.write_text("keep me")
    planted = out / f"{T0_NAME}_dirty_git_abababab.json"
    planted.symlink_to(target)
    logger.addFilter(Clock(T0))
    handler = WarningFileHandler(directory=out, max_files_per_type=1)
    logger.addHandler(handler)
    logger.warning("m", extra={"warning_type": "dirty_git", "fingerprint": "ab" * 32})
    assert target.read_text() == "keep me" and planted.is_symlink()
    assert (out / f"{T0_NAME}_dirty_git_abababab_0002.json").is_file()


def test_removed_directory_is_recreated_and_stale_temp_files_go(
    in_tmp_cwd: Path, logger: logging.Logger
) -> None:
    out = in_tmp_cwd / "w"
    handler = WarningFileHandler(directory=out)
    logger.addHandler(handler)
    logger.warning("one", extra={"warning_type": "x"})
    for p in out.iterdir():
        p.unlink()
    out.rmdir()
    logger.warning("two", extra={"warning_type": "x"})
    assert [b["message"] for _, b in read_warnings(out)] == ["two"]
    # A temporary file left by a writer killed mid-write, long ago, is cleaned up.
    stale = out / ".2026-01-01_00-00-00_x_00000000.json.123.abcd.tmp"
    stale.write_text('{"half')
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    handler.enforce_retention()
    assert not stale.exists()
    assert handler.records_written == 2 and handler.records_failed == 0


def test_from_dict_config_through_the_queue(in_tmp_cwd: Path) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "warnings": {
                    "class": "audit_logging.writers.warnings.WarningFileHandler",
                    "directory": "training_logs/warnings",
                    "max_files_per_type": 5,
                },
                "audit": {"class": "audit_logging.AuditQueueHandler", "handlers": ["warnings"]},
            },
            "loggers": {"cfg_test": {"handlers": ["audit"], "level": "INFO", "propagate": False}},
        }
    )
    log = logging.getLogger("cfg_test")
    details = {"files": ["a.py"]}
    log.warning("dirty", extra={"warning_type": "dirty_git", "details": details})
    details["files"].append("changed-after-the-call.py")
    [queue_handler] = log.handlers
    assert isinstance(queue_handler, AuditQueueHandler)
    queue_handler.flush()
    [(_, body)] = read_warnings(in_tmp_cwd / "training_logs" / "warnings")
    assert body["details"] == {"files": ["a.py"]}


def test_readme_shell_recipes(in_tmp_cwd: Path, logger: logging.Logger) -> None:
    logger.addHandler(WarningFileHandler(directory="training_logs/warnings"))
    clock = Clock(T0)
    logger.addFilter(clock)
    for i, (wtype, n) in enumerate(
        [("dirty_git", 3), ("gcs_auth_failed", 2), ("credentials_missing", 4)]
    ):
        for j in range(n):
            clock.when = T0 + 10 * i + j
            logger.warning("w", extra={"warning_type": wtype, "details": {"j": j}})
    script = r"""
set -e
echo "== ls"
ls training_logs/warnings/*dirty_git*.json
echo "== recent"
ls -la training_logs/warnings/*credentials_missing*.json | tail -5
echo "== count"
for type in dirty_git gcs_auth_failed checkpoint_corrupted; do
  echo "$type: $(ls training_logs/warnings/*${type}*.json 2>/dev/null | wc -l)"
done
"""
    result = subprocess.run(
        ["bash", "-c", script], cwd=in_tmp_cwd, capture_output=True, text=True, check=True
    )
    listed, recent, counts = result.stdout.split("== ")[1:]
    assert len(listed.split()) == 1 + 3
    assert all("_dirty_git_" in name for name in listed.split()[1:])
    assert recent.count("credentials_missing") == 4
    assert counts.split("\n")[1:4] == [
        "dirty_git: 3",
        "gcs_auth_failed: 2",
        "checkpoint_corrupted: 0",
    ]
