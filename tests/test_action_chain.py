"""The action logs' hash chain: audit_log.json and a chained audit_log.csv verify when untouched,
and every edit, deletion, duplication or forgery is named by file, position and seq."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import multiprocessing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from audit_logging.chain import Hasher
from audit_logging.cli import main
from audit_logging.read.verify import verify_paths
from audit_logging.writers.csv import CHAINED_HEADER, HEADER, CsvHandler
from audit_logging.writers.json_array import JsonArrayHandler

from helpers import read_while_a_writer_is_mid_batch

GENESIS = b"0" * 64


def record(i: int, created: float | None = None, **extra: Any) -> logging.LogRecord:
    rec = logging.LogRecord("ui", logging.INFO, __file__, 1, "msg", None, None)
    if created is not None:
        rec.created = created
    rec.__dict__.update(action_type="hp_change", details={"i": i}, experiment="exp", **extra)
    return rec


def write_both(directory: Path, n: int, **options: Any) -> tuple[Path, Path]:
    """``n`` events into audit_log.json and a chained audit_log.csv, one batch each."""
    array = JsonArrayHandler(directory=directory, **options)
    sheet = CsvHandler(directory=directory, chain=True, **options)
    for i in range(n):
        array.handle_batch([record(i)])
        sheet.handle_batch([record(i)])
    array.close()
    sheet.close()
    return directory / "audit_log.json", directory / "audit_log.csv"


def problems(directory: Path, key: str | None = None) -> list[tuple[str, int | None, str, str]]:
    report = verify_paths([directory], Hasher(key))
    return sorted((Path(p.path).name, p.line, p.kind, p.message) for p in report.problems)


def edit_lines(path: Path, edit: Callable[[list[bytes]], list[bytes]]) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(edit(lines)))


def array_lines(path: Path) -> list[bytes]:
    """The entry lines of audit_log.json, as on disk (without ``[``, spaces, ``,``)."""
    out = []
    for line in path.read_bytes().splitlines():
        item = line.strip().lstrip(b"[").strip().rstrip(b",")
        if item.startswith(b"{"):
            out.append(item)
    return out


# --------------------------------------------------------------------------- what is written


def test_array_entries_end_with_seq_and_hash_chained_in_write_order(tmp_path: Path) -> None:
    handler = JsonArrayHandler(directory=tmp_path)
    handler.handle_batch([record(0), record(1)])
    handler.handle_batch([record(2, created=1_000_000.0)])  # older: merged below the others
    handler.close()
    lines = array_lines(tmp_path / "audit_log.json")
    entries = [json.loads(line) for line in lines]
    assert [e["details"]["i"] for e in entries] == [1, 0, 2]  # newest first, by timestamp
    assert [e["seq"] for e in entries] == [2, 1, 3]  # write order
    assert list(entries[0]) == [
        *("timestamp", "action_type", "status", "details", "error", "actor", "experiment"),
        *("rank", "local_rank", "world_size", "schema_version", "seq", "hash"),
    ]
    previous = GENESIS
    for line in sorted(lines, key=lambda b: json.loads(b)["seq"]):
        hashed = line[: line.rindex(b',"hash":')] + b"}"
        digest = hashlib.sha256(previous + hashed).hexdigest()
        assert json.loads(line)["hash"] == digest
        previous = digest.encode()


def test_chained_csv_has_two_trailing_columns_hashed_over_the_row_bytes(tmp_path: Path) -> None:
    handler = CsvHandler(directory=tmp_path, chain=True)
    text = 'multi\r\nline, "quoted" ü'
    handler.handle_batch([record(0, error=text), record(1)])
    handler.close()
    data = (tmp_path / "audit_log.csv").read_bytes()
    assert data.startswith(b"timestamp,action_type,status,details,error,seq,hash\r\n")
    with open(tmp_path / "audit_log.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert [len(r) for r in rows] == [7, 7, 7]
    assert rows[1][4] == text and [r[5] for r in rows[1:]] == ["1", "2"]
    # hash(n) = SHA256(hash(n-1) + row bytes up to and including the seq cell)
    previous = GENESIS
    body = data[len(CHAINED_HEADER) :]
    for row in rows[1:]:
        end = body.index(b"," + row[6].encode() + b"\r\n")
        hashed, body = body[:end], body[end + 67 :]
        assert hashlib.sha256(previous + hashed).hexdigest() == row[6]
        previous = row[6].encode()


def test_default_csv_stays_exactly_five_columns(tmp_path: Path) -> None:
    handler = CsvHandler(directory=tmp_path)
    handler.handle_batch([record(0), record(1)])
    handler.close()
    data = (tmp_path / "audit_log.csv").read_bytes()
    assert data.startswith(HEADER.encode()) and HEADER == (
        "timestamp,action_type,status,details,error\r\n"
    )
    with open(tmp_path / "audit_log.csv", encoding="utf-8", newline="") as fh:
        assert [len(r) for r in csv.reader(fh)] == [5, 5, 5]
    # Not a chained log: a folder verify skips it; naming it says why it cannot be checked.
    assert verify_paths([tmp_path]).files == 0
    [problem] = verify_paths([tmp_path / "audit_log.csv"]).problems
    assert problem.kind == "unchained"


def test_a_chained_handler_keeps_an_unchained_files_columns_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = CsvHandler(directory=tmp_path)
    plain.handle_batch([record(0)])
    plain.close()
    chained = CsvHandler(directory=tmp_path, chain=True)
    chained.handle_batch([record(1)])
    chained.handle_batch([record(2)])
    chained.close()
    with open(tmp_path / "audit_log.csv", encoding="utf-8", newline="") as fh:
        assert [len(r) for r in csv.reader(fh)] == [5, 5, 5, 5]
    err = capsys.readouterr().err
    assert err.count("has a header without seq,hash columns") == 1


def test_the_chain_continues_when_the_writer_state_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "audit_log.json"
    write_both(tmp_path, 5)
    (tmp_path / ".audit_log.json.lock").write_bytes(b"")  # missing state: scan the file once
    write_both(tmp_path, 3)
    (tmp_path / ".audit_log.json.lock").unlink()
    write_both(tmp_path, 2)
    seqs = sorted(json.loads(line)["seq"] for line in array_lines(path))
    assert seqs == list(range(1, 11))
    report = verify_paths([tmp_path])
    assert report.ok, report.problems
    assert (report.files, report.lines) == (2, 20)


def test_an_unchained_writer_in_between_is_caught_and_the_chain_goes_on(tmp_path: Path) -> None:
    write_both(tmp_path, 3)
    JsonArrayHandler(directory=tmp_path, chain=False).handle_batch([record(99)])
    write_both(tmp_path, 2)
    entries = [json.loads(line) for line in array_lines(tmp_path / "audit_log.json")]
    assert [e.get("seq") for e in entries] == [5, 4, None, 3, 2, 1]
    assert [(n, line, kind) for n, line, kind, _ in problems(tmp_path)] == [
        ("audit_log.json", 3, "unchained")
    ]


# --------------------------------------------------------------------------- several processes


def _writer(directory: str, tag: int) -> None:
    from audit_logging import AuditQueueHandler

    log = logging.getLogger(f"actions-{tag}")
    log.setLevel(logging.INFO)
    log.propagate = False
    handler = AuditQueueHandler(
        [JsonArrayHandler(Path(directory) / "audit_log.json"),
         CsvHandler(Path(directory) / "audit_log.csv", chain=True)],
        batch_size=16,
    )  # fmt: skip
    log.addHandler(handler)
    for i in range(200):
        log.info("a", extra={"action_type": "tag_add", "details": {"p": tag, "i": i}})
    handler.close()


def test_untouched_logs_of_three_processes_verify(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), n)) for n in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    entries = [json.loads(line) for line in array_lines(tmp_path / "audit_log.json")]
    assert sorted(e["seq"] for e in entries) == list(range(1, 601))
    stamps = [e["timestamp"] for e in entries]
    assert stamps == sorted(stamps, reverse=True)
    with open(tmp_path / "audit_log.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    assert [int(r[5]) for r in rows] == list(range(1, 601))
    report = verify_paths([tmp_path])
    assert report.ok, report.problems
    assert (report.files, report.lines) == (2, 1200)


# --------------------------------------------------------------------------- tampering


def test_an_edited_details_value_is_named_by_position_and_seq(tmp_path: Path) -> None:
    json_path, csv_path = write_both(tmp_path, 10)
    # Entry 4 of the array (newest first) is seq 7; row 4 of the CSV is line 5.
    edit_lines(json_path, lambda ls: [l.replace(b'"i":6', b'"i":600') for l in ls])  # noqa: E741
    edit_lines(csv_path, lambda ls: [l.replace(b'""i"":3', b'""i"":300') for l in ls])  # noqa: E741
    assert problems(tmp_path) == [
        ("audit_log.csv", 5, "edited", "row 5 (seq 4) does not match its hash"),
        ("audit_log.json", 4, "edited", "entry 4 (seq 7) does not match its hash"),
    ]


def test_a_deleted_entry_is_named(tmp_path: Path) -> None:
    json_path, csv_path = write_both(tmp_path, 10)
    edit_lines(json_path, lambda ls: ls[:5] + ls[6:])  # entry 6 = seq 5
    edit_lines(csv_path, lambda ls: ls[:3] + ls[4:])  # line 4 = seq 3
    assert problems(tmp_path) == [
        ("audit_log.csv", 4, "missing", "row 4 (seq 4): the row with seq 3 is gone"),
        ("audit_log.json", 5, "missing", "entry 5 (seq 6): the entry with seq 5 is gone"),
    ]


def test_removed_newest_entries_are_caught_by_the_writer_state(tmp_path: Path) -> None:
    json_path, _ = write_both(tmp_path, 5)
    data = json_path.read_bytes()
    cut = data.index(b"{")
    # Drop the newest entry in place (same inode), as an editor saving over it would not.
    with open(json_path, "r+b") as fh:
        fh.seek(cut)
        fh.write(b" " * (data.index(b"\n", cut) + 1 - cut))
    assert [json.loads(line)["seq"] for line in array_lines(json_path)] == [4, 3, 2, 1]
    assert problems(tmp_path) == [
        (
            "audit_log.json",
            None,
            "truncated",
            "the writer recorded seq 5 but the array ends at seq 4",
        )
    ]


def test_a_duplicated_entry_is_named(tmp_path: Path) -> None:
    json_path, csv_path = write_both(tmp_path, 10)
    edit_lines(json_path, lambda ls: [*ls[:3], ls[7], *ls[3:]])  # seq 3 again at position 4
    edit_lines(csv_path, lambda ls: [*ls, ls[2]])  # seq 2 again at the end (line 12)
    assert problems(tmp_path) == [
        ("audit_log.csv", 12, "duplicated", "row 12 (seq 2): its seq appears again"),
        ("audit_log.json", 4, "duplicated", "entry 4 (seq 3): its seq appears again"),
    ]


def forge(hashed: bytes, previous: bytes) -> bytes:
    """What a forger without the key computes: plain SHA-256, a consistent-looking link."""
    return hashlib.sha256(previous + hashed).hexdigest().encode()


def test_a_forged_entry_without_the_hmac_key_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDIT_LOG_HMAC_KEY", "s3cret-key")
    json_path, csv_path = write_both(tmp_path, 5)
    assert problems(tmp_path, "s3cret-key") == []
    assert problems(tmp_path, None)  # a plain SHA-256 chain it is not

    # Array: entry 3 (seq 3) gets a new value and a recomputed hash.
    lines = json_path.read_bytes().splitlines(keepends=True)
    at = next(n for n, line in enumerate(lines) if b'"seq":3,' in line)
    previous = next(
        json.loads(item)["hash"] for item in array_lines(json_path) if b'"seq":2,' in item
    )
    line = lines[at].replace(b'"i":2', b'"i":9')
    start, end = line.index(b"{"), line.rindex(b',"hash":')
    new = forge(line[start:end] + b"}", previous.encode())
    lines[at] = line[:end] + b',"hash":"' + new + b'"}' + line[end + 75 :]
    json_path.write_bytes(b"".join(lines))

    # CSV: row of seq 3 (line 4) likewise.
    rows = csv_path.read_bytes().splitlines(keepends=True)
    previous_cell = rows[2][-66:-2]
    row = rows[3].replace(b'""i"":2', b'""i"":9')
    hashed = row[:-67]
    rows[3] = hashed + b"," + forge(hashed, previous_cell) + b"\r\n"
    csv_path.write_bytes(b"".join(rows))

    found = [(name, line, kind) for name, line, kind, _ in problems(tmp_path, "s3cret-key")]
    assert ("audit_log.json", 3, "edited") in found
    assert ("audit_log.csv", 4, "edited") in found


def test_the_command_names_file_and_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    json_path, csv_path = write_both(tmp_path, 4)
    assert main(["verify", str(tmp_path)]) == 0
    assert "2 file(s), 8 line(s): intact" in capsys.readouterr().err
    edit_lines(json_path, lambda ls: [l.replace(b'"i":1', b'"i":7') for l in ls])  # noqa: E741
    assert main(["verify", str(json_path)]) == 1  # a file named explicitly, by its suffix
    out = capsys.readouterr().out
    assert out.strip() == f"{json_path}:3: edited: entry 3 (seq 2) does not match its hash"
    assert main(["verify", str(csv_path)]) == 0


def test_several_deleted_entries_are_named_as_one_gap(tmp_path: Path) -> None:
    _, csv_path = write_both(tmp_path, 10)
    edit_lines(csv_path, lambda ls: ls[:3] + ls[6:])  # seq 3, 4 and 5
    assert problems(tmp_path) == [
        ("audit_log.csv", 4, "missing", "row 4 (seq 6): the rows with seq 3 to 5 are gone")
    ]


def test_verify_waits_for_a_csv_batch_being_appended(tmp_path: Path) -> None:
    path = tmp_path / "audit_log.csv"
    handler = CsvHandler(directory=tmp_path, chain=True)
    handler.handle_batch([record(i) for i in range(3)])
    handler.close()
    whole = path.read_bytes()
    # The last row not all there yet.
    report = read_while_a_writer_is_mid_batch(
        path,
        torn=lambda: path.write_bytes(whole[: len(whole) - 30]),
        finish=lambda: path.write_bytes(whole),
        read=lambda: verify_paths([tmp_path]),
    )
    assert report.ok and report.lines == 3, report.problems
