"""One read model: every command gives the same, correct answer from the same files."""

from __future__ import annotations

import csv
import datetime as dt
import fcntl
import io
import json
import logging
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path
from typing import Any

import pytest

from audit_logging import AuditLogger, JsonlHandler, __version__
from audit_logging.cli import main
from audit_logging.formats import kind_of
from audit_logging.read import catalogue, iter_records, summarize

from helpers import REPO


class Clock(logging.Filter):
    def __init__(self, when: dt.datetime) -> None:
        super().__init__()
        self.when = when

    def filter(self, record: logging.LogRecord) -> bool:
        record.created = self.when.timestamp()
        return True


def at(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, 20, hour, minute, tzinfo=dt.timezone.utc)


def journal(folder: Path, logger: logging.Logger, times: list[dt.datetime], event: str) -> None:
    clock = Clock(times[0])
    logger.addFilter(clock)
    handler = JsonlHandler(directory=folder)
    logger.addHandler(handler)
    for n, when in enumerate(times):
        clock.when = when
        logger.info("m", extra={"event": event, "metrics_snapshot": {"n": n}})
    logger.removeHandler(handler)
    logger.removeFilter(clock)
    handler.close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def two_runs(tmp_path: Path, logger: logging.Logger) -> Path:
    """Run folder "b-older" holds the older run; "a-newer" the newer; plus actions between."""
    root = tmp_path / "runs"
    journal(root / "b-older", logger, [at(9, m) for m in range(5)], "TRAINING_PROGRESS")
    journal(root / "a-newer", logger, [at(11, m) for m in range(5)], "MODEL_EVALUATED")
    with (root / "audit_log.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(["timestamp", "action_type", "status", "details", "error"])
        for minute in (1, 30):
            stamp = f"2026-11-20T10:{minute:02d}:00.000000Z"
            writer.writerow([stamp, "tag_add", "success", '{"k": 1}', ""])
        writer.writerow(["2026-11-20T11:02:30.000000Z", "pause", "failed", "{}", "disk full"])
    return root


def test_one_rule_names_every_kind(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    (tmp_path / "audit_log.csv").write_text("timestamp,action_type,status,details,error\r\n")
    names = {
        "ml-platform-2026-11-20.jsonl": "journal",
        "ml-platform-2026-11-20-s1.jsonl": "journal",
        "ml-platform-2026-11-20.jsonl.digest.json": "digest",
        "ml-platform-2026-11-20.jsonl.seal-3.note": "seal",
        "rejected-2026-11-20.jsonl": "rejects",
        ".audit-manifest.jsonl": "manifest",
        "audit_log.json": "array",
        "2026-11-20_08-00-00_dirty_git_0123abcd.json": "warning",
        "model-config.json": None,
        ".audit_log.json.lock": None,
        "audit_log.json.corrupt-2026": None,
        "data.csv": None,
        "audit_log.csv": "csv",
    }
    assert {name: kind_of(tmp_path / name) for name in names} == names
    assert kind_of(tmp_path / "x-2026-11-20.jsonl.seals" / "0001.note") == "seal"


def test_limit_gives_the_newest_across_kinds_and_runs(
    two_runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "query", str(two_runs), "--limit", "4")
    stamps = [json.loads(line)["timestamp"] for line in out.splitlines()]
    assert code == 0
    assert stamps == [
        "2026-11-20T11:04:00.000000Z",
        "2026-11-20T11:03:00.000000Z",
        "2026-11-20T11:02:30.000000Z",  # the action, between two journal lines
        "2026-11-20T11:02:00.000000Z",
    ]
    code, out, _ = run(capsys, "query", str(two_runs), "--limit", "0")
    assert (code, out) == (0, "")
    with pytest.raises(SystemExit) as exit_:
        main(["query", str(two_runs), "--limit", "-1"])
    assert exit_.value.code == 2
    assert "must be 0 or more" in capsys.readouterr().err


def test_oldest_first_merges_every_record(two_runs: Path) -> None:
    records = list(iter_records(catalogue([two_runs]), newest_first=False))
    stamps = [r.timestamp for r in records]
    assert stamps == sorted(stamps) and len(records) == 13
    assert [r.kind for r in records][5:7] == ["action", "action"]


def test_csv_of_mixed_kinds_has_one_union_header(
    two_runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "query", str(two_runs), "--format", "csv", "--limit", "4")
    rows = list(csv.DictReader(io.StringIO(out)))
    header = out.splitlines()[0].split(",")
    assert code == 0 and header[:3] == ["kind", "timestamp", "event"]
    for name in ("action_type", "status", "details", "error", "metrics_snapshot"):
        assert name in header
    action = next(r for r in rows if r["kind"] == "action")
    assert (action["action_type"], action["status"], action["error"]) == (
        "pause",
        "failed",
        "disk full",
    )
    line = next(r for r in rows if r["kind"] == "journal")
    assert line["event"] == "MODEL_EVALUATED" and line["action_type"] == ""


def test_export_reads_an_array_named_explicitly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audit = AuditLogger(tmp_path, format="json")
    for n in range(3):
        audit.log_event("tag_add", details={"n": n})
    audit.close()
    code, out, err = run(capsys, "export", str(tmp_path / "audit_log.json"), "--to", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert (code, err) == (0, "")
    assert [json.loads(r["details"])["n"] for r in rows] == [0, 1, 2]  # oldest first
    assert {r["action_type"] for r in rows} == {"tag_add"}


def test_one_action_in_both_files_is_one_action(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDIT_LOG_FORMAT", "json,csv")
    audit = AuditLogger(tmp_path)
    for n in range(2000):
        audit.log_event("step" if n % 2 else "tag_add", details={"n": n})
    audit.close()
    assert summarize(catalogue([tmp_path])).actions == 2000
    code, out, _ = run(capsys, "summary", str(tmp_path), "--json")
    assert code == 0 and json.loads(out)["actions"] == 2000
    code, out, _ = run(capsys, "query", str(tmp_path), "--action", "tag_add")
    assert code == 0 and len(out.splitlines()) == 1000
    code, out, _ = run(capsys, "export", str(tmp_path), "--to", "jsonl")
    assert code == 0 and len(out.splitlines()) == 2000


@pytest.mark.parametrize(
    "argv",
    [["summary"], ["query"], ["export", "--to", "csv"], ["tail"], ["warnings"], ["verify"]],
)
def test_empty_folder_and_missing_path_alike_in_every_command(
    tmp_path: Path, argv: list[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()

    def command(path: Path) -> subprocess.CompletedProcess[str]:
        full = [sys.executable, "-m", "audit_logging", argv[0], str(path), *argv[1:]]
        return subprocess.run(full, capture_output=True, text=True, cwd=REPO, check=False)

    missing = command(tmp_path / "nope")
    assert missing.returncode == 2 and missing.stdout == ""
    assert len(missing.stderr.splitlines()) == 1 and str(tmp_path / "nope") in missing.stderr
    done = command(empty)
    assert done.stdout == ""
    assert "no audit logs found" in done.stderr and len(done.stderr.splitlines()) == 1
    assert done.returncode == (2 if argv[0] == "verify" else 0)


def test_summary_counts_rejected_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        {"timestamp": "2026-11-20T09:00:00.000000Z", "event": "X", "reason": "too large",
         "writer": "JsonlHandler"},
        {"timestamp": "2026-11-20T09:00:01.000000Z", "action_type": "a", "reason": "too large",
         "writer": "CsvHandler"},
        {"timestamp": "2026-11-20T09:00:02.000000Z", "event": "X", "reason": "disk full",
         "writer": "JsonlHandler"},
    ]  # fmt: skip
    (tmp_path / "rejected-2026-11-20.jsonl").write_text(
        "".join(json.dumps(line) + "\n" for line in lines)
    )
    code, out, _ = run(capsys, "summary", str(tmp_path), "--json")
    data = json.loads(out)
    assert code == 0 and data["rejected"] == 3 and data["journal_lines"] == 0
    assert data["by_rejected_reason"] == {"too large": 2, "disk full": 1}
    code, out, _ = run(capsys, "summary", str(tmp_path))
    assert "rejected       3" in out
    # Not chained: verify names it as unproven rather than passing over it.
    code, out, _ = run(capsys, "verify", str(tmp_path))
    assert code == 0 and out.startswith(f"{tmp_path / 'rejected-2026-11-20.jsonl'}: unproven: ")


def test_summary_json_shape(two_runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "summary", str(two_runs), "--json")
    data = json.loads(out)
    assert code == 0
    assert list(data) == [
        "files", "journal_lines", "actions", "warnings", "rejected", "malformed_lines",
        "first", "last", "sessions", "hosts", "by_event", "by_action_type", "by_status",
        "by_warning_type", "by_severity", "by_rejected_reason", "runs",
    ]  # fmt: skip
    assert (data["journal_lines"], data["actions"]) == (10, 3)
    assert data["by_event"] == {"TRAINING_PROGRESS": 5, "MODEL_EVALUATED": 5}
    assert (data["first"], data["last"]) == (
        "2026-11-20T09:00:00.000000Z",
        "2026-11-20T11:04:00.000000Z",
    )
    [run_] = data["runs"]  # one session (this process) over both folders
    assert (run_["first"], run_["last"]) == (data["first"], data["last"])


def test_version_and_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert (
        exit_.value.code == 0 and capsys.readouterr().out.strip() == f"audit-logging {__version__}"
    )
    for command in ("summary", "query", "verify", "tail", "export", "warnings", "demo"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert f"audit-logging {command} " in capsys.readouterr().out


def _on_a_terminal(argv: list[str], columns: int = 60) -> tuple[int, str]:
    """Run the command with stdout and stderr on a pseudo-terminal; its exit status and output."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "audit_logging", *argv],
        stdout=follower, stderr=follower, cwd=REPO, env=env,
    )  # fmt: skip
    chunks = []
    # Our copy of the follower stays open until the end, so that no read fails
    # before everything the command wrote has been read.
    while True:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            chunks.append(os.read(leader, 65536))
        elif proc.poll() is not None:
            break
    os.close(follower)
    os.close(leader)
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


def test_tables_fit_the_terminal_and_wide_does_not_cut(two_runs: Path) -> None:
    code, out = _on_a_terminal(["query", str(two_runs), "--format", "table"], columns=60)
    lines = out.replace("\r", "").splitlines()
    assert code == 0 and len(lines) == 14 and max(map(len, lines)) <= 60
    code, out = _on_a_terminal(["query", str(two_runs), "--format", "table", "--wide"], 60)
    assert max(map(len, out.replace("\r", "").splitlines())) > 60


def test_progress_bar_only_on_a_terminal_for_big_input(tmp_path: Path) -> None:
    line = json.dumps({"timestamp": "2026-11-20T09:00:00.000000Z", "event": "E", "x": "y" * 400})
    (tmp_path / "big-2026-11-20.jsonl").write_text((line + "\n") * 25_000)  # ~10 MB
    piped = subprocess.run(
        [sys.executable, "-m", "audit_logging", "summary", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO, check=False,
    )  # fmt: skip
    assert piped.returncode == 0 and piped.stderr == ""
    code, out = _on_a_terminal(["summary", str(tmp_path)], columns=100)
    assert code == 0 and "summary" in out.split("journal lines")[0] and "B/s" in out


def test_big_files_are_read_in_pieces_with_the_same_answers(
    tmp_path: Path, logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audit_logging.read import _pieces, summary, verify  # verify: the function

    journal(tmp_path, logger, [at(9, 0)] * 2000, "TRAINING_PROGRESS")
    [path] = sorted(tmp_path.glob("ml-platform-*.jsonl"))
    ranges = _pieces.split_at_lines(path, path.stat().st_size, 3)
    data = path.read_bytes()
    assert len(ranges) == 3 and all(data[a - 1 : a] == b"\n" for a, _ in ranges[1:])
    calls: list[int] = []
    real = _pieces.in_pieces

    def counting(work: Any, file: Path, end: int) -> Any:
        results = real(work, file, end)
        calls.append(len(results))
        return results

    monkeypatch.setattr(_pieces, "PARALLEL_FROM", 1)
    monkeypatch.setattr(summary, "PARALLEL_FROM", 1)
    monkeypatch.setattr(summary, "in_pieces", counting)
    monkeypatch.setattr("audit_logging.read.verify_journal.in_pieces", counting)
    cat = catalogue([tmp_path])
    assert summarize(cat).journal_lines == 2000
    assert verify(cat).ok
    lines = data.splitlines(keepends=True)
    lines[1500] = lines[1500].replace(b'"n":1500', b'"n":15')
    path.write_bytes(b"".join(lines))
    report = verify(catalogue([tmp_path]))
    assert [(p.line, p.kind) for p in report.problems] == [(1501, "edited")]
    if threading.active_count() == 1:  # workers are forked only from a single thread
        assert calls and min(calls) > 1
