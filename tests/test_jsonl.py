"""JsonlHandler: the daily journal, its fields, its numbering and its files."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from audit_logging import AuditJsonFormatter, JsonlHandler, register_event
from audit_logging.read.verify import verify_paths
from audit_logging.schema import JOURNAL_CONTEXT_FIELDS, JOURNAL_FIELDS

from helpers import journal_files, read_jsonl


def set_created(when: dt.datetime) -> logging.Filter:
    """A logger filter that stamps records with a fixed creation time (an injected clock)."""

    class Clock(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.created = when.timestamp()
            return True

    return Clock()


def test_writes_every_field_with_explicit_nulls(tmp_path: Path, logger: logging.Logger) -> None:
    logger.addHandler(JsonlHandler(directory=tmp_path))
    logger.info("Training started", extra={"event": "TRAINING_STARTED", "model": "RandomForest"})
    [path] = journal_files(tmp_path)
    today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    assert path.name == f"ml-platform-{today}.jsonl"
    [line] = read_jsonl(path)
    assert list(line) == [
        *JOURNAL_FIELDS,
        *JOURNAL_CONTEXT_FIELDS[:-1],
        *("rank", "local_rank", "world_size", "schema_version", "seq", "hash"),
    ]
    assert (line["rank"], line["world_size"], line["schema_version"]) == (None, None, 1)
    assert line["event"] == "TRAINING_STARTED"
    assert line["model"] == "RandomForest"
    for field in ("dataset", "decision", "reasoning", "metrics_snapshot", "exception"):
        assert line[field] is None
    assert line["level"] == "INFO"
    assert line["logger"] == logger.name
    assert line["message"] == "Training started"
    assert line["pid"] == os.getpid()
    assert line["seq"] == 1
    assert line["timestamp"].startswith(today) and line["timestamp"].endswith("Z")


def test_integers_beyond_a_double_are_written_as_strings(
    tmp_path: Path, logger: logging.Logger
) -> None:
    # jq and JSON Schema readers parse numbers as doubles: 2**53 + 1 would be rounded.
    handler = JsonlHandler(directory=tmp_path)
    logger.addHandler(handler)
    metrics = {"big": 2**53 + 1, "edge": 2**53 - 1, "low": -(2**53 + 1), "huge": 2**70}
    logger.info("m", extra={"event": "TRAINING_PROGRESS", "metrics_snapshot": metrics})
    handler.flush()
    [path] = journal_files(tmp_path)
    [line] = read_jsonl(path)
    assert line["metrics_snapshot"] == {
        "big": "9007199254740993",
        "edge": 9007199254740991,
        "low": "-9007199254740993",
        "huge": str(2**70),
    }
    assert verify_paths([path]).ok


def test_records_without_event_are_not_journal_lines(
    tmp_path: Path, logger: logging.Logger
) -> None:
    logger.addHandler(JsonlHandler(directory=tmp_path))
    logger.info("plain message")
    logger.info("action", extra={"action_type": "pause"})
    assert journal_files(tmp_path) == []


def test_unknown_event_goes_whole_to_the_rejects_file_reported_once_and_counted(
    tmp_path: Path, logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = JsonlHandler(directory=tmp_path)
    logger.addHandler(handler)
    extra = {"event": "TRAINING_STRATED", "epoch": 3, "metrics_snapshot": {"loss": 0.5}}
    logger.info("typo", extra=extra)
    logger.info("typo again", extra={**extra, "api_key": "sk-123456789"})
    logger.info("not a string", extra={"event": 42})
    assert handler.records_rejected == 3
    day = time.strftime("%Y-%m-%d", time.gmtime())
    rejects = tmp_path / f"rejected-{day}.jsonl"
    assert journal_files(tmp_path) == [rejects]  # no journal: only the rejects
    lines = read_jsonl(rejects)
    assert [line["message"] for line in lines] == ["typo", "typo again", "not a string"]
    assert [line["event"] for line in lines] == ["TRAINING_STRATED", "TRAINING_STRATED", 42]
    assert lines[0]["metrics_snapshot"] == {"loss": 0.5} and lines[0]["extra"] == {"epoch": 3}
    assert lines[1]["extra"] == {"epoch": 3, "api_key": "[REDACTED]"}
    assert {line["writer"] for line in lines} == {"JsonlHandler"}
    assert "did you mean TRAINING_STARTED?" in lines[0]["reason"]
    assert "did you mean" not in lines[2]["reason"]
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("did you mean TRAINING_STARTED?") == 1  # once per reason, counted each time
    assert err.count("unknown journal event 42") == 1
    assert str(rejects) in err
    register_event("TRAINING_RESTARTED")
    logger.info("custom", extra={"event": "TRAINING_RESTARTED"})
    [journal] = [p for p in journal_files(tmp_path) if p != rejects]
    assert [r["event"] for r in read_jsonl(journal)] == ["TRAINING_RESTARTED"]
    assert verify_paths([tmp_path]).ok  # the rejects file is not taken for a journal


def test_event_enum_members_are_written_as_names(tmp_path: Path, logger: logging.Logger) -> None:
    from audit_logging import Event

    logger.addHandler(JsonlHandler(directory=tmp_path))
    logger.info("saved", extra={"event": Event.MODEL_SAVED})
    assert read_jsonl(journal_files(tmp_path)[0])[0]["event"] == "MODEL_SAVED"


def test_day_switches_at_utc_midnight(tmp_path: Path, logger: logging.Logger) -> None:
    logger.addHandler(JsonlHandler(directory=tmp_path))
    before = set_created(dt.datetime(2026, 11, 23, 23, 59, 59, 999000, tzinfo=dt.timezone.utc))
    after = set_created(dt.datetime(2026, 11, 24, 0, 0, 0, 1000, tzinfo=dt.timezone.utc))
    for clock in (before, before, after):
        logger.addFilter(clock)
        logger.info("tick", extra={"event": "TRAINING_PROGRESS"})
        logger.removeFilter(clock)
    first, second = journal_files(tmp_path)
    assert first.name == "ml-platform-2026-11-23.jsonl"
    assert second.name == "ml-platform-2026-11-24.jsonl"
    assert [r["seq"] for r in read_jsonl(first)] == [1, 2]
    [late] = read_jsonl(second)
    assert late["seq"] == 1
    assert late["timestamp"] == "2026-11-24T00:00:00.001000Z"


def test_per_session_files_use_the_session_id(
    tmp_path: Path, logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDIT_SESSION_ID", "run-42")
    logger.addHandler(JsonlHandler(directory=tmp_path, prefix="jobs", per_session=True))
    logger.info("x", extra={"event": "TRAINING_STARTED"})
    [path] = journal_files(tmp_path)
    assert path.name.startswith("jobs-") and path.name.endswith("-run-42.jsonl")
    assert read_jsonl(path)[0]["session_id"] == "run-42"


def test_seq_continues_across_restarts_and_torn_tails(
    tmp_path: Path, logger: logging.Logger
) -> None:
    handler = JsonlHandler(directory=tmp_path)
    logger.addHandler(handler)
    logger.info("one", extra={"event": "TRAINING_STARTED"})
    logger.info("two", extra={"event": "TRAINING_PROGRESS"})
    logger.removeHandler(handler)
    handler.close()
    [path] = journal_files(tmp_path)
    with path.open("ab") as fh:  # a writer killed in the middle of a line
        fh.write(b'{"timestamp":"2026-')
    logger.addHandler(JsonlHandler(directory=tmp_path))
    logger.info("three", extra={"event": "TRAINING_COMPLETED"})
    lines = path.read_bytes().split(b"\n")
    assert lines[2] == b'{"timestamp":"2026-'  # left as it was, never glued to
    whole = [line for line in lines if line.endswith(b"}")]
    assert [json.loads(line)["seq"] for line in whole] == [1, 2, 3]


def test_removed_directory_is_recreated(tmp_path: Path, logger: logging.Logger) -> None:
    directory = tmp_path / "logs"
    logger.addHandler(JsonlHandler(directory=directory))
    logger.info("a", extra={"event": "TRAINING_STARTED"})
    shutil.rmtree(directory)
    logger.info("b", extra={"event": "TRAINING_PROGRESS"})
    [path] = journal_files(directory)
    [line] = read_jsonl(path)
    assert line["message"] == "b" and line["seq"] == 1


def test_exceptions_are_structured_text(tmp_path: Path, logger: logging.Logger) -> None:
    logger.addHandler(JsonlHandler(directory=tmp_path))
    try:
        raise RuntimeError("loss is NaN")
    except RuntimeError:
        logger.exception("Training failed", extra={"event": "TRAINING_FAILED"})
    [line] = read_jsonl(journal_files(tmp_path)[0])
    assert line["message"] == "Training failed"
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert line["exception"].endswith("RuntimeError: loss is NaN")


def test_messages_with_newlines_stay_one_line(tmp_path: Path, logger: logging.Logger) -> None:
    logger.addHandler(JsonlHandler(directory=tmp_path))
    logger.info('fake\n{"event": "MODEL_SAVED"}\u2028x', extra={"event": "TRAINING_STARTED"})
    [path] = journal_files(tmp_path)
    assert path.read_bytes().count(b"\n") == 1
    assert read_jsonl(path)[0]["message"] == 'fake\n{"event": "MODEL_SAVED"}\u2028x'


def test_files_are_private_by_default(tmp_path: Path, logger: logging.Logger) -> None:
    directory = tmp_path / "private"
    logger.addHandler(JsonlHandler(directory=directory))
    logger.info("a", extra={"event": "TRAINING_STARTED"})
    [path] = journal_files(directory)
    assert path.stat().st_mode & 0o777 == 0o600
    assert directory.stat().st_mode & 0o777 == 0o700


def test_json_formatter_renders_the_journal_line_with_secrets_masked(
    tmp_path: Path, logger: logging.Logger
) -> None:
    stream = io.StringIO()
    console = logging.StreamHandler(stream)
    console.setFormatter(AuditJsonFormatter())
    logger.addHandler(console)
    logger.addHandler(JsonlHandler(tmp_path))
    extra = {
        "event": "HYPERPARAMETERS_SET",
        "dataset": "churn.csv",
        "metrics_snapshot": {"api_key": "PLANTED-A", "lr": float("nan")},
        "reasoning": "password=PLANTED-B",
    }
    logger.info("set", extra=extra)
    logger.info("no event")

    def strict(text: str) -> dict[str, Any]:
        return json.loads(text, parse_constant=lambda token: pytest.fail(token))

    printed = [strict(line) for line in stream.getvalue().splitlines()]
    [written] = read_jsonl(journal_files(tmp_path)[0])
    # The same fields in the same order as the journal (seq numbers this stream).
    assert list(printed[0]) == [k for k in written if k != "hash"]
    assert {k: v for k, v in printed[0].items() if k != "seq"} == {
        k: v for k, v in written.items() if k not in ("seq", "hash")
    }
    assert printed[0]["metrics_snapshot"] == {"api_key": "[REDACTED]", "lr": None}
    assert "PLANTED" not in stream.getvalue()
    assert printed[1]["event"] is None and [p["seq"] for p in printed] == [1, 2]


def test_extra_keys_that_are_not_audit_fields_are_kept_under_extra(
    tmp_path: Path, logger: logging.Logger
) -> None:
    logger.addHandler(JsonlHandler(directory=tmp_path))
    when = dt.datetime(2026, 5, 27, 14, 30, tzinfo=dt.timezone.utc)
    logger.info(
        "epoch done",
        extra={
            "event": "TRAINING_PROGRESS",
            "metrics_snapshot": {"loss": 0.5},
            "epoch": 3,
            "learning_rate": 1e-3,
            "accuracy": float("nan"),
            "tags": {"b", "a"},
            "finished_at": when,
            "db_password": "hunter2",
        },
    )
    logger.info("plain", extra={"event": "TRAINING_PROGRESS"})
    first, second = read_jsonl(journal_files(tmp_path)[0])
    assert first["extra"] == {
        "epoch": 3,
        "learning_rate": 1e-3,
        "accuracy": None,  # JSON-safe
        "tags": ["a", "b"],
        "finished_at": "2026-05-27T14:30:00Z",
        "db_password": "[REDACTED]",  # redacted like the rest
    }
    assert first["metrics_snapshot"] == {"loss": 0.5}  # the schema fields are as they were
    assert list(first)[: len(JOURNAL_FIELDS)] == list(JOURNAL_FIELDS)
    assert second["extra"] is None  # present, null when there are none
    assert "taskName" not in json.dumps(first["extra"])  # standard attributes are not extras


@pytest.mark.parametrize(
    ("cls", "option", "value"),
    [
        ("JsonlHandler", "max_record_bytes", "big"),
        ("JsonlHandler", "chain", "false"),
        ("JsonArrayHandler", "hmac_key", 42),
        ("CsvHandler", "secret_keys", "password"),
        ("WarningFileHandler", "max_files_per_type", "10"),
    ],
)
def test_a_writer_option_of_the_wrong_type_fails_when_dictconfig_builds_it(
    tmp_path: Path, cls: str, option: str, value: object
) -> None:
    import logging.config

    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "w": {"class": f"audit_logging.{cls}", "directory": str(tmp_path), option: value}
        },
    }
    with pytest.raises(ValueError, match="Unable to configure handler 'w'") as info:
        logging.config.dictConfig(config)
    assert isinstance(info.value.__cause__, TypeError)
    assert f"{cls}: {option} must be" in str(info.value.__cause__)
    assert list(tmp_path.iterdir()) == []  # nothing written
