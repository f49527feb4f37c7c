"""The command reads buckets: summary, query and verify on gs:// prefixes (real GCS emulator)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from audit_logging import AuditQueueHandler, JsonlHandler, bucket_layout
from audit_logging.cli import main
from audit_logging.writers.gcs import GcsSyncHandler

from gcs_server import GcsServer


@pytest.fixture(autouse=True)
def command_env(
    gcs_hermetic_env: None, gcs_server: GcsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command talks to the emulator (no real credentials) and spools under this test."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.url)
    monkeypatch.setenv("AUDIT_LOG_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def mirrored(gcs_bucket: Any, tmp_path: Path, logger: logging.Logger) -> str:
    """A journal of 30 lines written locally and mirrored to the bucket; its gs:// prefix."""
    directory = tmp_path / "logs"
    mirror = GcsSyncHandler(
        bucket=gcs_bucket.name, directory=directory, prefix="gpu-7/run-1", interval=3600
    )
    handler = AuditQueueHandler([JsonlHandler(directory=directory), mirror])
    logger.addHandler(handler)
    for i in range(30):
        event = "ISSUE_DETECTED" if i == 17 else "TRAINING_PROGRESS"
        logger.info("step %d", i, extra={"event": event, "metrics_snapshot": {"step": i}})
    handler.close()
    return f"gs://{gcs_bucket.name}/gpu-7"


def test_summary_query_and_verify_read_the_bucket(
    mirrored: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["summary", mirrored, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["journal_lines"] == 30
    assert data["by_event"] == {"TRAINING_PROGRESS": 29, "ISSUE_DETECTED": 1}
    assert main(["query", mirrored, "--event", "ISSUE_DETECTED"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["metrics_snapshot"] == {"step": 17}
    assert main(["verify", mirrored]) == 0
    assert "30 line(s): intact" in capsys.readouterr().err


def test_a_missing_bucket_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "gs://no-such-bucket-here/x"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("audit-logging: cannot list gs://no-such-bucket-here/x:") and "\n" not in err
    )


def test_verify_checks_the_action_log_in_the_bucket_too(
    gcs_bucket: Any, tmp_path: Path, logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    from audit_logging import JsonArrayHandler

    array = tmp_path / "audit_log.json"
    logger.addHandler(JsonArrayHandler(directory=tmp_path))
    for i in range(3):
        logger.info("a", extra={"action_type": "train", "details": {"i": i}})
    blob = gcs_bucket.blob("gpu-8/run-1/audit_log.json")
    blob.upload_from_string(array.read_bytes())
    assert main(["verify", f"gs://{gcs_bucket.name}/gpu-8"]) == 0
    capsys.readouterr()
    blob.upload_from_string(array.read_bytes().replace(b'"i":1', b'"i":7'))
    assert main(["verify", f"gs://{gcs_bucket.name}/gpu-8"]) == 1
    assert "edited" in capsys.readouterr().out


def test_verify_chooses_the_bucket_s_files_as_it_chooses_a_folder_s(
    gcs_bucket: Any, tmp_path: Path, logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    from audit_logging import JsonArrayHandler

    folder = tmp_path / "run"
    logger.addHandler(JsonArrayHandler(directory=folder))
    logger.info("a", extra={"action_type": "train"})
    (folder / "metrics.json").write_text('{"accuracy": 0.9}')  # not a log: not verified
    (folder / "data.csv").write_text("a,b\n1,2\n")
    for path in folder.iterdir():
        gcs_bucket.blob(f"gpu-9/{path.name}").upload_from_string(path.read_bytes())
    assert main(["verify", str(folder)]) == 0
    local = capsys.readouterr().err
    assert main(["verify", f"gs://{gcs_bucket.name}/gpu-9"]) == 0
    assert capsys.readouterr().err == local == "1 file(s), 1 line(s): intact\n"


def _pieces_of(bucket: Any, source: str) -> list[Any]:
    blobs = bucket.client.list_blobs(bucket.name, prefix="gpu-7/run-1/")
    return [b for b in blobs if (b.metadata or {}).get(bucket_layout.SOURCE_KEY) == source]


def test_verify_against_the_bucket_names_what_differs_on_either_side(
    mirrored: str, gcs_bucket: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local = tmp_path / "logs"
    prefix = f"{mirrored}/run-1"
    # The manifest is hidden but mirrored: deleting local files cannot hide them.
    assert _pieces_of(gcs_bucket, ".audit-manifest.jsonl")
    assert main(["verify", str(local), "--against", prefix]) == 0
    assert capsys.readouterr().out == ""
    [journal] = sorted(local.glob("ml-platform-*.jsonl"))
    original = journal.read_bytes()
    # A newer epoch of the journal, with consistent metadata: the bucket's copy differs.
    forged = original.replace(b'"step":3}', b'"step":4}')
    [piece] = _pieces_of(gcs_bucket, journal.name)
    meta = dict(piece.metadata)
    meta.update({
        bucket_layout.EPOCH_KEY: "9",
        bucket_layout.LENGTH_KEY: str(len(forged)),
        bucket_layout.SHA256_KEY: hashlib.sha256(forged).hexdigest(),
    })  # fmt: skip
    newer = gcs_bucket.blob("gpu-7/run-1/journal/dt=2026-01-01/forged-000000.jsonl")
    newer.metadata = meta
    newer.upload_from_string(forged)
    assert main(["verify", str(local), "--against", prefix]) == 1
    assert capsys.readouterr().out.strip() == (
        f"{journal}: differs: differs from {prefix}/{journal.name}"
    )
    newer.delete()
    # An altered piece is named, and nothing is read from the prefix.
    piece.upload_from_string(forged)
    assert main(["verify", str(local), "--against", prefix]) == 2
    assert f"altered piece gs://{gcs_bucket.name}/{piece.name}" in capsys.readouterr().err
    piece.metadata = meta
    piece.upload_from_string(forged)  # (the emulator lets a test put the bytes back)
    journal.unlink()
    assert main(["verify", str(local), "--against", prefix]) == 1
    out = capsys.readouterr().out
    assert f"{prefix}/{journal.name}: missing: in the bucket, not here" in out.splitlines()
