"""Guarantees under faults: full disk, broken paths, process death, long runs, symlinks."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import audit_logging._files as file_layer
from audit_logging import AuditQueueHandler, JsonlHandler
from audit_logging.read.verify import verify_paths

from helpers import REPO, journal_files, read_jsonl


@contextlib.contextmanager
def tmpfs(mount: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs at ``mount`` (root only): a real disk that fills up."""
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip(
            "cannot mount a tmpfs here (needs root); test_failed_writes_are_retried covers it"
        )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk") as mount:
        yield mount


def test_full_disk_loses_nothing_once_space_returns(
    small_disk: Path, logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    full_disk_scenario(small_disk, logger, lambda: capsys.readouterr().err)


def full_disk_scenario(small_disk: Path, logger: logging.Logger, err: Callable[[], str]) -> None:
    """600 records through the queue onto a disk that fills up, then frees up: all written once."""
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * 400 * 1024)
    writer = JsonlHandler(directory=small_disk / "logs")
    handler = AuditQueueHandler([writer])
    logger.addHandler(handler)
    for i in range(600):  # about 270 KB: does not fit beside the filler
        logger.info("step %d", i, extra={"event": "TRAINING_PROGRESS", "reasoning": "x" * 100})
    handler.flush()
    assert writer.records_failed > 0
    text = err()
    assert text.count("--- Logging error ---") == 1  # once per burst, not once per record
    assert "No space left on device" in text
    [path] = journal_files(small_disk / "logs")
    before = read_jsonl(path)  # what was written stays valid, line by line
    assert [line["seq"] for line in before] == list(range(1, len(before) + 1))
    filler.unlink()
    handler.flush()  # the writer retries what failed
    lines = read_jsonl(path)
    assert [line["message"] for line in lines] == [f"step {i}" for i in range(600)]
    assert [line["seq"] for line in lines] == list(range(1, 601))
    assert writer.records_lost == 0
    logger.removeHandler(handler)
    handler.close()
    assert verify_paths([small_disk / "logs"]).ok


def test_a_digest_that_fails_on_a_full_disk_writes_no_line_twice(
    small_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digest_on_full_disk_scenario(small_disk, lambda: capsys.readouterr().err)


def digest_on_full_disk_scenario(small_disk: Path, err: Callable[[], str]) -> None:
    """Small batches with a digest after each, onto a disk that fills up: no line twice."""
    # The lines of a batch fit in the journal's last page, the digest written
    # after them needs a new one: the lines must not be retried (written twice).
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * 400 * 1024)
    writer = JsonlHandler(directory=small_disk / "logs", digest_interval=0)
    for i in range(0, 600, 3):  # small batches, as a busy listener hands them over
        batch = []
        for n in range(i, i + 3):
            record = logging.LogRecord("t", logging.INFO, "", 0, "step %d", (n,), None)
            record.__dict__.update(event="TRAINING_PROGRESS", reasoning="x" * 100)
            batch.append(record)
        writer.handle_batch(batch)
    assert writer.records_failed > 0
    assert "No space left on device" in err()
    filler.unlink()
    writer.flush()
    [path] = journal_files(small_disk / "logs")
    lines = read_jsonl(path)
    assert [line["message"] for line in lines] == [f"step {i}" for i in range(600)]
    assert [line["seq"] for line in lines] == list(range(1, 601))
    assert writer.digests_failed > 0  # the case this test is about did happen
    writer.close()
    assert verify_paths([small_disk / "logs"]).ok


