"""The JSON Schemas shipped in ``audit_logging/schemas``: valid, complete, and strict where it matters."""

from __future__ import annotations

import copy
import csv
import json
import logging
import math
from pathlib import Path
from typing import Any

import pytest

import audit_logging
from audit_logging import context, schema, schemas

jsonschema = pytest.importorskip("jsonschema")

JOURNAL_LINE: dict[str, Any] = {
    "timestamp": "2026-11-23T10:42:11.123456Z",
    "event": "TRAINING_PROGRESS",
    "dataset": "churn.csv",
    "model": "RandomForest",
    "decision": None,
    "reasoning": None,
    "metrics_snapshot": {"step": 3, "metrics": {"loss": 0.25, "big": "18446744073709551616"}},
    "message": "Training progress at step 3",
    "exception": None,
    "level": "INFO",
    "logger": "trainer",
    "session_id": "3f2a9c1e5b7d4a60",
    "host": "gpu-7",
    "pid": 4121,
    "rank": 1,
    "local_rank": 1,
    "world_size": 2,
    "extra": None,
    "schema_version": 1,
    "seq": 3,
    "hash": "5c0f" * 16,
}
ACTION: dict[str, Any] = {
    "timestamp": "2026-11-23T10:42:11.123456Z",
    "action_type": "hp_change",
    "status": "success",
    "details": {"param": "lr", "old": 0.1, "new": 0.05},
    "error": None,
    "actor": "alice@example.com",
    "rank": None,
    "local_rank": None,
    "world_size": None,
    "schema_version": 1,
}
WARNING: dict[str, Any] = {
    "timestamp": "2026-11-23T10:42:11.123456Z",
    "type": "dirty_git",
    "severity": "WARNING",
    "fingerprint": "52f143afa015b88e",
    "git_commit": "3f2a9c1",
    "message": "Working tree has uncommitted changes",
    "recommendation": "Commit before training",
    "rank": 0,
    "local_rank": 0,
    "world_size": 8,
    "schema_version": 1,
}
EXAMPLES = {"journal": JOURNAL_LINE, "action": ACTION, "warning": WARNING}


def validator(kind: str) -> Any:
    return jsonschema.Draft202012Validator(
        schemas.load(kind), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


@pytest.mark.parametrize("kind", schemas.KINDS)
def test_each_schema_is_a_valid_draft_2020_12_schema_of_this_version(kind: str) -> None:
    loaded = schemas.load(kind)
    jsonschema.Draft202012Validator.check_schema(loaded)
    assert loaded["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert loaded["properties"]["schema_version"] == {"const": schemas.SCHEMA_VERSION}
    assert loaded["$id"].endswith(f":{kind}:{schemas.SCHEMA_VERSION}")
    validator(kind).validate(EXAMPLES[kind])


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("journal", (*schema.JOURNAL_FIELDS, *schema.JOURNAL_CONTEXT_FIELDS)),
        ("action", schema.ACTION_FIELDS),
        ("warning", schema.WARNING_FIELDS),
    ],
)
def test_every_field_the_library_writes_is_required(kind: str, fields: tuple[str, ...]) -> None:
    required = schemas.load(kind)["required"]
    assert set(fields) | {"rank", "local_rank", "world_size", "schema_version"} <= set(required)
    # The schema lists the members in the order they are written.
    order = list(schemas.members(kind))
    assert [order.index(f) for f in fields] == sorted(order.index(f) for f in fields)


@pytest.mark.parametrize(
    ("kind", "change", "complaint"),
    [
        ("journal", {"rank": None}, None),  # not distributed: null is fine
        ("journal", {"rank": -1}, "less than the minimum"),
        ("journal", {"world_size": "2"}, "is not of type"),
        ("journal", {"metrics_snapshot": "loss=0.3"}, "is not of type"),
        ("journal", {"timestamp": "2026-11-23 10:42:11"}, "does not match"),
        ("journal", {"schema_version": 2}, "was expected"),
        ("journal", {"surprise": 1}, "Additional properties"),
        ("journal", {"pid": 2**60}, "greater than the maximum"),
        ("action", {"details": None}, "is not of type"),
        ("action", {"actor": 42}, "is not of type"),
        ("warning", {"type": "Dirty Git"}, "does not match"),
    ],
)
def test_lines_that_break_the_contract_are_refused(
    kind: str, change: dict[str, Any], complaint: str | None
) -> None:
    line = {**copy.deepcopy(EXAMPLES[kind]), **change}
    errors = [e.message for e in validator(kind).iter_errors(line)]
    if complaint is None:
        assert errors == []
    else:
        assert any(complaint in e for e in errors), errors


@pytest.mark.parametrize("kind", schemas.KINDS)
def test_a_missing_member_is_refused(kind: str) -> None:
    for member in schemas.load(kind)["required"]:
        line = {k: v for k, v in EXAMPLES[kind].items() if k != member}
        assert not validator(kind).is_valid(line), member


def test_unknown_kind_names_the_kinds() -> None:
    with pytest.raises(ValueError, match="journal, action, warning"):
        schemas.load("metrics")


# --------------------------------------------------------------------------- real lines


def test_every_line_the_library_writes_validates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in context.WATCHED:
        monkeypatch.delenv(name, raising=False)
    for name, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    log = logging.getLogger(f"schemas.{tmp_path.name}")
    log.propagate = False
    handler = audit_logging.configure(tmp_path, "jsonl,json,csv,warnings", logger=log)
    assert handler is not None
    model_file = tmp_path / "model.bin"
    model_file.write_bytes(b"weights")
    try:
        with audit_logging.TrainingRun(log, dataset="d.csv", model="m", git=None) as run:
            run.hyperparameters({"lr": 0.1, "seed": 2**60, "layers": [64, 64]})
            for step in range(12):
                run.progress(
                    step, train_loss=1.0 / (step + 1), val_loss=math.nan if step == 11 else 1.0
                )
            run.evaluated(metrics={"val_accuracy": 0.8, "count": 2**70})
            run.saved(model_file)
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    log.info(
        "hp", extra={"action_type": "hp_change", "details": {"lr": [0.1, 0.05]}, "actor": "alice"}
    )
    log.info("note", extra={"action_type": "note_write", "details": "plain text"})
    log.warning("dirty", extra={"warning_type": "dirty_git", "git_commit": "abc"})
    log.info(
        "epoch", extra={"event": "TRAINING_PROGRESS", "metrics_snapshot": {"loss": 1}, "epoch": 3}
    )
    handler.close()

    journal = [
        json.loads(line)
        for p in (tmp_path / "logs").glob("*.jsonl")
        if not p.name.startswith(".")  # the folder's manifest is not a journal
        for line in p.read_text().splitlines()
    ]
    actions = json.loads((tmp_path / "audit_log.json").read_text())
    warnings = [
        json.loads(p.read_text()) for p in (tmp_path / "training_logs" / "warnings").glob("*.json")
    ]
    assert len(journal) >= 8 and len(actions) == 2 and len(warnings) == 2
    for kind, lines in (("journal", journal), ("action", actions), ("warning", warnings)):
        check = validator(kind)
        for line in lines:
            errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in check.iter_errors(line)]
            assert errors == [], (kind, line)
            assert (line["rank"], line["local_rank"], line["world_size"]) == (0, 0, 2)
    assert [a["actor"] for a in actions] == [None, "alice"]  # newest first
    with open(tmp_path / "audit_log.csv", newline="") as fh:
        assert next(csv.reader(fh)) == list(schema.ACTION_FIELDS)  # still five columns
