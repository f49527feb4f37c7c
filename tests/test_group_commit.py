"""AuditLogger from many threads: writes shared, each event in the file when its call returns."""

from __future__ import annotations

import csv
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from audit_logging._group_commit import GroupCommit
from audit_logging.facade import AuditLogger

THREADS = 8
PER_THREAD = 40


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_eight_threads_each_event_is_in_both_files_when_log_event_returns(
    tmp_path: Path,
) -> None:
    audit = AuditLogger(tmp_path, format="json,csv")
    late: list[str] = []
    start = threading.Barrier(THREADS)

    def work(t: int) -> None:
        start.wait()
        for i in range(PER_THREAD):
            tag = f"t{t}-e{i}"
            audit.log_event("hp_change", details={"tag": tag})
            # Read without any lock of ours: the write is done, so the bytes are there.
            if tag not in audit.csv_path.read_text(encoding="utf-8"):
                late.append(f"csv:{tag}")
            if tag not in audit.json_path.read_text(encoding="utf-8"):
                late.append(f"json:{tag}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    audit.close()

    assert late == []
    expected = {f"t{t}-e{i}" for t in range(THREADS) for i in range(PER_THREAD)}
    entries = json.loads(audit.json_path.read_text(encoding="utf-8"))
    assert sorted(e["details"]["tag"] for e in entries) == sorted(expected)
    rows = _rows(audit.csv_path)
    assert sorted(json.loads(r["details"])["tag"] for r in rows) == sorted(expected)


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Threads switch every 10 us, as on a busy server with many handler threads."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


@pytest.mark.usefixtures("busy_switching")
def test_csv_rows_of_one_process_are_in_timestamp_order(tmp_path: Path) -> None:
    # A record stamped before the write lock is taken would land after a later one.
    audit = AuditLogger(tmp_path, format="csv")
    start = threading.Barrier(THREADS)

    def work() -> None:
        start.wait()
        for i in range(PER_THREAD):
            audit.log_event("tag_add", details={"i": i})

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    audit.close()

    stamps = [row["timestamp"] for row in _rows(audit.csv_path)]
    assert len(stamps) == THREADS * PER_THREAD
    assert stamps == sorted(stamps)


def test_callers_arriving_during_a_write_share_the_next_one() -> None:
    batches: list[int] = []
    entered = threading.Event()
    release = threading.Event()

    def write(batch: list[object]) -> None:
        batches.append(len(batch))
        if len(batches) == 1:
            entered.set()
            release.wait(10)

    commits = GroupCommit(write)  # type: ignore[arg-type]

    queued = threading.Semaphore(0)

    def record() -> object:
        queued.release()  # made under the lock that also queues it
        return object()

    first = threading.Thread(target=commits.submit, args=(record,))
    first.start()
    assert entered.wait(10)
    assert queued.acquire(timeout=10)  # the first caller's own record
    # Five callers queue while the first write is held; they must be written together.
    others = [threading.Thread(target=commits.submit, args=(record,)) for _ in range(5)]
    for thread in others:
        thread.start()
    for _ in others:
        assert queued.acquire(timeout=10)
    release.set()
    for thread in [first, *others]:
        thread.join(10)
    assert batches == [1, 5]
