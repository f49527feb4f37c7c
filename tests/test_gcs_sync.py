"""GcsSyncHandler against a real GCS server (fake-gcs-server): mirrors, costs, outages, conflicts."""

from __future__ import annotations

import json
import logging
import logging.config
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from audit_logging import bucket_layout
from audit_logging.pull import pull
from audit_logging.read.gcs import iter_gcs_lines, list_gcs_objects
from audit_logging.writers.csv import CsvHandler
from audit_logging.writers.gcs import STATE_FILE, GcsSyncHandler
from audit_logging.writers.json_array import JsonArrayHandler

from gcs_server import GcsServer
from helpers import REPO, Collect, read_jsonl, read_while_a_writer_is_mid_batch

pytestmark = pytest.mark.usefixtures("gcs_hermetic_env")

PREFIX = "host-a/session-1"


def make(
    server: GcsServer, bucket: Any, directory: Path, prefix: str = PREFIX, **kw: Any
) -> GcsSyncHandler:
    kw.setdefault("interval", 3600.0)  # tests sync explicitly
    kw.setdefault("timeout", 2.0)
    kw.setdefault("retry_timeout", 2.0)
    kw.setdefault("close_timeout", 5.0)
    kw.setdefault("client", server.client())
    return GcsSyncHandler(bucket.name, str(directory), prefix=prefix, **kw)


def local_files(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and (not p.name.startswith(".") or p.name == ".audit-manifest.jsonl")
    }


def remote_files(server: GcsServer, bucket: Any, prefix: str = PREFIX) -> dict[str, bytes]:
    """The files put back together from the bucket's pieces (checked whole on the way)."""
    with tempfile.TemporaryDirectory() as target:
        report = pull(f"gs://{bucket.name}/{prefix}", target, client=server.client())
        assert report.ok, report.problems
        return local_files(Path(target))


