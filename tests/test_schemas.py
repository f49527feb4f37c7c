"""The JSON Schemas shipped in ``audit_logging/schemas``: valid, complete, and strict where it matters."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from audit_logging import schema, schemas

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
