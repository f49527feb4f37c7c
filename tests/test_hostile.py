"""Hostile or broken input: fuzzed payloads, oversized records, log injection, planted secrets."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit_logging import AuditQueueHandler, JsonlHandler
from audit_logging.read.verify import verify_paths
from audit_logging.writers.csv import CsvHandler
from audit_logging.writers.json_array import JsonArrayHandler

from helpers import UnprintableError, journal_files, read_jsonl


class RaisingRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr refused")

    def __str__(self) -> str:
        raise RuntimeError("str refused")


any_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    any_text,
    st.binary(max_size=20),
    st.builds(RaisingRepr),
    st.sampled_from(["\n", "\r\n", "\u2028", "\u2029", "\x00", '{"event":"MODEL_SAVED"}\n']),
)
keys = st.one_of(any_text, st.integers(), st.tuples(st.integers(), st.integers()), st.none())
payloads = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(keys, children, max_size=5),
        st.frozensets(st.integers(), max_size=4),
    ),
    max_leaves=25,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=payloads, text=any_text)
def test_any_payload_gives_valid_lines_and_never_raises(
    tmp_path_factory: Any, payload: Any, text: str
) -> None:
    directory = tmp_path_factory.mktemp("fuzz")
    logger = logging.getLogger(f"fuzz.{directory.name}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    writer = JsonlHandler(directory=directory)
    handler = AuditQueueHandler([writer])
    logger.addHandler(handler)
    try:
        logger.info(
            text,
            extra={
                "event": "TRAINING_PROGRESS",
                "metrics_snapshot": payload,
                "reasoning": text,
                "dataset": payload,
            },
        )
        logger.info("%s", text, extra={"event": "ISSUE_DETECTED", "decision": payload})
        handler.flush()
        [path] = journal_files(directory)
        lines = read_jsonl(path)  # strict: no NaN, every line whole
        assert len(lines) == 2
        assert path.read_bytes().count(b"\n") == 2  # no injected line
        assert b"\xe2\x80\xa8" not in path.read_bytes()
        assert lines[0]["message"] == lines[0]["reasoning"] or "\\u" in json.dumps(
            lines[0]["message"]
        )
        assert writer.records_failed == 0
    finally:
        logger.removeHandler(handler)
        handler.close()


def test_a_record_over_max_record_bytes_is_cut_with_a_marker(
    tmp_path: Path, logger: logging.Logger
) -> None:
    writer = JsonlHandler(directory=tmp_path, max_record_bytes=64 * 1024)
    logger.addHandler(writer)
    huge = "x" * 5_000_000
    logger.info(
        "big",
        extra={"event": "TRAINING_PROGRESS", "reasoning": huge, "metrics_snapshot": {"loss": 0.5}},
    )
    [path] = journal_files(tmp_path)
    [line] = read_jsonl(path)
    assert path.stat().st_size < 64 * 1024
    assert line["reasoning"].startswith("xxx")
    cut = int(line["reasoning"].rsplit("[truncated ", 1)[1].split(" ")[0])
    assert len(line["reasoning"].split("…")[0]) + cut == 5_000_000
    assert line["metrics_snapshot"] == {"loss": 0.5}  # small fields kept as they are
    assert verify_paths([tmp_path]).ok


def test_injected_newlines_never_forge_a_line(tmp_path: Path, logger: logging.Logger) -> None:
    logger.addHandler(JsonlHandler(directory=tmp_path))
    forged = '"}\n{"timestamp":"2026-01-01T00:00:00.000000Z","event":"MODEL_SAVED","seq":99}\r\n'
    logger.info(
        forged,
        extra={"event": "TRAINING_STARTED", "model": forged, "metrics_snapshot": {forged: forged}},
    )
    [path] = journal_files(tmp_path)
    [line] = read_jsonl(path)
    assert line["event"] == "TRAINING_STARTED" and line["model"] == forged and line["seq"] == 1


def test_planted_secrets_never_reach_the_journal(tmp_path: Path, logger: logging.Logger) -> None:
    logger.addHandler(JsonlHandler(directory=tmp_path))
    service_account = {
        "type": "service_account",
        "private_key": "-----BEGIN PRIVATE KEY-----\nPLANTED1\n-----END PRIVATE KEY-----\n",
        "client_email": "x@y.iam.gserviceaccount.com",
    }
    logger.info(
        "connecting with Authorization: Bearer PLANTED2abcdefgh and https://me:PLANTED3@db/x",
        extra={
            "event": "HYPERPARAMETERS_SET",
            "metrics_snapshot": {
                "lr": 0.1,
                "api_key": "PLANTED4",
                "nested": {"db_password": "PLANTED5"},
            },
            "reasoning": "token=PLANTED6",
            "decision": json.dumps(service_account),
            "dataset": service_account,
        },
    )
    raw = journal_files(tmp_path)[0].read_text()
    assert "PLANTED" not in raw
    [line] = read_jsonl(journal_files(tmp_path)[0])
    assert line["metrics_snapshot"]["lr"] == 0.1  # what is not secret stays
    assert line["metrics_snapshot"]["api_key"] == "[REDACTED]"
    assert not math.isnan(line["metrics_snapshot"]["lr"])


def test_planted_secrets_never_reach_any_output(tmp_path: Path, logger: logging.Logger) -> None:
    from audit_logging import configure

    handler = configure(root_dir=tmp_path, formats="jsonl,json,csv,warnings", logger=logger)
    assert handler is not None
    secrets = {
        "password": "PLANTED-A",
        "nested": {"client_secret": "PLANTED-B", "ok": 1},
        "note": "Authorization: Bearer PLANTEDCTOKEN",
        "pem": "-----BEGIN RSA PRIVATE KEY-----\nPLANTED-D\n-----END RSA PRIVATE KEY-----",
    }
    extra = {"details": secrets, "error": "login failed for https://bob:PLANTED-E@db.example/x"}
    logger.info("hp", extra={"action_type": "hp_change", "status": "failed", **extra})
    logger.info(
        "ev",
        extra={
            "event": "HYPERPARAMETERS_SET",
            "metrics_snapshot": secrets,
            "reasoning": "api_key=PLANTED-F",
        },
    )
    logger.warning("w", extra={"warning_type": "credentials_missing", **extra})
    handler.flush()
    outputs = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.suffix for p in outputs} >= {".jsonl", ".json", ".csv"}
    for path in outputs:
        assert b"PLANTED" not in path.read_bytes(), path
    entry = json.loads((tmp_path / "audit_log.json").read_text())[0]
    assert entry["details"]["nested"] == {"client_secret": "[REDACTED]", "ok": 1}


def test_an_exception_that_cannot_be_printed_holds_back_no_action(
    tmp_path: Path, logger: logging.Logger
) -> None:
    array = JsonArrayHandler(directory=tmp_path)
    sheet = CsvHandler(directory=tmp_path)
    logger.addHandler(array)
    logger.addHandler(sheet)
    try:
        raise UnprintableError
    except UnprintableError:
        logger.error("export failed", exc_info=True, extra={"action_type": "export"})
    logger.info("next", extra={"action_type": "pause"})
    entries = json.loads((tmp_path / "audit_log.json").read_text(encoding="utf-8"))
    assert [e["action_type"] for e in entries] == ["pause", "export"]
    assert entries[1]["error"].startswith("UnprintableError: ")
    rows = (tmp_path / "audit_log.csv").read_text(encoding="utf-8").splitlines()
    assert [row.split(",")[1] for row in rows[1:]] == ["export", "pause"]
    assert array.records_failed == sheet.records_failed == 0


def test_a_record_that_cannot_be_rendered_is_rejected_not_retried(
    tmp_path: Path, logger: logging.Logger
) -> None:
    array = JsonArrayHandler(directory=tmp_path)
    sheet = CsvHandler(directory=tmp_path)

    def break_time(record: logging.LogRecord) -> bool:
        if record.getMessage() == "broken":
            record.created = "yesterday"  # type: ignore[assignment]
        return True

    for writer in (array, sheet):
        writer.addFilter(break_time)
        logger.addHandler(writer)
    logger.info("broken", extra={"action_type": "export"})
    logger.info("fine", extra={"action_type": "pause"})
    array.flush()
    sheet.flush()
    entries = json.loads((tmp_path / "audit_log.json").read_text(encoding="utf-8"))
    assert [e["action_type"] for e in entries] == ["pause"]
    rows = (tmp_path / "audit_log.csv").read_text(encoding="utf-8").splitlines()
    assert [row.split(",")[1] for row in rows[1:]] == ["pause"]
    for writer in (array, sheet):
        assert (writer.records_rejected, writer.records_failed, writer.records_written) == (1, 0, 1)
        assert writer.rejects_lost == 0
    [rejects] = tmp_path.glob("rejected-*.jsonl")  # kept whole, once per writer
    lines = read_jsonl(rejects)
    assert [(line["message"], line["action_type"]) for line in lines] == [("broken", "export")] * 2
    assert {line["writer"] for line in lines} == {"JsonArrayHandler", "CsvHandler"}


def test_a_dict_that_contains_itself_is_written_everywhere_with_cycle_markers(
    tmp_path: Path,
) -> None:
    from audit_logging import WarningFileHandler

    loop: dict[str, Any] = {"loss": 0.5, "history": [1]}
    loop["self"] = loop
    loop["history"].append(loop)
    loop["nested"] = {"up": loop, "password": "hunter2"}
    writers = [
        JsonlHandler(directory=tmp_path),
        JsonArrayHandler(directory=tmp_path),
        CsvHandler(directory=tmp_path),
        WarningFileHandler(tmp_path / "warnings"),
    ]
    record = logging.LogRecord("t", logging.INFO, "", 0, "loop", None, None)
    record.__dict__.update(
        event="TRAINING_STARTED",
        metrics_snapshot=loop,
        action_type="config_change",
        details=loop,
        warning_type="data_drift",
    )
    for writer in writers:
        writer.handle_batch([record])
        assert (writer.records_written, writer.records_rejected) == (1, 0), writer
    [line] = read_jsonl(journal_files(tmp_path)[0])
    assert line["metrics_snapshot"]["self"] == "<cycle>"
    assert line["metrics_snapshot"]["loss"] == 0.5
    [entry] = json.loads((tmp_path / "audit_log.json").read_text(encoding="utf-8"))
    assert entry["details"]["history"][1] == "<cycle>"
    outputs = [p.read_text(encoding="utf-8") for p in tmp_path.rglob("*") if p.is_file()]
    assert all("hunter2" not in text for text in outputs)
    assert sum("<cycle>" in text for text in outputs) == 4


def test_a_record_over_max_record_bytes_keeps_its_shape_and_says_what_was_cut(
    tmp_path: Path,
) -> None:
    writer = JsonlHandler(directory=tmp_path, max_record_bytes=64 * 1024)
    record = logging.LogRecord("t", logging.INFO, "", 0, "eval", None, None)
    snapshot = {
        "acc": 0.91,
        "preds": list(range(300_000)),
        "per_class": {f"class_{i}": {"recall": i / 1000} for i in range(20_000)},
        "note": "y" * 200_000,
    }
    record.__dict__.update(event="MODEL_EVALUATED", metrics_snapshot=snapshot)
    writer.handle_batch([record])
    [path] = journal_files(tmp_path)
    [line] = read_jsonl(path)
    assert path.stat().st_size < 64 * 1024
    kept = line["metrics_snapshot"]
    # Every field keeps its type (jq .metrics_snapshot.preds is still an array).
    assert kept["acc"] == 0.91
    assert isinstance(kept["preds"], list) and kept["preds"] == list(range(len(kept["preds"])))
    assert isinstance(kept["per_class"], dict)
    assert all(v == {"recall": int(k[6:]) / 1000} for k, v in kept["per_class"].items())
    assert isinstance(kept["note"], str) and "…[truncated " in kept["note"]
    assert line["truncated"] == {
        ".metrics_snapshot.preds": f"kept {len(kept['preds'])} of 300000 items",
        ".metrics_snapshot.per_class": f"kept {len(kept['per_class'])} of 20000 members",
    }
    assert len(kept["preds"]) > 1000 and len(kept["per_class"]) > 100
    assert verify_paths([tmp_path]).ok


def test_a_huge_payload_is_cut_at_the_snapshot_and_the_line_says_so(
    tmp_path: Path, logger: logging.Logger
) -> None:
    from audit_logging.queue import SNAPSHOT_ITEMS

    writer = JsonlHandler(directory=tmp_path)
    handler = AuditQueueHandler([writer])
    logger.addHandler(handler)
    preds = list(range(3_000_000))
    logger.info("eval", extra={"event": "MODEL_EVALUATED", "metrics_snapshot": {"preds": preds}})
    preds[0] = -1  # the snapshot is a copy
    handler.flush()
    [line] = read_jsonl(journal_files(tmp_path)[0])
    assert line["metrics_snapshot"]["preds"] == list(range(SNAPSHOT_ITEMS))
    assert line["truncated"] == {
        ".metrics_snapshot.preds": f"kept {SNAPSHOT_ITEMS} of 3000000 items (cut when logged)"
    }
