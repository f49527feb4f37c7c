"""CsvHandler: audit_log.csv for spreadsheets: RFC 4180, UTF-8, no formulas, no torn rows glued."""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import logging.config
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from audit_logging.writers.csv import AuditCsvFormatter, CsvHandler, restore_cell


def read_rows(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


def record(action: Any = "hp_change", **extra: Any) -> logging.LogRecord:
    rec = logging.LogRecord("t", logging.INFO, __file__, 1, "msg", None, None)
    rec.__dict__.update(action_type=action, **extra)
    return rec


@pytest.fixture
def handler(tmp_path: Path) -> Any:
    h = CsvHandler(directory=tmp_path)
    yield h
    h.close()


def test_removed_file_is_started_again_with_its_header(tmp_path: Path, handler: CsvHandler) -> None:
    path = tmp_path / "audit_log.csv"
    handler.handle_batch([record("a")])
    path.unlink()
    handler.handle_batch([record("b")])
    rows = read_rows(path)
    assert rows[0] == ["timestamp", "action_type", "status", "details", "error"]
    assert [r[1] for r in rows[1:]] == ["b"]


def test_header_once_rows_in_append_order_details_as_json(
    tmp_path: Path, handler: CsvHandler
) -> None:
    handler.handle_batch([record(details={"changed_params": {"lr": 0.001, "bs": 32}})])
    handler.handle_batch(
        [record("query_execute", status="failed", error="Invalid query syntax"), record("pause")]
    )
    handler.close()
    again = CsvHandler(directory=tmp_path)  # a restart does not repeat the header
    again.handle_batch([record("resume")])
    again.close()
    rows = read_rows(tmp_path / "audit_log.csv")
    assert rows[0] == ["timestamp", "action_type", "status", "details", "error"]
    assert [r[1] for r in rows[1:]] == ["hp_change", "query_execute", "pause", "resume"]
    assert json.loads(rows[1][3]) == {"changed_params": {"lr": 0.001, "bs": 32}}
    assert rows[1][4] == "" and rows[2][2:] == ["failed", "{}", "Invalid query syntax"]
    assert all(len(r) == 5 for r in rows)
    assert (tmp_path / "audit_log.csv").read_bytes().count(b"\r\n") == 5


def test_formula_injection_is_neutralised_in_every_cell(
    tmp_path: Path, handler: CsvHandler
) -> None:
    evil = ['=HYPERLINK("http://x")', "+1+1", "-2", "@SUM(A1)", "\tcmd", "\rcmd"]
    for text in evil:
        handler.handle_batch([record(text, status=text, error=text, details=text)])
    rows = read_rows(tmp_path / "audit_log.csv")[1:]
    for text, row in zip(evil, rows, strict=True):
        assert row[1] == row[2] == row[4] == "'" + text
        assert json.loads(row[3]) == {"value": text}  # JSON text starts with "{": inert
        assert restore_cell(row[1]) == text
    assert not row[0].startswith("'")  # the timestamp is ours


def test_unicode_newlines_and_quotes_round_trip_without_fake_rows(
    tmp_path: Path, handler: CsvHandler
) -> None:
    text = 'ümlaut 日本語 🚀 "quoted", comma\nsecond line\r\nthird'
    handler.handle_batch([record("note_write", details={"note": text}, error=text)])
    handler.handle_batch([record("pause")])
    rows = read_rows(tmp_path / "audit_log.csv")
    assert len(rows) == 3
    assert rows[1][4] == text and json.loads(rows[1][3]) == {"note": text}


def test_torn_last_row_is_never_glued_to(tmp_path: Path, handler: CsvHandler) -> None:
    path = tmp_path / "audit_log.csv"
    handler.handle_batch([record("pause")])
    handler.close()
    with open(path, "ab") as fh:  # a writer killed inside the quoted details cell
        fh.write(b'2026-05-27T14:30:00.000000Z,tag_add,success,"{""tag_name"": ""de')
    again = CsvHandler(directory=tmp_path)
    again.handle_batch([record("resume"), record("tag_remove")])
    again.close()
    rows = read_rows(path)
    assert [r[1] for r in rows] == ["action_type", "pause", "tag_add", "resume", "tag_remove"]
    assert rows[2][3] == '{"tag_name": "de'  # the torn row stays as it was, closed
    assert all(len(r) == 5 for i, r in enumerate(rows) if i != 2)


def test_details_json_cannot_hold_are_converted(tmp_path: Path, handler: CsvHandler) -> None:
    details = {"when": dt.date(2026, 5, 27), "a": np.int64(3), (1, "x"): {1, 2}, "o": object()}
    handler.handle_batch([record(details=details)])
    [row] = read_rows(tmp_path / "audit_log.csv")[1:]
    got = json.loads(row[3])
    assert got["when"] == "2026-05-27" and got["a"] == 3 and got["(1, 'x')"] == [1, 2]
    assert got["o"].startswith("<object object")


def test_formatter_renders_one_row(logger: logging.Logger) -> None:
    formatter = AuditCsvFormatter()
    rec = record("=cmd", details={"a": 1})
    line = formatter.format(rec)
    assert "\n" not in line
    [row] = list(csv.reader([line]))
    assert row[1:] == ["'=cmd", "success", '{"a":1}', ""]


def test_queue_handler_feeds_both_writers_from_dictconfig(tmp_path: Path) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "actions": {
                    "class": "audit_logging.writers.json_array.JsonArrayHandler",
                    "directory": str(tmp_path),
                },
                "sheet": {
                    "class": "audit_logging.writers.csv.CsvHandler",
                    "directory": str(tmp_path),
                },
                "audit": {
                    "class": "audit_logging.AuditQueueHandler",
                    "handlers": ["actions", "sheet"],
                },
            },
            "loggers": {"ui": {"handlers": ["audit"], "level": "INFO", "propagate": False}},
        }
    )
    log = logging.getLogger("ui")
    for i in range(500):
        log.info("action", extra={"action_type": "tag_add", "details": {"i": i}})
    log.info("plain message: not an audit entry")
    [queue_handler] = log.handlers
    queue_handler.flush()
    with open(tmp_path / "audit_log.json", encoding="utf-8") as fh:
        entries = json.load(fh)
    assert [e["details"]["i"] for e in entries] == list(range(499, -1, -1))
    rows = read_rows(tmp_path / "audit_log.csv")[1:]
    assert [json.loads(r[3])["i"] for r in rows] == list(range(500))
