"""The append-only bucket layout and `pull`, on a real GCS server (fake-gcs-server).

The emulator does not enforce a retention policy, so the tests check from the
listing what a locked bucket would: objects are only ever added, and no
object's bytes or generation ever change.
"""

from __future__ import annotations

import calendar
import itertools
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import pytest

from audit_logging import bucket_layout
from audit_logging.cli import main
from audit_logging.pull import pull
from audit_logging.writers.csv import CsvHandler
from audit_logging.writers.gcs import GcsSyncHandler
from audit_logging.writers.json_array import JsonArrayHandler
from audit_logging.writers.jsonl import JsonlHandler

from gcs_server import GcsServer

pytestmark = pytest.mark.usefixtures("gcs_hermetic_env")

PREFIX = "team/audit"
DAYS = ("2026-05-27", "2026-05-28", "2026-05-29")  # three journals: two rotations


def local_files(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def listing(server: GcsServer, bucket: Any) -> dict[str, tuple[str, str, int]]:
    """name -> (md5, crc32c, generation) of every object in the bucket."""
    return {
        b.name: (b.md5_hash, b.crc32c, int(b.generation))
        for b in server.client().list_blobs(bucket.name)
    }


class _At(logging.Filter):
    """Dates records at ``self.when`` (seconds since the epoch), so journals rotate by day."""

    when = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        record.created = self.when
        return True


def _run(server: GcsServer, bucket: Any, d: Path, logger: logging.Logger) -> list[dict[str, Any]]:
    """Log over three days, syncing after every batch; the bucket's listing after each sync."""
    writers = [
        JsonlHandler(directory=d, digest_interval=0),
        JsonArrayHandler(directory=d),
        CsvHandler(directory=d),
    ]
    for w in writers:
        logger.addHandler(w)
    at = _At()
    logger.addFilter(at)
    mirror = GcsSyncHandler(
        bucket.name, d, prefix=PREFIX, interval=3600, client=server.client(), timeout=5
    )
    seen = []
    for day in DAYS:
        start = calendar.timegm(time.strptime(day, "%Y-%m-%d"))
        for batch in range(3):
            for i in range(5):
                at.when = start + 60 * (batch * 5 + i)
                logger.info(
                    "step", extra={"event": "TRAINING_PROGRESS", "metrics_snapshot": {"i": i}}
                )
            at.when = start + 60 * batch * 5 + 30
            logger.info(
                "train", extra={"action_type": "train", "details": {"day": day, "b": batch}}
            )
            for w in writers:
                w.flush()
            if batch == 1:  # a warning file, as WarningsHandler writes them
                body = {"type": "dirty_git", "message": f"édité {day}", "details": {"n": 1.5}}
                warning = d / "training_logs" / "warnings" / f"{day}_dirty_git.json"
                warning.parent.mkdir(parents=True, exist_ok=True)
                warning.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
            assert mirror.sync_now()
            seen.append(listing(server, bucket))
    for w in writers:
        logger.removeHandler(w)
        w.close()
    mirror.close()
    seen.append(listing(server, bucket))
    return seen


def test_every_sync_only_adds_objects_and_pull_gives_the_files_back(
    gcs_server: GcsServer,
    gcs_bucket: Any,
    tmp_path: Path,
    logger: logging.Logger,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    d = tmp_path / "logs"
    seen = _run(gcs_server, gcs_bucket, d, logger)
    for before, after in itertools.pairwise(seen):
        assert before.items() <= after.items()  # nothing removed, no bytes nor generation changed
    assert len(seen[-1]) > len(seen[0])
    # The layout query engines partition on, with the names the writer documents.
    origin = bucket_layout.origin()
    pattern = re.compile(
        rf"{PREFIX}/(journal|actions|warnings|seals|csv)/dt=\d{{4}}-\d\d-\d\d/{re.escape(origin)}-\d{{6}}"
        r"\.(jsonl|csv|json)"
    )
    assert all(pattern.fullmatch(name) for name in seen[-1]), sorted(seen[-1])
    kinds = {name.split("/")[2] for name in seen[-1]}
    assert kinds == {"journal", "actions", "warnings", "seals", "csv"}
    journals = [n for n in local_files(d) if n.endswith(".jsonl")]
    assert len(journals) == 3

    pulled = tmp_path / "pulled"
    report = pull(f"gs://{gcs_bucket.name}/{PREFIX}", pulled, client=gcs_server.client())
    assert report.ok, report.problems
    got, want = local_files(pulled), local_files(d)
    # The array's entries went up one a line; it comes back with the same entry bytes.
    array, original = got.pop("audit_log.json"), want.pop("audit_log.json")
    assert array.splitlines()[1:] == original.splitlines()[1:]
    assert array.lstrip(b"[").splitlines()[0] == original.lstrip(b"[ ").splitlines()[0]
    assert got == want  # byte for byte: journals, digests, the CSV
    # The action pieces are JSON Lines, one entry a line, each sent once.
    entries = [
        json.loads(line)
        for b in gcs_server.client().list_blobs(gcs_bucket.name, prefix=f"{PREFIX}/actions/")
        if b.name.endswith(".jsonl")
        for line in b.download_as_bytes().splitlines()
    ]
    assert [e["seq"] for e in entries] == list(range(1, 10))
    warnings = [
        b.download_as_bytes()
        for b in gcs_server.client().list_blobs(gcs_bucket.name, prefix=f"{PREFIX}/warnings/")
    ]
    assert len(warnings) == 3 and all(w.count(b"\n") == 1 for w in warnings)
    # The folder and its mirror agree, the array compared by its entries.
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.url)
    monkeypatch.setenv("AUDIT_LOG_CACHE", str(tmp_path / "cache"))
    assert main(["verify", str(d), "--against", f"gs://{gcs_bucket.name}/{PREFIX}"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "unproven" not in err, err
    assert main(["verify", str(pulled)]) == 0
    # Three journals (45 lines) and the array (9 entries), as for the original folder.
    assert "4 file(s), 54 line(s): intact" in capsys.readouterr().err


def _journal_pieces(server: GcsServer, bucket: Any) -> list[Any]:
    blobs = [b for b in server.client().list_blobs(bucket.name) if "/journal/" in b.name]
    return sorted(blobs, key=lambda b: int(b.metadata[bucket_layout.OFFSET_KEY]))


def _mirror_three_pieces(server: GcsServer, bucket: Any, d: Path) -> None:
    journal = d / "j.jsonl"
    d.mkdir()
    mirror = GcsSyncHandler(bucket.name, d, prefix=PREFIX, interval=3600, client=server.client())
    for i in range(3):
        with journal.open("ab") as fh:
            fh.write(json.dumps({"seq": i + 1}).encode() + b"\n")
        assert mirror.sync_now()
    mirror.close()


def test_pull_names_a_missing_piece_and_exits_non_zero(
    gcs_server: GcsServer,
    gcs_bucket: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _mirror_three_pieces(gcs_server, gcs_bucket, tmp_path / "logs")
    first, middle, last = _journal_pieces(gcs_server, gcs_bucket)
    middle.delete()
    url = f"gs://{gcs_bucket.name}/{PREFIX}"
    report = pull(url, tmp_path / "pulled", client=gcs_server.client())
    (problem,) = report.problems
    assert "missing piece" in problem and "j.jsonl" in problem
    assert first.name in problem and last.name in problem
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.url)
    assert main(["pull", url, str(tmp_path / "again")]) == 1
    assert "missing piece" in capsys.readouterr().err
    assert main(["summary", url]) == 2  # a reader refuses a prefix with a hole in it
    assert "missing piece" in capsys.readouterr().err


def test_pull_names_a_duplicated_and_an_altered_piece(
    gcs_server: GcsServer, gcs_bucket: Any, tmp_path: Path
) -> None:
    _mirror_three_pieces(gcs_server, gcs_bucket, tmp_path / "logs")
    first, middle, _ = _journal_pieces(gcs_server, gcs_bucket)
    copy = gcs_bucket.blob(f"{PREFIX}/journal/dt=2026-01-01/copy-000000.jsonl")
    copy.metadata = middle.metadata
    copy.upload_from_string(middle.download_as_bytes())
    first.upload_from_string(b'{"seq": 666}\n')  # not possible on a locked bucket: detected
    report = pull(
        f"gs://{gcs_bucket.name}/{PREFIX}", tmp_path / "pulled", client=gcs_server.client()
    )
    problems = "\n".join(report.problems)
    assert len(report.problems) == 2, problems
    assert f"duplicated piece gs://{gcs_bucket.name}/" in problems
    assert f"altered piece gs://{gcs_bucket.name}/{first.name}" in problems


def test_a_bucket_of_the_old_layout_is_still_read(
    gcs_server: GcsServer,
    gcs_bucket: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = b"".join(
        json.dumps({"event": "TRAINING_PROGRESS", "n": i}).encode() + b"\n" for i in range(4)
    )
    gcs_bucket.blob("host-a/s1/ml-platform-2026-05-27.jsonl").upload_from_string(lines)
    gcs_bucket.blob("host-a/s1/audit_log.json").upload_from_string(b"[]")
    report = pull(f"gs://{gcs_bucket.name}/host-a", tmp_path / "p", client=gcs_server.client())
    assert report.ok and report.old_layout_objects == 2
    assert local_files(tmp_path / "p") == {
        "s1/ml-platform-2026-05-27.jsonl": lines,
        "s1/audit_log.json": b"[]",
    }
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.url)
    monkeypatch.setenv("AUDIT_LOG_CACHE", str(tmp_path / "cache"))
    assert main(["summary", f"gs://{gcs_bucket.name}/host-a", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["journal_lines"] == 4
