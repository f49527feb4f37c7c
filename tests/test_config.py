"""configure(): arguments over environment variables over defaults."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from audit_logging import AuditQueueHandler, JsonlHandler, WarningFileHandler, configure
from audit_logging.config import parse_formats

from helpers import journal_files, read_jsonl


def kinds(handler: AuditQueueHandler | None) -> list[str]:
    assert handler is not None
    return [type(t).__name__ for t in handler.targets]


def test_defaults_write_journal_and_warnings_under_root(
    tmp_path: Path, logger: logging.Logger
) -> None:
    handler = configure(root_dir=tmp_path, logger=logger)
    assert "JsonlHandler" in kinds(handler) and "WarningFileHandler" in kinds(handler)
    logger.info("go", extra={"event": "TRAINING_STARTED"})
    logger.warning("dirty", extra={"warning_type": "dirty_git"})
    assert handler is not None
    handler.flush()
    [line] = read_jsonl(journal_files(tmp_path / "logs")[0])
    assert line["event"] == "TRAINING_STARTED"
    assert len(list((tmp_path / "training_logs" / "warnings").glob("*_dirty_git_*.json"))) == 1


def test_environment_is_used_when_arguments_are_absent(
    tmp_path: Path, logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDIT_LOG_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("AUDIT_LOG_FORMAT", "JSONL")
    monkeypatch.setenv("AUDIT_LOG_LEVEL", "warning")
    handler = configure(logger=logger)
    assert kinds(handler) == ["JsonlHandler", "RuntimeLogHandler"]  # + runtime log
    assert handler is not None and handler.level == logging.WARNING
    logger.info("below the level", extra={"event": "TRAINING_PROGRESS"})
    logger.warning("kept", extra={"event": "ISSUE_DETECTED"})
    handler.flush()
    assert [r["message"] for r in read_jsonl(journal_files(tmp_path / "from-env" / "logs")[0])] == [
        "kept"
    ]


def test_arguments_win_over_environment(
    tmp_path: Path, logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDIT_LOG_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("AUDIT_LOG_FORMAT", "none")
    monkeypatch.setenv("AUDIT_LOG_LEVEL", "ERROR")
    handler = configure(root_dir=tmp_path / "arg", formats=["jsonl"], level="DEBUG", logger=logger)
    assert handler is not None and handler.level == logging.DEBUG
    assert isinstance(handler.targets[0], JsonlHandler)
    assert Path(handler.targets[0].directory) == tmp_path / "arg" / "logs"


def test_none_attaches_nothing_and_creates_nothing(
    tmp_path: Path, logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDIT_LOG_FORMAT", "none")
    assert configure(root_dir=tmp_path, logger=logger) is None
    logger.info("x", extra={"event": "TRAINING_STARTED"})
    assert list(tmp_path.iterdir()) == []


def test_calling_again_replaces_the_previous_handler(
    tmp_path: Path, logger: logging.Logger
) -> None:
    first = configure(root_dir=tmp_path / "a", formats="jsonl", logger=logger)
    second = configure(root_dir=tmp_path / "b", formats="warnings", logger=logger)
    audit = [h for h in logger.handlers if isinstance(h, AuditQueueHandler)]
    assert audit == [second]
    assert first is not None and first._closed
    assert isinstance(audit[0].targets[0], WarningFileHandler)


def test_bad_names_are_clear_errors(logger: logging.Logger) -> None:
    with pytest.raises(
        ValueError,
        match=r"unknown audit log format.*'xml'.*valid: jsonl, json, csv, warnings, none",
    ):
        configure(formats="jsonl,xml", logger=logger)
    with pytest.raises(ValueError, match="unknown audit log level 'LOUD'"):
        configure(level="LOUD", logger=logger)


def test_parse_formats_normalises() -> None:
    assert parse_formats(" JSON , csv,json ") == ["json", "csv"]
    assert parse_formats("json,NONE") == []
    assert parse_formats(["Jsonl"]) == ["jsonl"]