class FullDisk:
    """The file layer's ``write_all`` failing with ENOSPC while :attr:`full`, each write cut short."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = True
        self._real = file_layer.write_all
        monkeypatch.setattr(file_layer, "write_all", self.write_all)

    def write_all(self, fd: int, data: bytes) -> None:
        if self.full:
            os.write(fd, data[: len(data) // 2])  # a write cut short, as on a full disk
            raise OSError(errno.ENOSPC, "No space left on device")
        self._real(fd, data)


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> FullDisk:
    """The failure injected at the file layer (no tmpfs needed)."""
    return FullDisk(monkeypatch)


def test_failed_writes_are_retried(
    tmp_path: Path,
    logger: logging.Logger,
    full_disk: FullDisk,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same contract with the failure injected at the file layer (no tmpfs needed)."""
    writer = JsonlHandler(directory=tmp_path)
    logger.addHandler(writer)
    for i in range(5):
        logger.info("r%d", i, extra={"event": "TRAINING_PROGRESS"})
    assert writer.records_failed == 5
    assert capsys.readouterr().err.count("--- Logging error ---") == 1
    [path] = journal_files(tmp_path)
    assert path.read_bytes() == b""  # the half-written batch was taken back
    full_disk.full = False
    writer.flush()
    assert [line["message"] for line in read_jsonl(path)] == [f"r{i}" for i in range(5)]


def test_a_batch_over_two_days_retries_only_the_day_that_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = file_layer.write_all
    calls: list[int] = []

    def second_write_fails(fd: int, data: bytes) -> None:
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(file_layer, "write_all", second_write_fails)
    writer = JsonlHandler(directory=tmp_path, chain=False)
    midnight = dt.datetime(2026, 11, 24, tzinfo=dt.timezone.utc).timestamp()
    records = []
    for message, created in (("late", midnight - 1), ("early", midnight + 1)):
        record = logging.LogRecord("t", logging.INFO, __file__, 1, message, None, None)
        record.created = created
        record.__dict__["event"] = "TRAINING_PROGRESS"
        records.append(record)
    writer.handle_batch(records)  # the 23rd's file is written, the 24th's fails
    assert (writer.records_written, writer.records_failed) == (1, 1)
    writer.flush()  # the retry writes the 24th's record, and only that
    assert {
        p.name[-16:-6]: [r["message"] for r in read_jsonl(p)] for p in journal_files(tmp_path)
    } == {
        "2026-11-23": ["late"],
        "2026-11-24": ["early"],
    }
    assert writer.records_written == 2
    assert "No space left on device" in capsys.readouterr().err


def test_failed_records_beyond_retry_limit_are_counted_lost_and_the_newest_kept(
    tmp_path: Path,
    logger: logging.Logger,
    full_disk: FullDisk,
    capsys: pytest.CaptureFixture[str],
) -> None:
    writer = JsonlHandler(directory=tmp_path)
    writer.retry_limit = 3
    logger.addHandler(writer)
    for i in range(8):
        logger.info("r%d", i, extra={"event": "TRAINING_PROGRESS"})
    assert writer.records_failed == 8 and writer.records_lost == 5
    full_disk.full = False
    writer.flush()
    [path] = journal_files(tmp_path)
    assert [line["message"] for line in read_jsonl(path)] == ["r5", "r6", "r7"]
    capsys.readouterr()