def append(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as fh:
        fh.write(data)


def rewrite(path: Path, data: bytes) -> None:
    """As a writer that rewrites atomically: temp file then rename (new inode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def jsonl_line(i: int, pad: int = 0) -> bytes:
    return json.dumps({"seq": i, "event": "TRAINING_PROGRESS", "pad": "x" * pad}).encode() + b"\n"


# --------------------------------------------------------------------------- mirrors


def test_mirror_is_byte_identical_for_all_four_outputs(
    gcs_server: GcsServer, gcs_bucket: Any, tmp_path: Path
) -> None:
    d = tmp_path / "logs"
    journal = d / "ml-platform-2026-05-27.jsonl"
    array = d / "audit_log.json"
    csv = d / "audit_log.csv"
    warnings = d / "training_logs" / "warnings"
    h = make(gcs_server, gcs_bucket, d)
    append(csv, b"timestamp,action_type,status,details,error\r\n")
    actions: list[dict[str, Any]] = []
    for i in range(5):
        append(journal, b"".join(jsonl_line(i * 10 + k) for k in range(10)))
        actions.insert(0, {"action_type": "train", "i": i})
        rewrite(array, json.dumps(actions, indent=2).encode())
        append(csv, f'2026-05-27T00:00:0{i}Z,train,success,"{{""i"": {i}}}",\r\n'.encode())
        rewrite(warnings / f"2026052700000{i}_dirty_git_abcdef0{i}.json", b'{"type": "dirty_git"}')
        assert h.sync_now()
        assert remote_files(gcs_server, gcs_bucket) == local_files(d)
    append(journal, b'{"seq": 99, "half": "a line still being wr')  # no newline yet
    h.close()
    remote = remote_files(gcs_server, gcs_bucket)
    assert remote == local_files(d)
    assert remote["ml-platform-2026-05-27.jsonl"].endswith(b"being wr")
    assert len(remote) == 8
    # Temporary tail objects are gone; the state file and hidden temp files are not mirrored.
    names = [b.name for b in gcs_server.client().list_blobs(gcs_bucket.name)]
    assert all(n.startswith(PREFIX + "/") and ".gcs-sync" not in n for n in names), names
    assert (d / STATE_FILE).exists()
    # Appends composed onto the journal: one object, many generations, never recreated.
    assert h.uploads == 5 + 5 + 1 + 5 + 5  # journal, csv (+ header sync), array, warnings
    assert h.conflicts == 0 and h.outages == 0


def test_array_is_copied_under_its_writers_lock(
    gcs_server: GcsServer, gcs_bucket: Any, tmp_path: Path, logger: logging.Logger
) -> None:
    array = tmp_path / "audit_log.json"
    writer = JsonArrayHandler(directory=tmp_path)
    logger.addHandler(writer)
    for i in range(3):
        logger.info("x", extra={"action_type": "train", "details": {"i": i}})
    whole = array.read_bytes()
    h = make(gcs_server, gcs_bucket, tmp_path)

    def overwrite(offset: int, data: bytes) -> None:
        with open(array, "r+b") as fh:
            fh.seek(offset)
            fh.write(data)

    read_while_a_writer_is_mid_batch(
        Path(writer.lock_path),
        torn=lambda: overwrite(len(whole) // 2, b"\x00" * 64),  # a page half copied
        finish=lambda: overwrite(0, whole),
        read=h.sync_now,
    )
    h.close()
    remote = remote_files(gcs_server, gcs_bucket)["audit_log.json"]
    # The same entries, byte for byte (the writer's reserve of spaces is not mirrored).
    assert remote.splitlines()[1:] == array.read_bytes().splitlines()[1:]
    assert [e["details"]["i"] for e in json.loads(remote)] == [2, 1, 0]


def test_between_syncs_only_whole_csv_rows_are_sent(
    gcs_server: GcsServer, gcs_bucket: Any, tmp_path: Path, logger: logging.Logger
) -> None:
    sheet = tmp_path / "audit_log.csv"
    logger.addHandler(CsvHandler(directory=tmp_path))
    logger.info("x", extra={"action_type": "train", "details": {"i": 0}})
    h = make(gcs_server, gcs_bucket, tmp_path)
    assert h._sync(final=False, deadline=None)  # everything sent
    # A row whose quoted error cell holds a line break, written up to that break.
    row = b'2026-05-27T00:00:01.000000Z,train,failed,{},"disk full\r\nretrying"\r\n'
    cut = row.index(b"\n") + 1

    def append(data: bytes) -> None:
        with open(sheet, "ab") as fh:
            fh.write(data)

    read_while_a_writer_is_mid_batch(
        sheet,
        torn=lambda: append(row[:cut]),
        finish=lambda: append(row[cut:]),
        read=lambda: h._sync(final=False, deadline=None),
    )
    assert remote_files(gcs_server, gcs_bucket)["audit_log.csv"] == sheet.read_bytes()
    h.close()


def test_between_syncs_only_whole_lines_are_sent(
    gcs_server: GcsServer, gcs_bucket: Any, tmp_path: Path
) -> None:
    journal = tmp_path / "j.jsonl"
    h = make(gcs_server, gcs_bucket, tmp_path)
    append(journal, jsonl_line(1) + b'{"seq": 2, "par')
    assert not h._sync(final=False, deadline=None)  # the periodic pass: whole lines only
    assert remote_files(gcs_server, gcs_bucket) == {"j.jsonl": jsonl_line(1)}
    append(journal, b'tial": true}\n')
    h.close()
    assert remote_files(gcs_server, gcs_bucket)["j.jsonl"] == journal.read_bytes()


def test_end_to_end_through_dictconfig(
    gcs_server: GcsServer,
    gcs_bucket: Any,
    tmp_path: Path,
    logger: logging.Logger,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """AuditQueueHandler -> JsonlHandler, then GcsSyncHandler (listed last, closed last)."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.url)  # client=None: made from env
    d = tmp_path / "logs"
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "journal": {"class": "audit_logging.JsonlHandler", "directory": str(d)},
                "mirror": {
                    "class": "audit_logging.writers.gcs.GcsSyncHandler",
                    "bucket": gcs_bucket.name,
                    "directory": str(d),
                    "prefix": "e2e",
                    "interval": 3600,
                },
                "audit": {
                    "class": "audit_logging.AuditQueueHandler",
                    "handlers": ["journal", "mirror"],
                },
            },
            "loggers": {logger.name: {"handlers": ["audit"], "level": "INFO"}},
        }
    )
    audit = logger.handlers[0]
    for i in range(50):
        logger.info("progress", extra={"event": "TRAINING_PROGRESS", "metrics_snapshot": {"i": i}})
    audit.close()
    remote = remote_files(gcs_server, gcs_bucket, "e2e")
    assert remote == local_files(d)
    # digests and the manifest may sit beside it
    (name,) = [n for n in remote if n.endswith(".jsonl") and "audit-manifest" not in n]
    lines = [json.loads(x) for x in remote[name].splitlines()]
    assert [r["metrics_snapshot"]["i"] for r in lines] == list(range(50))
    assert read_jsonl(d / name) == lines


