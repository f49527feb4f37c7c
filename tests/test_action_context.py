"""AuditLogger.action(): before, after and changes, read back from audit_log.json and .csv."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from audit_logging import AuditLogger
from audit_logging.facade import changes


def json_entries(folder: Path) -> list[dict[str, Any]]:
    return list(json.loads((folder / "audit_log.json").read_text(encoding="utf-8")))


def test_success_logs_before_after_and_changes(tmp_path: Path) -> None:
    audit = AuditLogger(tmp_path, format="json,csv")
    config = {"lr": 0.01, "optimizer": {"name": "adam", "beta1": 0.9}, "tags": ["a"]}
    with audit.action("hp_change", before=json.loads(json.dumps(config))) as act:
        config["lr"] = 0.001
        config["optimizer"]["beta1"] = 0.95
        config["warmup"] = 100
        del config["tags"]
        act.after = config
        act.details["user"] = "alice"
    [entry] = json_entries(tmp_path)
    assert entry["action_type"] == "hp_change" and entry["status"] == "success"
    assert entry["error"] is None
    details = entry["details"]
    assert details["user"] == "alice"
    assert details["before"]["lr"] == 0.01 and details["after"]["lr"] == 0.001
    assert details["changes"] == [
        {"key": "lr", "old": 0.01, "new": 0.001},
        {"key": "optimizer.beta1", "old": 0.9, "new": 0.95},
        {"key": "tags", "old": ["a"], "new": None, "removed": True},
        {"key": "warmup", "old": None, "new": 100, "added": True},
    ]
    assert details["duration_ms"] >= 0
    [row] = list(csv.DictReader((tmp_path / "audit_log.csv").open(encoding="utf-8")))
    assert row["action_type"] == "hp_change"
    assert json.loads(row["details"])["changes"] == details["changes"]
    assert audit.get_log_summary()["by_status"] == {"success": 1}
    audit.close()


def test_exception_logs_failed_and_reraises(tmp_path: Path) -> None:
    audit = AuditLogger(tmp_path, format="json")
    with pytest.raises(KeyError), audit.action("checkpoint_restore", before={"step": 10}) as act:
        act.after = {"step": 10}
        raise KeyError("ckpt-20")
    [entry] = json_entries(tmp_path)
    assert entry["status"] == "failed"
    assert entry["error"] == "KeyError: 'ckpt-20'"
    assert entry["details"]["before"] == {"step": 10}
    assert entry["details"]["changes"] == []
    assert entry["details"]["exception_type"] == "KeyError"
    audit.close()


def test_non_dict_values_have_no_changes_and_status_can_be_set(tmp_path: Path) -> None:
    audit = AuditLogger(tmp_path, format="json")
    with audit.action("pause", before="running") as act:
        act.after = "running"
        act.status = "denied"
        act.error = "run is locked"
    [entry] = json_entries(tmp_path)
    assert entry["status"] == "denied" and entry["error"] == "run is locked"
    assert entry["details"]["before"] == "running" and entry["details"]["changes"] is None
    audit.close()


def test_changes_compares_types_and_unequal_arrays() -> None:
    assert changes({"a": 1}, {"a": 1.0}) == [{"key": "a", "old": 1, "new": 1.0}]
    assert changes({"a": 1}, {"a": 1}) == []
    assert changes([1], {"a": 1}) is None
    np = pytest.importorskip("numpy")
    assert changes({"w": np.arange(3)}, {"w": np.arange(3)}) == []
    assert len(changes({"w": np.arange(3)}, {"w": np.arange(4)}) or []) == 1
    assert len(changes({"w": np.arange(3)}, {"w": np.arange(3) + 1}) or []) == 1
