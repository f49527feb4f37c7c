"""AuditLogger: the WeightsLab API on top of the JSON array and CSV writers."""

from __future__ import annotations

import csv
import json
import logging
import multiprocessing
import threading
from pathlib import Path
from typing import Any

import pytest

from audit_logging.facade import ActionType, AuditEvent, AuditLogger
from audit_logging.read import catalogue, summarize


def load_json(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    assert isinstance(data, list)
    return data


def load_csv(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["timestamp", "action_type", "status", "details", "error"]
    return rows[1:]


def test_api_and_attributes_of_the_reference(tmp_path: Path) -> None:
    root = tmp_path / "runs" / "exp"
    audit = AuditLogger(root_log_dir=str(root), experiment_name="my_experiment")
    assert root.is_dir()  # created on construction
    assert audit.root_log_dir == root and isinstance(audit.root_log_dir, Path)
    assert audit.json_path == root / "audit_log.json"
    assert audit.csv_path == root / "audit_log.csv"
    assert audit.experiment_name == "my_experiment"
    audit.log_event(action_type="hp_change", status="success", details={"learning_rate": 0.001})
    # Durable on return: the event is in the file now.
    [entry] = load_json(audit.json_path)
    assert entry["action_type"] == "hp_change" and entry["details"] == {"learning_rate": 0.001}
    assert entry["experiment"] == "my_experiment" and entry["error"] is None
    audit.log_event(
        ActionType.CHECKPOINT_RESTORE,
        "failed",
        {"checkpoint_id": "ckpt_001"},
        "Checkpoint file not found",
    )
    newest = load_json(audit.json_path)[0]
    assert (
        newest["action_type"] == "checkpoint_restore"
        and newest["error"] == "Checkpoint file not found"
    )
    assert not audit.csv_path.exists()  # json only by default
    assert audit.get_log_summary() == {
        "total_events": 2,
        "by_action_type": {"hp_change": 1, "checkpoint_restore": 1},
        "by_status": {"success": 1, "failed": 1},
    }
    event = AuditEvent("2026-05-27T14:30:00.123456Z", "pause", "success")
    assert event.to_dict() == {
        "timestamp": "2026-05-27T14:30:00.123456Z",
        "action_type": "pause",
        "status": "success",
        "details": None,
        "error": None,
    }


def _log_some(audit: AuditLogger) -> None:
    for action, status in [("tag_add", "success"), ("=evil()", "success"), ("tag_add", "failed")]:
        audit.log_event(
            action, status, {"note": 'ü, "x"\nline'}, "err" if status == "failed" else None
        )


@pytest.mark.parametrize("fmt", ["json", "csv", "json,csv", "CSV"])
def test_summary_counts_right_in_each_format(tmp_path: Path, fmt: str) -> None:
    audit = AuditLogger(tmp_path, format=fmt)
    _log_some(audit)
    assert audit.get_log_summary() == {
        "total_events": 3,
        "by_action_type": {"tag_add": 2, "=evil()": 1},
        "by_status": {"success": 2, "failed": 1},
    }
    assert audit.json_path.exists() == ("json" in fmt.lower())
    assert audit.csv_path.exists() == ("csv" in fmt.lower())
    if audit.csv_path.exists():
        rows = load_csv(audit.csv_path)
        assert [r[1] for r in rows] == ["tag_add", "'=evil()", "tag_add"]
        assert len(rows[0]) == 5  # no experiment column


def test_format_precedence_argument_env_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert AuditLogger(tmp_path / "a").formats == ("json",)
    monkeypatch.setenv("AUDIT_LOG_FORMAT", "Csv")
    assert AuditLogger(tmp_path / "b").formats == ("csv",)
    assert AuditLogger(tmp_path / "c", format="json").formats == ("json",)
    monkeypatch.setenv("AUDIT_LOG_FORMAT", "json, csv")
    both = AuditLogger(tmp_path / "d")
    both.log_event("pause")
    assert both.json_path.exists() and both.csv_path.exists()


def test_none_creates_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIT_LOG_FORMAT", "NONE")
    audit = AuditLogger(tmp_path / "exp")
    audit.log_event("pause")
    assert list((tmp_path / "exp").iterdir()) == []
    assert audit.get_log_summary() == {"total_events": 0, "by_action_type": {}, "by_status": {}}
    assert AuditLogger(tmp_path / "exp2", format="none").formats == ()


def test_unknown_format_fails_at_construction_naming_the_accepted_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    accepted = "accepted: json, csv, json,csv, none"
    with pytest.raises(ValueError, match=f"format='xml'; {accepted}$"):
        AuditLogger(tmp_path / "a", format="xml")
    with pytest.raises(ValueError, match=f"jsonl, which AuditLogger does not write; {accepted}$"):
        AuditLogger(tmp_path / "b", format="jsonl")
    monkeypatch.setenv("AUDIT_LOG_FORMAT", "json,xml")
    with pytest.raises(ValueError, match=f"AUDIT_LOG_FORMAT='json,xml'; {accepted}$"):
        AuditLogger(tmp_path / "c")
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_configure_formats_in_the_shared_variable_are_passed_over_quietly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AUDIT_LOG_FORMAT", "jsonl,json,warnings")  # configure()'s default
    with caplog.at_level(logging.WARNING, logger="audit_logging.facade"):
        assert AuditLogger(tmp_path / "a").formats == ("json",)
        monkeypatch.setenv("AUDIT_LOG_FORMAT", "jsonl,csv")
        assert AuditLogger(tmp_path / "b").formats == ("csv",)
    assert caplog.records == []


def test_unicode_round_trips_in_both_formats(tmp_path: Path) -> None:
    audit = AuditLogger(tmp_path, format="json,csv")
    text = "Ünïcödé 日本 🚀 'single' \"double\" , ; \\ \n\t tab"
    audit.log_event("note_write", "failed", {"note": text, text: [text]}, text)
    [entry] = load_json(audit.json_path)
    assert entry["details"] == {"note": text, text: [text]} and entry["error"] == text
    [row] = load_csv(audit.csv_path)
    assert json.loads(row[3]) == {"note": text, text: [text]} and row[4] == text


def test_two_loggers_on_one_folder_with_8_threads_keep_all_400(tmp_path: Path) -> None:
    loggers = [AuditLogger(tmp_path, format="json,csv") for _ in range(2)]
    start = threading.Barrier(8)

    def work(t: int) -> None:
        start.wait()
        for i in range(50):
            loggers[t % 2].log_event("tag_add", details={"thread": t, "i": i})

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    entries = load_json(tmp_path / "audit_log.json")
    keys = sorted((e["details"]["thread"], e["details"]["i"]) for e in entries)
    assert keys == [(t, i) for t in range(8) for i in range(50)]
    stamps = [e["timestamp"] for e in entries]
    assert stamps == sorted(stamps, reverse=True)
    rows = load_csv(tmp_path / "audit_log.csv")
    assert sorted((json.loads(r[3])["thread"], json.loads(r[3])["i"]) for r in rows) == keys
    assert loggers[0].get_log_summary()["total_events"] == 400


def _process(root: str, tag: int, n: int, start: Any) -> None:
    from audit_logging.facade import AuditLogger

    audit = AuditLogger(root, experiment_name=f"p{tag}", format="json,csv")
    start.wait()
    for i in range(n):
        audit.log_event("hp_change", details={"p": tag, "i": i})


def test_four_processes_1500_events_each_kept_exactly_once(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(4)
    procs = [ctx.Process(target=_process, args=(str(tmp_path), p, 1500, start)) for p in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    entries = load_json(tmp_path / "audit_log.json")
    assert len(entries) == 6000
    assert sorted((e["details"]["p"], e["details"]["i"]) for e in entries) == [
        (p, i) for p in range(4) for i in range(1500)
    ]
    stamps = [e["timestamp"] for e in entries]
    assert stamps == sorted(stamps, reverse=True)  # newest first across processes
    for p in range(4):  # and each process's own events newest first
        mine = [e["details"]["i"] for e in entries if e["experiment"] == f"p{p}"]
        assert mine == list(range(1499, -1, -1))
    rows = load_csv(tmp_path / "audit_log.csv")
    assert len(rows) == 6000  # the header once, every row once
    got = sorted((json.loads(r[3])["p"], json.loads(r[3])["i"]) for r in rows)
    assert got == [(p, i) for p in range(4) for i in range(1500)]
    assert AuditLogger(tmp_path, format="csv").get_log_summary()["total_events"] == 6000


def test_formula_like_names_are_counted_as_logged_from_either_file(tmp_path: Path) -> None:
    audit = AuditLogger(tmp_path, format="json,csv")
    audit.log_event("=cmd", status="-ok")
    assert "'=cmd" in audit.csv_path.read_text(encoding="utf-8")  # neutralised in the sheet
    summary = summarize(catalogue([tmp_path]))
    # One action in both files is one action, under the name as logged.
    assert dict(summary.action_types) == {"=cmd": 1}
    assert dict(summary.statuses) == {"-ok": 1}
    sheet_only = AuditLogger(tmp_path / "csv", format="csv")
    sheet_only.log_event("=cmd", status="-ok")
    assert sheet_only.get_log_summary() == {
        "total_events": 1,
        "by_action_type": {"=cmd": 1},
        "by_status": {"-ok": 1},
    }


def test_actor_is_written_to_the_entry_and_not_to_the_csv(tmp_path: Path) -> None:
    with AuditLogger(tmp_path, format="json,csv") as audit:
        audit.log_event("hp_change", details={"lr": 0.1}, actor="alice@example.com")
        with audit.action("pause", before={"paused": False}, actor="svc-scheduler") as act:
            act.after = {"paused": True}
        audit.log_event("tag_add")
    entries = json.loads((tmp_path / "audit_log.json").read_text(encoding="utf-8"))
    assert [(e["action_type"], e["actor"]) for e in entries] == [
        ("tag_add", None), ("pause", "svc-scheduler"), ("hp_change", "alice@example.com"),
    ]  # fmt: skip
    rows = (tmp_path / "audit_log.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "timestamp,action_type,status,details,error"
    assert all("alice" not in row for row in rows)