def test_three_processes_with_their_own_prefixes(
    gcs_server: GcsServer, gcs_bucket: Any, tmp_path: Path
) -> None:
    code = textwrap.dedent(
        """
        import logging, logging.config, sys
        d, bucket = sys.argv[1], sys.argv[2]
        logging.config.dictConfig({
            "version": 1,
            "handlers": {
                "journal": {"class": "audit_logging.JsonlHandler", "directory": d},
                "mirror": {"class": "audit_logging.writers.gcs.GcsSyncHandler",
                           "bucket": bucket, "directory": d, "interval": 0.05},
                "audit": {"class": "audit_logging.AuditQueueHandler",
                          "handlers": ["journal", "mirror"]},
            },
            "root": {"handlers": ["audit"], "level": "INFO"},
        })
        log = logging.getLogger("trainer")
        for i in range(200):
            log.info("step", extra={"event": "TRAINING_PROGRESS", "metrics_snapshot": {"i": i}})
        logging.shutdown()
        """
    )
    procs = []
    for n in range(3):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_")}
        env.update(
            PYTHONPATH=str(REPO),
            STORAGE_EMULATOR_HOST=gcs_server.url,
            AUDIT_SESSION_ID=f"rank{n}",
        )
        d = tmp_path / f"node{n}"
        cmd = [sys.executable, "-c", code, str(d), gcs_bucket.name]
        procs.append((n, d, subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)))
    for _, _, p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
    host = socket.gethostname()
    prefixes = {
        "/".join(o.name.split("/")[:2])
        for o in list_gcs_objects(f"gs://{gcs_bucket.name}", client=gcs_server.client())
    }
    assert prefixes == {f"{host}/rank{n}" for n in range(3)}
    for n, d, _ in procs:
        remote = remote_files(gcs_server, gcs_bucket, f"{host}/rank{n}")
        assert remote == local_files(d)
        (data,) = [
            v for n, v in remote.items() if n.endswith(".jsonl") and "audit-manifest" not in n
        ]
        assert len(data.splitlines()) == 200


# --------------------------------------------------------------------------- cost


def test_growth_over_20_syncs_uploads_about_the_new_bytes_only(
    gcs_server: GcsServer, gcs_bucket: Any, tmp_path: Path
) -> None:
    journal = tmp_path / "ml-platform-2026-05-27.jsonl"
    h = make(gcs_server, gcs_bucket, tmp_path)
    whole_each_time = 0
    for round_ in range(20):
        append(journal, b"".join(jsonl_line(round_ * 100 + k, pad=200) for k in range(100)))
        assert h.sync_now()
        whole_each_time += journal.stat().st_size
    h.close()
    size = journal.stat().st_size
    print(
        f"\njournal {size} B after 20 syncs: uploaded {h.bytes_uploaded} B in {h.uploads} "
        f"uploads; re-uploading whole files would have sent {whole_each_time} B"
    )
    assert remote_files(gcs_server, gcs_bucket) == {journal.name: journal.read_bytes()}
    assert size <= h.bytes_uploaded <= size * 1.01
    assert h.uploads == 20
    assert whole_each_time > 10 * size


# --------------------------------------------------------------------------- outages


def test_server_down_at_start_then_up_everything_arrives_with_one_warning(
    gcs_server: GcsServer, gcs_bucket: Any, tmp_path: Path, lib_log: Collect
) -> None:
    h = make(gcs_server, gcs_bucket, tmp_path, retry_timeout=0.5, timeout=0.5)
    with gcs_server.down():
        for i in range(3):
            append(tmp_path / "j.jsonl", jsonl_line(i))
            rewrite(tmp_path / "audit_log.json", json.dumps([{"i": i}]).encode())
            assert not h.sync_now()
        assert h._failures == 3
    (warning,) = lib_log.warnings()
    assert warning.warning_type == "gcs_auth_failed"  # type: ignore[attr-defined]
    assert warning.details["bucket"] == gcs_bucket.name  # type: ignore[attr-defined]
    assert warning.name == "audit_logging" and warning.levelno == logging.WARNING
    assert h.sync_now()
    assert remote_files(gcs_server, gcs_bucket) == local_files(tmp_path)
    append(tmp_path / "j.jsonl", jsonl_line(9))
    h.close()
    assert remote_files(gcs_server, gcs_bucket) == local_files(tmp_path)
    assert len(lib_log.warnings()) == 1 and h.outages == 1
    assert any("reachable again" in r.getMessage() for r in lib_log.records)


