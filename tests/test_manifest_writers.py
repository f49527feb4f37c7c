"""Every writer records its files in the folder's manifest; verify then proves every byte."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from audit_logging import CsvHandler, JsonArrayHandler, JsonlHandler, WarningFileHandler
from audit_logging.formats import MANIFEST_NAME
from audit_logging.read import catalogue, verify


def _manifest(folder: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (folder / MANIFEST_NAME).read_text().splitlines()]


def test_the_writers_fill_the_manifest_and_verify_proves_every_byte(
    tmp_path: Path, logger: logging.Logger
) -> None:
    handlers = [
        JsonlHandler(directory=tmp_path / "logs"),
        JsonArrayHandler(directory=tmp_path),
        CsvHandler(directory=tmp_path),
        WarningFileHandler(directory=tmp_path / "warnings", max_files_per_type=1),
    ]
    for handler in handlers:
        logger.addHandler(handler)
    for n in range(3):
        logger.info(
            "m", extra={"event": "TRAINING_PROGRESS", "action_type": "step", "details": {"n": n}}
        )
        logger.info("w", extra={"warning_type": "nan_loss", "details": {"n": n}})
    for handler in handlers:
        logger.removeHandler(handler)
        handler.close()
    ops = {(line["op"], line["file"]) for line in _manifest(tmp_path)}
    assert ("created", "audit_log.json") in ops and ("created", "audit_log.csv") in ops
    assert sum(1 for op, file in ops if op == "batch" and file == "audit_log.csv") >= 1
    logs = {(line["op"], str(line["file"])[:11]) for line in _manifest(tmp_path / "logs")}
    assert {("created", "ml-platform"), ("sealed", "ml-platform")} <= logs
    warnings = _manifest(tmp_path / "warnings")
    assert [line["op"] for line in warnings].count("retired") == 2  # one kept per type
    report = verify(catalogue([tmp_path]))
    assert report.ok, report.problems
    assert report.unproven == [] and len(report.retired) == 2
    [journal] = sorted((tmp_path / "logs").glob("ml-platform-*.jsonl"))
    journal.unlink()
    report = verify(catalogue([tmp_path]))
    assert [(p.path, p.kind) for p in report.problems] == [(str(journal), "missing")]
