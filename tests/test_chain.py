"""The journal's hash chain and digests: intact logs verify, every kind of tampering is named."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import multiprocessing
from pathlib import Path

import pytest

from audit_logging import JsonlHandler
from audit_logging.chain import Hasher, split_hash
from audit_logging.read.verify import verify_paths

from helpers import journal_files, read_jsonl, read_while_a_writer_is_mid_batch


class Clock(logging.Filter):
    """Stamps records with an injected time."""

    def __init__(self, when: dt.datetime) -> None:
        super().__init__()
        self.when = when

    def filter(self, record: logging.LogRecord) -> bool:
        record.created = self.when.timestamp()
        return True


def write_days(
    directory: Path, logger: logging.Logger, days: int, per_day: int, **options: object
) -> None:
    handler = JsonlHandler(directory=directory, **options)  # type: ignore[arg-type]
    logger.addHandler(handler)
    clock = Clock(dt.datetime(2026, 11, 1, 12, tzinfo=dt.timezone.utc))
    logger.addFilter(clock)
    for day in range(days):
        clock.when = dt.datetime(2026, 11, 1 + day, 12, tzinfo=dt.timezone.utc)
        for i in range(per_day):
            logger.info(
                "d%d-%d", day, i, extra={"event": "TRAINING_PROGRESS", "metrics_snapshot": {"i": i}}
            )
    logger.removeFilter(clock)
    logger.removeHandler(handler)
    handler.close()


def problems_of(directory: Path, key: str | None = None) -> list[tuple[str, int | None, str]]:
    report = verify_paths([directory], Hasher(key))
    return [(Path(p.path).name, p.line, p.kind) for p in report.problems]


def rewrite_lines(path: Path, edit: object) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(edit(lines)))  # type: ignore[operator]


def test_every_line_carries_seq_and_a_chained_hash(tmp_path: Path, logger: logging.Logger) -> None:
    write_days(tmp_path, logger, days=1, per_day=3)
    [path] = journal_files(tmp_path)
    raw = path.read_bytes().splitlines()
    previous = "0" * 64
    for n, line in enumerate(raw, 1):
        parsed = json.loads(line)
        assert parsed["seq"] == n
        without_hash = line[: line.rindex(b',"hash":')] + b"}"
        assert parsed["hash"] == hashlib.sha256(previous.encode() + without_hash).hexdigest()
        previous = parsed["hash"]
    digest = json.loads((tmp_path / (path.name + ".digest.json")).read_text())
    assert digest["last_seq"] == 3 and digest["last_hash"] == previous and digest["lines"] == 3


def test_untouched_logs_of_several_days_verify(tmp_path: Path, logger: logging.Logger) -> None:
    write_days(tmp_path, logger, days=3, per_day=50)
    assert len(journal_files(tmp_path)) == 3
    report = verify_paths([tmp_path])
    assert report.ok, report.problems
    assert (report.files, report.lines) == (3, 150)
    # day 2 chains to the last line of day 1
    day1, day2, _ = journal_files(tmp_path)
    first = day2.read_bytes().splitlines()[0]
    hashed, stored = split_hash(first)  # type: ignore[misc]
    assert hashlib.sha256(read_jsonl(day1)[-1]["hash"].encode() + hashed).hexdigest() == stored


def _chain_writer(directory: str, tag: str) -> None:
    from audit_logging import AuditQueueHandler

    log = logging.getLogger(f"chain-{tag}")
    log.setLevel(logging.INFO)
    log.propagate = False
    handler = AuditQueueHandler([JsonlHandler(directory=directory)], batch_size=50)
    log.addHandler(handler)
    for i in range(1000):
        log.info("%s-%d", tag, i, extra={"event": "TRAINING_PROGRESS"})
    handler.close()


def test_several_processes_keep_one_chain(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_chain_writer, args=(str(tmp_path), f"p{n}")) for n in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    report = verify_paths([tmp_path])
    assert report.ok, report.problems
    assert report.lines == 3000


def test_an_edited_value_is_named_with_file_and_line(
    tmp_path: Path, logger: logging.Logger
) -> None:
    write_days(tmp_path, logger, days=1, per_day=10)
    [path] = journal_files(tmp_path)
    rewrite_lines(
        path, lambda lines: [*lines[:4], lines[4].replace(b'"i":4', b'"i":5'), *lines[5:]]
    )
    assert problems_of(tmp_path) == [(path.name, 5, "edited")]


def test_a_deleted_line_is_named(tmp_path: Path, logger: logging.Logger) -> None:
    write_days(tmp_path, logger, days=1, per_day=10)
    [path] = journal_files(tmp_path)
    rewrite_lines(path, lambda lines: lines[:3] + lines[4:])
    assert problems_of(tmp_path) == [(path.name, 4, "missing")]


def test_swapped_lines_are_named(tmp_path: Path, logger: logging.Logger) -> None:
    write_days(tmp_path, logger, days=1, per_day=10)
    [path] = journal_files(tmp_path)
    rewrite_lines(path, lambda lines: [*lines[:6], lines[7], lines[6], *lines[8:]])
    found = problems_of(tmp_path)
    assert found and all(kind == "reordered" for _, _, kind in found)
    assert {line for _, line, _ in found} <= {7, 8}


def test_a_truncated_tail_is_caught_by_the_digest(tmp_path: Path, logger: logging.Logger) -> None:
    write_days(tmp_path, logger, days=1, per_day=10)
    [path] = journal_files(tmp_path)
    rewrite_lines(path, lambda lines: lines[:7])
    assert problems_of(tmp_path) == [(path.name, None, "truncated")]


def test_a_cut_off_last_line_is_named(tmp_path: Path, logger: logging.Logger) -> None:
    write_days(tmp_path, logger, days=1, per_day=5)
    [path] = journal_files(tmp_path)
    path.write_bytes(path.read_bytes()[:-20])
    assert (path.name, 5, "truncated") in problems_of(tmp_path)


def test_a_removed_file_in_the_middle_breaks_the_next_one(
    tmp_path: Path, logger: logging.Logger
) -> None:
    write_days(tmp_path, logger, days=3, per_day=5)
    _, middle, last = journal_files(tmp_path)
    middle.unlink()
    (tmp_path / (middle.name + ".digest.json")).unlink()
    # The folder's manifest names the file gone; the chain shows where it was.
    assert problems_of(tmp_path) == [(last.name, 1, "chain-break"), (middle.name, None, "missing")]


def test_a_forged_line_without_the_key_is_caught(
    tmp_path: Path, logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDIT_LOG_HMAC_KEY", "s3cret-key")
    write_days(tmp_path, logger, days=1, per_day=5)
    [path] = journal_files(tmp_path)
    assert problems_of(tmp_path, "s3cret-key") == []
    # The forger recomputes the chain with plain SHA-256: consistent without the key.
    lines = path.read_bytes().splitlines()
    previous = json.loads(lines[1])["hash"]
    forged = lines[2].replace(b'"i":2', b'"i":9')
    body = forged[: forged.rindex(b',"hash":')] + b"}"
    new_hash = hashlib.sha256(previous.encode() + body).hexdigest()
    lines[2] = body[:-1] + b',"hash":"' + new_hash.encode() + b'"}'
    path.write_bytes(b"\n".join(lines) + b"\n")
    found = problems_of(tmp_path, "s3cret-key")
    assert (path.name, 3, "edited") in found
    # The digest is MACed too: it cannot be rewritten to match without the key.
    digest = json.loads((tmp_path / (path.name + ".digest.json")).read_text())
    assert digest["algorithm"] == "hmac-sha256" and len(digest["mac"]) == 64


def test_unchained_journals_have_no_hash(tmp_path: Path, logger: logging.Logger) -> None:
    write_days(tmp_path, logger, days=1, per_day=2, chain=False)
    [path] = journal_files(tmp_path)
    assert all("hash" not in line for line in read_jsonl(path))
    assert not (tmp_path / (path.name + ".digest.json")).exists()


def test_a_folder_is_searched_for_journals_arrays_and_chained_csv(
    tmp_path: Path, logger: logging.Logger
) -> None:
    from audit_logging.read import catalogue
    from audit_logging.writers.csv import CsvHandler
    from audit_logging.writers.json_array import JsonArrayHandler

    write_days(tmp_path, logger, days=2, per_day=3, prefix="audit_log")  # digests: *.json
    rec = logging.LogRecord("ui", logging.INFO, __file__, 1, "m", None, None)
    rec.__dict__["action_type"] = "pause"
    for handler in (
        JsonArrayHandler(directory=tmp_path / "runs"),
        CsvHandler(directory=tmp_path / "runs", chain=True),
        CsvHandler(
            directory=tmp_path / "runs", filename="plain.csv"
        ),  # not chained: not a log to verify
    ):
        handler.handle_batch([rec, rec])
        handler.close()
    found = [
        (log.kind, log.path.relative_to(tmp_path).as_posix())
        for log in catalogue([tmp_path]).files
        if log.kind != "manifest"
    ]
    assert found == [
        ("journal", "audit_log-2026-11-01.jsonl"),
        ("digest", "audit_log-2026-11-01.jsonl.digest.json"),
        ("journal", "audit_log-2026-11-02.jsonl"),
        ("digest", "audit_log-2026-11-02.jsonl.digest.json"),
        ("csv", "runs/audit_log.csv"),
        ("array", "runs/audit_log.json"),
        ("csv", "runs/plain.csv"),
    ]
    report = verify_paths([tmp_path])
    assert report.ok, report.problems
    assert (report.files, report.lines) == (4, 10)
    # The unchained CSV has no chain: the manifest's per-batch hashes prove it.
    assert report.unproven == []


def test_verify_waits_for_a_batch_being_appended(tmp_path: Path, logger: logging.Logger) -> None:
    writer = JsonlHandler(tmp_path, digest_interval=0)
    logger.addHandler(writer)
    for i in range(3):
        logger.info("m", extra={"event": "TRAINING_PROGRESS", "metrics_snapshot": {"i": i}})
    [journal] = journal_files(tmp_path)
    whole = journal.read_bytes()
    lines = whole.splitlines(keepends=True)
    # The journal's last line (and the digest that would follow it) not all there yet.
    report = read_while_a_writer_is_mid_batch(
        journal,
        torn=lambda: journal.write_bytes(b"".join(lines[:2]) + lines[2][:40]),
        finish=lambda: journal.write_bytes(whole),
        read=lambda: verify_paths([tmp_path]),
    )
    assert report.ok and report.lines == 3, report.problems
