"""The audit-logging command: summary, query, verify, tail, export, warnings, errors."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import portalocker
import pytest

from audit_logging import JsonlHandler
from audit_logging.cli import main

from helpers import REPO, journal_files


class Clock(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.when = dt.datetime(2026, 11, 20, 9, tzinfo=dt.timezone.utc)

    def filter(self, record: logging.LogRecord) -> bool:
        record.created = self.when.timestamp()
        return True


@pytest.fixture
def logs(tmp_path: Path, logger: logging.Logger, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two days of journal (two sessions), an action log in CSV and JSON, two warnings."""
    root = tmp_path / "run"
    clock = Clock()
    logger.addFilter(clock)
    for session in ("s-one", "s-two"):
        monkeypatch.setenv("AUDIT_SESSION_ID", session)
        handler = JsonlHandler(directory=root / "logs")
        logger.addHandler(handler)
        for day in (20, 21):
            for hour, event in (
                (9, "TRAINING_STARTED"),
                (10, "TRAINING_PROGRESS"),
                (11, "TRAINING_PROGRESS"),
            ):
                clock.when = dt.datetime(
                    2026, 11, day, hour, 0, 0 if session == "s-one" else 30, tzinfo=dt.timezone.utc
                )
                logger.info("%s %s", session, event, extra={"event": event, "model": "rf"})
        logger.removeHandler(handler)
        handler.close()
    with (root / "audit_log.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["timestamp", "action_type", "status", "details", "error"])
        writer.writerow(["2026-11-20T12:00:00.000000Z", "pause", "success", "{}", ""])
        writer.writerow(
            ["2026-11-21T12:00:00.000000Z", "hp_change", "failed", '{"lr": 0.1}', "bad value"]
        )
    (root / "warnings").mkdir()
    for name, wtype, severity in (
        ("2026-11-20_08-00-00_dirty_git_0123abcd.json", "dirty_git", "WARNING"),
        ("2026-11-21_08-00-00_training_failed_89abcdef.json", "training_failed", "ERROR"),
    ):
        (root / "warnings" / name).write_text(
            json.dumps(
                {
                    "timestamp": name[:10] + "T08:00:00.000000Z",
                    "type": wtype,
                    "severity": severity,
                    "fingerprint": "x",
                    "git_commit": None,
                    "message": f"{wtype} happened",
                    "recommendation": None,
                }
            )
        )
    return root


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_summary_counts_everything(logs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "summary", str(logs), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["journal_lines"] == 12
    assert data["by_event"] == {"TRAINING_PROGRESS": 8, "TRAINING_STARTED": 4}
    assert data["by_action_type"] == {"pause": 1, "hp_change": 1}
    assert data["by_status"] == {"success": 1, "failed": 1}
    assert data["by_warning_type"] == {"dirty_git": 1, "training_failed": 1}
    assert data["by_severity"] == {"WARNING": 1, "ERROR": 1}
    assert data["sessions"] == ["s-one", "s-two"]
    assert data["first"] == "2026-11-20T08:00:00.000000Z"
    assert data["last"] == "2026-11-21T12:00:00.000000Z"
    code, out, _ = run(capsys, "summary", str(logs))
    assert "journal lines  12" in out and "TRAINING_PROGRESS" in out


def test_query_filters_match_hand_computed_answers(
    logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "query", str(logs), "--event", "TRAINING_STARTED")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [(r["timestamp"], r["session_id"]) for r in rows] == [
        ("2026-11-21T09:00:30.000000Z", "s-two"),
        ("2026-11-21T09:00:00.000000Z", "s-one"),
        ("2026-11-20T09:00:30.000000Z", "s-two"),
        ("2026-11-20T09:00:00.000000Z", "s-one"),
    ]
    _, out, _ = run(
        capsys,
        "query",
        str(logs),
        "--session",
        "s-two",
        "--since",
        "2026-11-21",
        "--until",
        "2026-11-21T10:30:00Z",
    )
    assert [json.loads(line)["timestamp"] for line in out.splitlines()] == [
        "2026-11-21T10:00:30.000000Z",
        "2026-11-21T09:00:30.000000Z",
    ]
    _, out, _ = run(capsys, "query", str(logs), "--status", "failed", "--format", "json")
    [failed] = json.loads(out)
    assert failed["action_type"] == "hp_change" and failed["details"] == {"lr": 0.1}
    _, out, _ = run(capsys, "query", str(logs), "--type", "dirty_git", "--format", "csv")
    rows = list(csv.reader(io.StringIO(out)))
    assert (
        rows[0][:3] == ["kind", "timestamp", "type"]
        and rows[1][2] == "dirty_git"
        and len(rows) == 2
    )
    _, out, _ = run(
        capsys,
        "query",
        str(logs),
        "--event",
        "TRAINING_PROGRESS",
        "--format",
        "table",
        "--limit",
        "3",
    )
    assert out.splitlines()[0].split() == ["timestamp", "kind", "what", "level/status", "text"]
    assert len(out.splitlines()) == 4


def test_verify_passes_then_names_the_edited_line(
    logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "verify", str(logs))
    # The hand-written CSV and warning files have no chain and no manifest:
    # named as unproven, which only --strict makes a failure.
    assert code == 0 and "intact, 3 unproven" in err
    assert all(": unproven: " in line for line in out.splitlines())
    assert run(capsys, "verify", "--strict", str(logs))[0] == 1
    target = journal_files(logs / "logs")[1]
    lines = target.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"model":"rf"', b'"model":"xgb"')
    target.write_bytes(b"".join(lines))
    code, out, _ = run(capsys, "verify", str(logs))
    assert code == 1
    assert out.splitlines()[0] == f"{target}:3: edited: seq 3 does not match its hash"


def test_malformed_lines_are_reported_and_the_rest_processed(
    logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = journal_files(logs / "logs")[0]
    with target.open("ab") as fh:
        fh.write(b"this is not json\n")
    code, out, err = run(capsys, "summary", str(target), "--json")
    assert code == 0
    assert json.loads(out)["journal_lines"] == 6
    assert f"{target}" in err and "malformed" in err
    code, out, _ = run(capsys, "verify", str(target))
    assert code == 1 and f"{target}:7: malformed" in out


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "audit_logging", "summary", str(tmp_path / "missing")],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 2
    assert (
        result.stderr.strip() == f"audit-logging: No such file or directory: {tmp_path / 'missing'}"
    )
    result = subprocess.run(
        [sys.executable, "-m", "audit_logging", "query", str(tmp_path), "--since", "yesterday"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "audit-logging: not an ISO 8601 time: 'yesterday'"


def test_export_to_csv_and_json(
    logs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_csv = tmp_path / "journal.csv"
    assert main(["export", str(logs / "logs"), "--to", "csv", "--output", str(out_csv)]) == 0
    with out_csv.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 12 and rows[0]["event"] == "TRAINING_STARTED" and rows[0]["model"] == "rf"
    code, out, _ = run(capsys, "export", str(logs / "logs"), "--to", "json")
    assert code == 0 and len(json.loads(out)) == 12


def test_warnings_lists_types_and_severities(
    logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "warnings", str(logs / "warnings"), "--json")
    data = json.loads(out)
    assert code == 0
    assert sorted(data["by_type_and_severity"], key=lambda row: row["type"]) == [
        {"type": "dirty_git", "severity": "WARNING", "count": 1},
        {"type": "training_failed", "severity": "ERROR", "count": 1},
    ]
    assert [w["type"] for w in data["warnings"]] == ["training_failed", "dirty_git"]  # newest first
    code, out, _ = run(capsys, "warnings", str(logs / "warnings"))
    listing = out.split("\n\n")[1].splitlines()
    assert listing[0].split() == ["timestamp", "severity", "type", "message"]
    assert [row.split()[2] for row in listing[1:]] == ["training_failed", "dirty_git"]


def test_tail_prints_the_last_lines(logs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "tail", str(logs / "logs"), "-n", "2")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [line["seq"] for line in lines] == [5, 6]
    assert {line["timestamp"][:10] for line in lines} == {"2026-11-21"}


def test_tail_follow_crosses_day_rotation(tmp_path: Path) -> None:
    directory = tmp_path / "logs"
    directory.mkdir()
    day1 = directory / "ml-platform-2026-11-20.jsonl"
    day1.write_text('{"seq":1}\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "audit_logging", "tail", str(directory), "-f", "-n", "5", "--interval", "0.05", "--max-seconds", "30"],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        assert json.loads(proc.stdout.readline()) == {"seq": 1}
        with day1.open("a") as fh:
            fh.write('{"seq":2}\n')
        assert json.loads(proc.stdout.readline()) == {"seq": 2}
        (directory / "ml-platform-2026-11-21.jsonl").write_text('{"seq":1,"day":21}\n')
        assert json.loads(proc.stdout.readline()) == {"seq": 1, "day": 21}
    finally:
        proc.kill()
        proc.wait()


def test_tail_follow_prints_each_line_once_while_a_writer_appends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "ml-platform-2026-11-20.jsonl"
    journal.write_text('{"seq":0}\n')
    count = 3000

    def append() -> None:
        with journal.open("a") as fh:
            for i in range(1, count + 1):
                fh.write(f'{{"seq":{i}}}\n')
                fh.flush()
                time.sleep(0.0002)  # paces the writer over the tail's polls; syncs nothing

    writer = threading.Thread(target=append)
    writer.start()
    try:
        code = main(
            ["tail", str(journal), "-f", "-n", "1", "--interval", "0", "--max-seconds", "2"]
        )
    finally:
        writer.join()
    out = capsys.readouterr().out
    assert code == 0
    # From the last line at the start on, every line once, in order: none
    # printed twice when it landed between a size check and the read.
    seqs = [json.loads(line)["seq"] for line in out.splitlines()]
    assert seqs == list(range(seqs[0], count + 1))


def test_readers_wait_for_batches_being_appended(tmp_path: Path, logger: logging.Logger) -> None:
    from audit_logging import CsvHandler, JsonlHandler
    from audit_logging.read import catalogue, summarize

    logger.addHandler(JsonlHandler(tmp_path))
    logger.addHandler(CsvHandler(directory=tmp_path))
    for i in range(3):
        logger.info(
            "m", extra={"event": "TRAINING_PROGRESS", "action_type": "train", "details": {"i": i}}
        )
    files = [*tmp_path.glob("*.jsonl"), tmp_path / "audit_log.csv"]
    whole = {path: path.read_bytes() for path in files}
    # Play the writers in the middle of their next batch: each file's lock
    # held, its last line not all there yet.
    for path, data in whole.items():
        path.write_bytes(data[: len(data) - 20])
    locks = [open(path, "rb") for path in files]  # noqa: SIM115 - closed below
    for fh in locks:
        portalocker.lock(fh, portalocker.LockFlags.EXCLUSIVE)
    errors: list[str] = []
    results: list[Any] = []
    reading = threading.Thread(
        target=lambda: results.append(summarize(catalogue([tmp_path]), on_error=errors.append))
    )
    commands = {  # the command as users run it: query, export and tail read the same way
        name: subprocess.Popen(
            [sys.executable, "-m", "audit_logging", *argv, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO,
        )
        for name, argv in {
            "query": ["query"],
            "export": ["export", "--to", "json"],
            "tail": ["tail"],
        }.items()
    }
    try:
        reading.start()
        # Readers that did not wait for the locks would have read the cut-off lines by now.
        reading.join(1.0)
        assert reading.is_alive()
        assert all(proc.poll() is None for proc in commands.values())
        for path, data in whole.items():
            path.write_bytes(data)  # the writers finish their batches
    finally:
        for fh in locks:
            portalocker.unlock(fh)
            fh.close()
    reading.join()
    assert errors == []
    assert results[0].journal_lines == 3
    assert results[0].actions == 3 and results[0].statuses == {"success": 3}
    outputs = {name: proc.communicate(timeout=60) for name, proc in commands.items()}
    assert all(proc.returncode == 0 for proc in commands.values()), outputs
    assert all(err == b"" for _, err in outputs.values()), outputs
    assert len(outputs["query"][0].splitlines()) == 6  # 3 journal lines, 3 actions
    assert len(json.loads(outputs["export"][0])) == 6  # every kind, as query
    tail = [json.loads(line) for line in outputs["tail"][0].splitlines()]
    assert [line["metrics_snapshot"] for line in tail] == [None] * 3