def test_a_file_where_the_directory_should_be(
    tmp_path: Path, logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "logs"
    directory.write_text("not a directory")
    writer = JsonlHandler(directory=directory)
    handler = AuditQueueHandler([writer])
    logger.addHandler(handler)
    for i in range(3):
        logger.info("r%d", i, extra={"event": "TRAINING_PROGRESS"})
    handler.flush()
    assert writer.records_failed == 3
    assert capsys.readouterr().err.count("--- Logging error ---") == 1
    directory.unlink()
    logger.info("r3", extra={"event": "TRAINING_PROGRESS"})
    handler.flush()
    assert [line["message"] for line in read_jsonl(journal_files(directory)[0])] == [
        "r0",
        "r1",
        "r2",
        "r3",
    ]


def test_permission_denied_then_granted(
    tmp_path: Path,
    logger: logging.Logger,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Root (as in CI) ignores file modes, so the refusal is injected where files are opened.
    directory = tmp_path / "locked"
    real_open = os.open
    denied = True

    def guarded_open(path: str, flags: int, mode: int = 0o777, **kwargs: object) -> int:
        if denied and str(path).startswith(str(directory)):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, mode, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", guarded_open)
    writer = JsonlHandler(directory=directory)
    handler = AuditQueueHandler([writer])
    logger.addHandler(handler)
    for i in range(4):
        logger.info("r%d", i, extra={"event": "TRAINING_PROGRESS"})
    handler.flush()
    assert writer.records_failed == 4
    err = capsys.readouterr().err
    assert err.count("--- Logging error ---") == 1 and "Permission denied" in err
    denied = False
    handler.flush()
    assert writer.records_lost == 0
    assert len(read_jsonl(journal_files(directory)[0])) == 4


CHILD = textwrap.dedent(
    """
    import logging, os, sys, time
    from audit_logging import AuditQueueHandler, JsonlHandler
    handler = AuditQueueHandler([JsonlHandler(directory="logs")])
    log = logging.getLogger("child"); log.setLevel(logging.INFO); log.addHandler(handler)
    for i in range(int(sys.argv[1])):
        log.info("early %d", i, extra={"event": "TRAINING_PROGRESS"})
    time.sleep(handler.max_latency * 1.5)   # the window the guarantee is about
    print("ready", flush=True)
    for i in range(100_000):
        log.info("late %d", i, extra={"event": "TRAINING_PROGRESS"})
        if sys.argv[2] == "exit" and i == 50:
            os._exit(3)
    sys.stdin.readline()
    """
)


def test_sigkill_keeps_records_older_than_max_latency(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, "5000", "kill"], cwd=tmp_path, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)}, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    lines = read_jsonl(journal_files(tmp_path / "logs")[0])  # every line whole
    early = [line for line in lines if line["message"].startswith("early")]
    assert len(early) == 5000


def test_os_exit_keeps_records_older_than_max_latency(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, "3000", "exit"], cwd=tmp_path, capture_output=True,
        env={**os.environ, "PYTHONPATH": str(REPO)}, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 3
    lines = read_jsonl(journal_files(tmp_path / "logs")[0])
    assert sum(line["message"].startswith("early") for line in lines) == 3000


class Clock(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        record.created = self.now
        return True


def test_a_thousand_days_compressed(tmp_path: Path, logger: logging.Logger) -> None:
    """Day rotation, the hash chain across files and digests, over 1,000 simulated days."""
    clock = Clock()
    logger.addFilter(clock)
    writer = JsonlHandler(directory=tmp_path / "logs", digest_interval=0)
    handler = AuditQueueHandler([writer])
    logger.addHandler(handler)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc).timestamp()
    for day in range(1000):
        for hour in (0, 12, 23):
            clock.now = start + day * 86400 + hour * 3600 + 0.5
            logger.info("day %d hour %d", day, hour, extra={"event": "TRAINING_PROGRESS"})
        if day % 100 == 99:
            handler.flush()
    handler.close()
    files = journal_files(tmp_path / "logs")
    assert len(files) == 1000
    assert files[0].name == "ml-platform-2024-01-01.jsonl"
    assert files[-1].name == "ml-platform-2026-09-26.jsonl"
    report = verify_paths([tmp_path / "logs"])
    assert report.ok, report.problems[:3]
    assert report.lines == 3000
    assert all(len(read_jsonl(f)) == 3 for f in files[::97])
    # remove one day in the middle: the next day's first line names the break
    victim = files[500]
    victim.unlink()
    Path(str(victim) + ".digest.json").unlink()
    problems = verify_paths([tmp_path / "logs"]).problems
    # ... and the folder's manifest names the day that is gone.
    assert [(Path(p.path).name, p.line, p.kind) for p in problems] == [
        (files[501].name, 1, "chain-break"),
        (victim.name, None, "missing"),
    ]


