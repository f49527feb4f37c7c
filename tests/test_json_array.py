"""JsonArrayHandler: audit_log.json stays a valid JSON array, newest first, at any instant."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from audit_logging.read.verify import verify_paths
from audit_logging.writers.json_array import PAGE, JsonArrayHandler, read_array_bytes

from helpers import REPO


def strict_parse(raw: bytes) -> list[dict[str, Any]]:
    def refuse(token: str) -> Any:
        raise ValueError(f"non-strict JSON token {token}")

    data = json.loads(raw.decode("utf-8"), parse_constant=refuse)
    assert isinstance(data, list)
    return data


def strict_load(path: Path) -> list[dict[str, Any]]:
    """``json.load`` as any program would (no lock): for files no writer is busy with."""
    return strict_parse(path.read_bytes())


def assert_newest_first(entries: list[dict[str, Any]]) -> None:
    stamps = [e["timestamp"] for e in entries]
    assert stamps == sorted(stamps, reverse=True)


def record(
    action: str = "hp_change", created: float | None = None, **extra: Any
) -> logging.LogRecord:
    rec = logging.LogRecord("t", logging.INFO, __file__, 1, "msg", None, None)
    if created is not None:
        rec.created = created
    rec.__dict__.update(action_type=action, **extra)
    return rec


@pytest.fixture
def handler(tmp_path: Path) -> Any:
    h = JsonArrayHandler(directory=tmp_path)
    yield h
    h.close()


def test_entries_have_the_five_fields_then_seq_and_hash_newest_first(
    tmp_path: Path, logger: logging.Logger, handler: JsonArrayHandler
) -> None:
    logger.addHandler(handler)
    logger.info("a", extra={"action_type": "hp_change", "details": {"lr": 0.001}})
    logger.info("b", extra={"action_type": "tag_add", "status": "success"})
    logger.error(
        "c", extra={"action_type": "query_execute", "status": "failed", "error": "bad syntax"}
    )
    logger.info("not an action")  # no action_type: not written
    entries = strict_load(tmp_path / "audit_log.json")
    assert [e["action_type"] for e in entries] == ["query_execute", "tag_add", "hp_change"]
    assert entries[2] == {
        "timestamp": entries[2]["timestamp"],
        "action_type": "hp_change",
        "status": "success",
        "details": {"lr": 0.001},
        "error": None,
        "actor": None,
        "rank": None,
        "local_rank": None,
        "world_size": None,
        "schema_version": 1,
        "seq": 1,
        "hash": entries[2]["hash"],
    }
    # The five fields first, then who and where, then the chain members (seq in write order).
    fields = [
        *("timestamp", "action_type", "status", "details", "error", "actor"),
        *("rank", "local_rank", "world_size", "schema_version", "seq", "hash"),
    ]
    assert list(entries[0]) == list(entries[2]) == fields
    assert [e["seq"] for e in entries] == [3, 2, 1]
    assert entries[1]["details"] == {}
    assert entries[0]["status"] == "failed" and entries[0]["error"] == "bad syntax"
    assert entries[0]["timestamp"].endswith("Z") and len(entries[0]["timestamp"]) == 27
    assert_newest_first(entries)
    assert all("experiment" not in e for e in entries)


def test_status_details_error_and_experiment_rules(
    tmp_path: Path, logger: logging.Logger, handler: JsonArrayHandler
) -> None:
    logger.addHandler(handler)
    logger.info("x", extra={"action_type": "pause", "details": [1, 2]})
    logger.error("y", extra={"action_type": "resume"})  # no status: derived from the level
    try:
        raise FileNotFoundError("ckpt_001")
    except FileNotFoundError:
        logger.exception("z", extra={"action_type": "checkpoint_restore"})
    logger.info("w", extra={"action_type": "note_write", "status": "pending", "experiment": "exp1"})
    e = strict_load(tmp_path / "audit_log.json")
    assert e[3]["details"] == {"value": [1, 2]}
    assert e[2]["status"] == "failed" and e[2]["error"] is None
    assert e[1]["status"] == "failed" and e[1]["error"] == "FileNotFoundError: ckpt_001"
    assert e[0]["status"] == "pending"  # kept as given, never dropped
    assert e[0]["experiment"] == "exp1"


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque thing>"


def test_details_json_cannot_hold_are_converted_not_dropped(
    tmp_path: Path, logger: logging.Logger, handler: JsonArrayHandler
) -> None:
    logger.addHandler(handler)
    details = {
        "when": dt.datetime(2026, 5, 27, 14, 30, tzinfo=dt.timezone.utc),
        "arr": np.arange(3),
        "f": np.float32(0.5),
        "nan": float("nan"),
        (1, 2): "tuple key",
        "obj": Opaque(),
        "set": {3, 1},
        "bytes": b"\xff\x00",
    }
    logger.info("x", extra={"action_type": "hp_change", "details": details})
    logger.info("y", extra={"action_type": "hp_change", "details": {"ok": 1}})
    [second, first] = strict_load(tmp_path / "audit_log.json")
    got = first["details"]
    assert got["when"] == "2026-05-27T14:30:00Z"
    assert got["arr"] == [0, 1, 2] and got["f"] == 0.5 and got["nan"] is None
    assert got["(1, 2)"] == "tuple key"
    assert got["obj"] == "<Opaque thing>" and got["set"] == [1, 3]
    assert got["bytes"].startswith("base64:")
    assert second["details"] == {"ok": 1}


def test_unicode_and_special_characters_round_trip(
    tmp_path: Path, logger: logging.Logger, handler: JsonArrayHandler
) -> None:
    logger.addHandler(handler)
    text = 'ümlaut 日本語 emoji 🚀 "quotes" \\ back\nnew line\ttab \u2028 sep, comma ]}['
    logger.info("x", extra={"action_type": "note_write", "details": {text: text}, "error": text})
    [entry] = strict_load(tmp_path / "audit_log.json")
    assert entry["details"] == {text: text} and entry["error"] == text


def test_cost_does_not_grow_with_the_file(tmp_path: Path, handler: JsonArrayHandler) -> None:
    """Events go into the reserve in place; the file is rewritten only when it doubles."""
    path = tmp_path / "audit_log.json"
    inodes = set()
    sizes = []
    for i in range(3000):
        handler.handle_batch([record(details={"i": i})])
        st = path.stat()
        inodes.add(st.st_ino)
        sizes.append(st.st_size)
    entries = strict_load(path)
    assert [e["details"]["i"] for e in entries] == list(range(2999, -1, -1))
    body = sum(len(json.dumps(e, separators=(",", ":"))) + 2 for e in entries)
    # Rewrites (new inodes) happen log2(n) times, not once per event.
    assert len(inodes) <= 10
    assert sizes[-1] <= 2 * body + 4 * PAGE + 2 * 3000  # reserve ~ body; page padding small


def test_batches_from_the_queue_and_later_older_records_stay_sorted(
    tmp_path: Path, handler: JsonArrayHandler
) -> None:
    now = time.time()
    handler.handle_batch([record(created=now + i / 1000, details={"i": i}) for i in range(200)])
    # Another process's record, older than the front, arrives later: merged in place.
    handler.handle_batch([record("late", created=now + 0.1985)])
    # And one older than a whole page of entries: merged by a rewrite.
    handler.handle_batch([record("very late", created=now + 0.0005)])
    entries = strict_load(tmp_path / "audit_log.json")
    assert len(entries) == 202
    assert_newest_first(entries)
    names = [e["action_type"] for e in entries]
    assert names.index("late") == 1 and names.index("very late") == 200


def test_large_entries_are_written_whole(tmp_path: Path, handler: JsonArrayHandler) -> None:
    big = {"sample_ids": [f"s{i}" for i in range(5000)]}
    handler.handle_batch([record(details={"i": 0})])
    handler.handle_batch([record(details=big)])
    handler.handle_batch([record(details={"i": 2})])
    entries = strict_load(tmp_path / "audit_log.json")
    assert [len(e["details"]) for e in entries] == [1, 1, 1]
    assert entries[1]["details"] == big


def test_damaged_file_is_set_aside_reported_and_a_new_one_begun(
    tmp_path: Path, handler: JsonArrayHandler, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "audit_log.json"
    damaged = b'[{"timestamp": "2026-01-01T00:00:00.000000Z", "action_type": "pa'
    path.write_bytes(damaged)
    handler.handle_batch([record("resume")])
    [aside] = tmp_path.glob("audit_log.json.corrupt-*")
    assert aside.read_bytes() == damaged  # kept byte for byte
    assert "moved to" in capsys.readouterr().err
    assert [e["action_type"] for e in strict_load(path)] == ["resume"]


def test_reference_layout_is_converted_keeping_every_entry(
    tmp_path: Path, handler: JsonArrayHandler
) -> None:
    path = tmp_path / "audit_log.json"
    old = [
        {
            "timestamp": "2026-05-27T14:30:05.456789Z",
            "action_type": "tag_add",
            "status": "success",
            "details": {"tag_name": "defect"},
            "error": None,
        },
        {
            "timestamp": "2026-05-27T14:30:00.123456Z",
            "action_type": "hp_change",
            "status": "success",
            "details": {},
            "error": None,
        },
    ]
    path.write_text(json.dumps(old, indent=2))
    handler.handle_batch([record("pause")])
    entries = strict_load(path)
    assert entries[1:] == old and entries[0]["action_type"] == "pause"


def test_removed_file_is_started_again(tmp_path: Path, handler: JsonArrayHandler) -> None:
    path = tmp_path / "audit_log.json"
    handler.handle_batch([record("a")])
    path.unlink()
    handler.handle_batch([record("b")])
    assert [e["action_type"] for e in strict_load(path)] == ["b"]


def test_a_removed_lock_file_is_made_again_and_used_by_every_writer(
    tmp_path: Path, handler: JsonArrayHandler
) -> None:
    lock = tmp_path / ".audit_log.json.lock"
    handler.handle_batch([record("a")])
    lock.unlink()
    handler.handle_batch([record("b")])
    assert lock.exists()  # others lock the file at the path, so must we
    other = JsonArrayHandler(directory=tmp_path)
    other.handle_batch([record("c")])
    other.close()
    assert [e["action_type"] for e in strict_load(tmp_path / "audit_log.json")] == ["c", "b", "a"]


def test_two_handlers_on_one_file_keep_everything(tmp_path: Path) -> None:
    a = JsonArrayHandler(directory=tmp_path)
    b = JsonArrayHandler(directory=tmp_path)
    try:
        for i in range(300):
            (a if i % 3 else b).handle_batch([record(details={"i": i})])
    finally:
        a.close()
        b.close()
    entries = strict_load(tmp_path / "audit_log.json")
    assert [e["details"]["i"] for e in entries] == list(range(299, -1, -1))


def test_files_are_private_by_default(tmp_path: Path, handler: JsonArrayHandler) -> None:
    handler.handle_batch([record()])
    assert (tmp_path / "audit_log.json").stat().st_mode & 0o777 == 0o600


# --------------------------------------------------------------------------- kill -9

BURST = textwrap.dedent(
    """
    import logging, os, sys
    from audit_logging.writers.json_array import JsonArrayHandler
    h = JsonArrayHandler(directory=os.path.dirname(sys.argv[1]), filename=os.path.basename(sys.argv[1]))
    def rec(i):
        r = logging.LogRecord("w", 20, "", 0, "m", None, None)
        r.action_type = "hp_change"
        r.details = {"i": i, "pad": "x" * (i * 37 % 120)}
        return r
    i = 0
    while i < int(sys.argv[2]):
        n = 1 + i % 50
        h.handle_batch([rec(i + k) for k in range(n)])
        i += n
        if i > 200 and i - n <= 200:
            print("ready", flush=True)
    print("done", flush=True)
    sys.stdin.read()
    """
)


def _start_burst(path: Path, events: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", BURST, str(path), str(events)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    return proc


def _kill_mid_burst(tmp_path: Path, tries: int) -> None:
    path = tmp_path / "audit_log.json"
    rng = random.Random(1234)
    previous = 0
    mid_burst = 0
    for _ in range(tries):
        proc = _start_burst(path, 4000)
        # A random instant of the burst (this sleep picks the kill time; it syncs nothing).
        time.sleep(rng.uniform(0, 0.03))
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
        assert proc.stdout is not None and proc.stdin is not None
        mid_burst += proc.stdout.read() == b""
        proc.stdout.close()
        proc.stdin.close()
        entries = strict_load(path)  # parses right after the kill
        assert len(entries) > previous
        assert_newest_first(entries)
        previous = len(entries)
    assert not list(tmp_path.glob("*.corrupt-*"))
    assert mid_burst >= tries // 2  # the kill lands in the burst, not after it


def test_json_parses_after_kill_9_mid_burst_20_times(tmp_path: Path) -> None:
    _kill_mid_burst(tmp_path, 20)


@pytest.mark.slow
def test_json_parses_after_kill_9_mid_burst_100_times(tmp_path: Path) -> None:
    _kill_mid_burst(tmp_path, 100)


def test_verify_finds_nothing_wrong_while_a_process_writes(tmp_path: Path) -> None:
    # verify reads the file and the writers' record of its last seq under one
    # shared lock: read apart, a batch written in between looks like truncation.
    path = tmp_path / "audit_log.json"
    proc = _start_burst(path, 6000)
    reports = []
    try:
        assert proc.stdout is not None
        while True:
            reports.append(verify_paths([path]))
            if len(strict_parse(read_array_bytes(path))) >= 6000:
                break
    finally:
        proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stdin):
            if stream is not None:
                stream.close()
    assert len(reports) > 1
    assert [p for r in reports for p in r.problems] == []


def test_library_readers_see_a_whole_array_while_a_process_writes(tmp_path: Path) -> None:
    # read_array_bytes() takes the writers' lock shared: a plain read racing a
    # write in the same page can see it half copied (and did, in CI).
    path = tmp_path / "audit_log.json"
    total = 0
    while total < 6000:  # the writer's own loop
        total += 1 + total % 50
    proc = _start_burst(path, 6000)
    counts = []
    try:
        assert proc.stdout is not None
        while True:
            counts.append(len(strict_parse(read_array_bytes(path))))
            if counts[-1] >= total:
                break
    finally:
        proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stdin):
            if stream is not None:
                stream.close()
    assert counts == sorted(counts) and len(counts) > 1 and counts[-1] == total


def test_every_in_place_write_lies_inside_one_page() -> None:
    # A kill can cut a write between two pages: a batch written over two
    # pages in one pwrite could keep its newer entries and lose older ones.
    from audit_logging.array_layout import Entry, pack

    def entries(sizes: list[int]) -> list[Entry]:
        return [Entry(f"{i:06d}", b"{" + b"x" * (n - 4) + b"}") for i, n in enumerate(sizes)]

    # The oldest entry (with ",\n") starts exactly on a page boundary: the next
    # one belongs to the page below, in a write of its own.
    aligned = pack(entries([50, 98])[::-1], 2 * PAGE + 50, last_comma=True)
    assert aligned is not None and len(aligned) == 2
    rng = random.Random(7)
    for _ in range(2000):
        batch = entries([rng.randrange(20, 600) for _ in range(rng.randrange(1, 40))])
        end = rng.randrange(8 * PAGE, 16 * PAGE)
        writes = pack(batch[::-1], end, last_comma=True)
        assert writes is not None
        assert all(off // PAGE == (off + len(data) - 1) // PAGE for off, data in writes)
        image = bytearray(b" " * end)
        for off, data in writes:
            image[off : off + len(data)] = data
        # Whole entries, newest first, ending right in front of the old front.
        assert bytes(image).split() == [e.body + b"," for e in batch[::-1]]


def test_every_writer_takes_its_folder_as_directory(tmp_path: Path) -> None:
    import warnings

    from audit_logging import CsvHandler, JsonlHandler, WarningFileHandler

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the documented style warns about nothing
        writers = [
            JsonArrayHandler(directory=tmp_path),
            CsvHandler(directory=tmp_path, filename="actions.csv"),
            JsonlHandler(directory=tmp_path),
            WarningFileHandler(directory=tmp_path / "warnings"),
        ]
    assert writers[0].path == str(tmp_path / "audit_log.json")
    assert writers[1].path == str(tmp_path / "actions.csv")
    record = logging.LogRecord("t", logging.INFO, "", 0, "m", None, None)
    record.__dict__.update(action_type="pause")
    for writer in writers[:2]:
        writer.handle_batch([record])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".audit-manifest.jsonl",
        ".audit_log.json.lock",
        "actions.csv",
        "audit_log.json",
    ]
    with pytest.warns(DeprecationWarning, match=r"JsonArrayHandler\(path=...\) is deprecated"):
        old = JsonArrayHandler(path=tmp_path / "old.json")
    assert old.path == str(tmp_path / "old.json")  # the old keyword still works
    with pytest.raises(ValueError, match="filename must be a name"):
        CsvHandler(directory=tmp_path, filename="sub/x.csv")