def test_server_down_at_close_returns_in_time_and_next_run_resumes(
    gcs_server: GcsServer, gcs_bucket: Any, tmp_path: Path, lib_log: Collect
) -> None:
    journal = tmp_path / "j.jsonl"
    # Defaults as a user has them (10 s per request, 30 s of retries): close must still bound.
    h = make(gcs_server, gcs_bucket, tmp_path, timeout=10.0, retry_timeout=30.0, close_timeout=1.5)
    append(journal, jsonl_line(1))
    assert h.sync_now()
    append(journal, jsonl_line(2))
    rewrite(tmp_path / "audit_log.json", b"[]")
    with gcs_server.down():
        start = time.monotonic()
        h.close()
        elapsed = time.monotonic() - start
    print(f"\nclose() with the server down returned after {elapsed:.2f} s (close_timeout 1.5 s)")
    assert elapsed < 1.5 + 0.5
    assert [w.warning_type for w in lib_log.warnings()] == ["gcs_auth_failed"]  # type: ignore[attr-defined]
    state = json.loads((tmp_path / STATE_FILE).read_text())
    files = state["buckets"][gcs_bucket.name]["files"]
    assert files["j.jsonl"]["size"] == len(jsonl_line(1))  # what is unsent is known
    assert remote_files(gcs_server, gcs_bucket) == {"j.jsonl": jsonl_line(1)}
    # The next run (another session: another default prefix) goes on with the same pieces.
    h2 = make(gcs_server, gcs_bucket, tmp_path, prefix="other-session")
    assert h2.sync_now()
    h2.close()
    assert remote_files(gcs_server, gcs_bucket) == local_files(tmp_path)
    assert h2.bytes_uploaded == len(jsonl_line(2)) + 2


def test_credentials_missing_is_one_warning_and_no_crash(
    gcs_bucket: Any, tmp_path: Path, lib_log: Collect, gcs_hermetic_env: Path
) -> None:
    assert "STORAGE_EMULATOR_HOST" not in os.environ
    assert not any(gcs_hermetic_env.iterdir())  # empty HOME: no gcloud config
    append(tmp_path / "j.jsonl", jsonl_line(1))
    h = GcsSyncHandler(gcs_bucket.name, str(tmp_path), interval=3600, close_timeout=2)
    assert not h.sync_now()
    assert not h.sync_now()
    h.close()
    (warning,) = lib_log.warnings()
    assert warning.warning_type == "credentials_missing"  # type: ignore[attr-defined]
    assert "credentials" in warning.details["error"].lower()  # type: ignore[attr-defined]
    assert warning.recommendation  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- conflicts


def test_a_name_taken_by_another_writer_is_not_overwritten(
    gcs_server: GcsServer, gcs_bucket: Any, tmp_path: Path, lib_log: Collect
) -> None:
    # The first piece this folder will write (same process: same host, rank, session).
    theirs = gcs_bucket.blob(bucket_layout.piece_name(PREFIX, "audit_log.json", 0))
    theirs.upload_from_string(b'["someone else\'s"]', if_generation_match=0)
    theirs.reload()
    rewrite(tmp_path / "audit_log.json", b'["ours"]')
    append(tmp_path / "j.jsonl", jsonl_line(1))
    h = make(gcs_server, gcs_bucket, tmp_path)
    h.sync_now()
    assert h.sync_now()
    h.close()
    again = gcs_bucket.get_blob(theirs.name)
    assert again.download_as_bytes() == b'["someone else\'s"]'
    assert again.generation == theirs.generation
    # Their object has no piece metadata: the pull keeps ours, sent under the next number.
    pulled = tmp_path / "pulled"
    report = pull(f"gs://{gcs_bucket.name}/{PREFIX}", pulled, client=gcs_server.client())
    assert report.ok and report.foreign == [f"gs://{gcs_bucket.name}/{theirs.name}"]
    assert local_files(pulled) == {"audit_log.json": b'["ours"]', "j.jsonl": jsonl_line(1)}
    assert lib_log.warnings() == [] and h.conflicts == 0