def test_a_symlink_at_the_log_path_is_not_followed(
    tmp_path: Path, logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "logs"
    directory.mkdir()
    target = tmp_path / "elsewhere.txt"
    target.write_text("precious\n")
    today = time.strftime("%Y-%m-%d", time.gmtime())
    (directory / f"ml-platform-{today}.jsonl").symlink_to(target)
    writer = JsonlHandler(directory=directory)
    logger.addHandler(writer)
    logger.info("x", extra={"event": "TRAINING_STARTED"})
    assert target.read_text() == "precious\n"
    assert writer.records_failed == 1
    assert "refusing to follow a symlink" in capsys.readouterr().err


def test_removed_directory_is_recreated_behind_the_queue(
    tmp_path: Path, logger: logging.Logger
) -> None:
    directory = tmp_path / "logs"
    handler = AuditQueueHandler([JsonlHandler(directory=directory)])
    logger.addHandler(handler)
    logger.info("a", extra={"event": "TRAINING_STARTED"})
    handler.flush()
    shutil.rmtree(directory)
    logger.info("b", extra={"event": "TRAINING_PROGRESS"})
    handler.flush()
    assert [line["message"] for line in read_jsonl(journal_files(directory)[0])] == ["b"]


def test_warning_retention_over_a_thousand_days(tmp_path: Path, logger: logging.Logger) -> None:
    """Retention by age and count stays right when 1,000 simulated days go by."""
    from audit_logging import WarningFileHandler

    clock = Clock()
    logger.addFilter(clock)
    directory = tmp_path / "warnings"
    writer = WarningFileHandler(
        directory=directory, max_files_per_type=40, max_age_days=60, clock=lambda: clock.now
    )
    logger.addHandler(writer)
    start = dt.datetime(2024, 1, 1, 6, tzinfo=dt.timezone.utc).timestamp()
    for day in range(1000):
        clock.now = start + day * 86400
        logger.warning("run %d interrupted", day, extra={"warning_type": "training_interrupted"})
        if day % 3 == 0:
            logger.warning("run %d dirty", day, extra={"warning_type": "dirty_git"})
    names = sorted(p.name for p in directory.glob("*.json"))
    interrupted = [n for n in names if "_training_interrupted_" in n]
    dirty = [n for n in names if "_dirty_git_" in n]
    last_day = dt.datetime.fromtimestamp(clock.now, dt.timezone.utc).date()
    # at most 40 per type, none older than 60 days, the newest kept
    assert len(interrupted) == 40 and interrupted[-1].startswith(last_day.isoformat())
    # one every 3 days, kept while at most 60 days old: days 939..999 hold 21
    assert len(dirty) == len([d for d in range(939, 1000) if d % 3 == 0]) == 21
    oldest = dt.date.fromisoformat(min(names)[:10])
    assert (last_day - oldest).days <= 60
    assert writer.records_failed == 0 and writer.retention_errors == 0


def test_every_writer_writes_its_failed_records_on_flush(
    tmp_path: Path, logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    """The retry is the base writer's: CSV and warning files get it too, not only the journal."""
    import csv

    from audit_logging import CsvHandler, WarningFileHandler

    blocked = tmp_path / "out"
    blocked.write_text("a file where the folder should be")
    sheet = CsvHandler(directory=blocked)
    warnings = WarningFileHandler(directory=blocked / "warnings")
    for writer in (sheet, warnings):
        logger.addHandler(writer)
    logger.info("a", extra={"action_type": "pause"})
    logger.warning("w", extra={"warning_type": "dirty_git"})
    assert (sheet.records_failed, warnings.records_failed) == (1, 1)
    blocked.unlink()
    sheet.flush()
    warnings.flush()
    with (blocked / "audit_log.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert [row[1] for row in rows] == ["action_type", "pause"]
    assert len(list((blocked / "warnings").glob("*_dirty_git_*.json"))) == 1
    assert capsys.readouterr().err.count("--- Logging error ---") == 2  # one per writer


def test_replace_atomically_leaves_no_temp_file_behind(tmp_path: Path) -> None:
    from audit_logging._files import replace_atomically

    target = tmp_path / "state.json"
    replace_atomically(str(target), b"one", 0o600)
    replace_atomically(str(target), b"two", 0o600)
    assert target.read_bytes() == b"two" and oct(target.stat().st_mode & 0o777) == "0o600"
    (tmp_path / "taken").mkdir()  # a rename onto a folder fails
    with pytest.raises(OSError):
        replace_atomically(str(tmp_path / "taken"), b"x", 0o600)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "taken"]