def test_replaced_or_truncated_journal_becomes_a_new_version(
    gcs_server: GcsServer, gcs_bucket: Any, tmp_path: Path
) -> None:
    journal = tmp_path / "j.jsonl"
    append(journal, jsonl_line(1) + jsonl_line(2))
    h = make(gcs_server, gcs_bucket, tmp_path)
    assert h.sync_now()
    journal.write_bytes(jsonl_line(3))  # truncated in place, then written
    assert h.sync_now()
    assert remote_files(gcs_server, gcs_bucket) == {"j.jsonl": jsonl_line(3)}
    rewrite(journal, jsonl_line(4) + jsonl_line(5))  # replaced: new inode
    h.close()
    assert remote_files(gcs_server, gcs_bucket) == {"j.jsonl": jsonl_line(4) + jsonl_line(5)}
    assert h.conflicts == 0


# --------------------------------------------------------------------------- reading back


def test_list_and_stream_lines_of_a_prefix(
    gcs_server: GcsServer, gcs_bucket: Any, tmp_path: Path
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    append(one / "a.jsonl", b"".join(jsonl_line(i) for i in range(3)))
    append(one / "b.jsonl", b"".join(jsonl_line(i) for i in range(3, 5)))
    append(one / "audit_log.csv", b"h\r\n")
    append(two / "a.jsonl", jsonl_line(99))
    make(gcs_server, gcs_bucket, one, prefix="run/one").close()
    make(gcs_server, gcs_bucket, two, prefix="run/one2").close()
    client = gcs_server.client()
    url = f"gs://{gcs_bucket.name}/run/one"
    objects = list_gcs_objects(url, client=client, suffixes=(".jsonl",))
    assert len(objects) == 2
    assert all(o.url.startswith(f"{url}/journal/dt=") for o in objects), objects
    lines = list(iter_gcs_lines(url, client=client, suffixes=(".jsonl",)))
    assert [json.loads(x)["seq"] for x in lines] == list(range(5))
    assert all(x.endswith("\n") for x in lines)


def test_emit_writes_nothing_and_own_warnings_cannot_loop(
    gcs_server: GcsServer, gcs_bucket: Any, tmp_path: Path
) -> None:
    """The handler on the library logger itself: its outage warning comes back to it, harmlessly."""
    h = make(gcs_server, gcs_bucket, tmp_path, retry_timeout=0.2, timeout=0.2)
    lib = logging.getLogger("audit_logging")
    lib.addHandler(h)
    try:
        append(tmp_path / "j.jsonl", jsonl_line(1))
        with gcs_server.down():
            assert not h.sync_now()
        assert h.outages == 1
        assert h.sync_now()
    finally:
        lib.removeHandler(h)
        h.close()
    assert remote_files(gcs_server, gcs_bucket) == local_files(tmp_path)


def test_the_state_of_an_older_compose_mirror_is_taken_over(
    gcs_server: GcsServer, gcs_bucket: Any, tmp_path: Path
) -> None:
    # What the older mirror left: one whole object per file, a file in conflict.
    journal, array = tmp_path / "j.jsonl", tmp_path / "audit_log.json"
    append(journal, jsonl_line(1))
    rewrite(array, b"[1]")
    old = gcs_bucket.blob(f"{PREFIX}/j.jsonl")
    old.upload_from_string(jsonl_line(1))
    st = journal.stat()
    files = {
        "j.jsonl": {"object": old.name, "generation": 1, "size": st.st_size,
                    "inode": st.st_ino, "mtime_ns": st.st_mtime_ns, "fingerprint": "x"},
        "audit_log.json": {"object": f"{PREFIX}/audit_log.json", "conflict": "not ours"},
    }  # fmt: skip
    state = {"version": 1, "buckets": {gcs_bucket.name: {"files": files, "garbage": ["gone"]}}}
    (tmp_path / STATE_FILE).write_text(json.dumps(state))
    h = make(gcs_server, gcs_bucket, tmp_path)
    assert h.sync_now()  # the journal is unchanged: its old object stands for it
    append(journal, jsonl_line(2))
    h.close()
    assert remote_files(gcs_server, gcs_bucket) == local_files(tmp_path)
    assert old.download_as_bytes() == jsonl_line(1)  # left as it was
    saved = json.loads((tmp_path / STATE_FILE).read_text())["buckets"][gcs_bucket.name]
    assert "garbage" not in saved and not saved["files"]["audit_log.json"].get("conflict")
