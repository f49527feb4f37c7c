"""Seals leave the host: the GCS mirror carries every seal, and keeps it when local seals are deleted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("cryptography")
pytest.importorskip("google.cloud.storage")

from audit_logging.pull import pull
from audit_logging.seals.note import Signer
from audit_logging.seals.sealer import JournalSealer, list_seals
from audit_logging.seals.verify import verify_journal_seals
from audit_logging.writers.gcs import GcsSyncHandler

import gcs_server as gcs_fixtures
from gcs_server import GcsServer

gcs_server = gcs_fixtures.gcs_server
gcs_bucket = gcs_fixtures.gcs_bucket
gcs_hermetic_env = gcs_fixtures.gcs_hermetic_env

pytestmark = pytest.mark.usefixtures("gcs_hermetic_env")
PREFIX = "host-a/session-1"


def test_every_seal_reaches_the_bucket_and_stays_there(
    gcs_server: GcsServer, gcs_bucket: Any, tmp_path: Path
) -> None:
    journal = tmp_path / "ml-platform-2026-05-27.jsonl"
    journal.touch()
    signer = Signer.from_seed("audit-logging", bytes(32))
    sealer = JournalSealer(journal, signer=signer, interval=60)
    mirror = GcsSyncHandler(
        gcs_bucket.name, str(tmp_path), prefix=PREFIX, interval=3600.0, timeout=2.0,
        retry_timeout=2.0, close_timeout=5.0, client=gcs_server.client(),
    )  # fmt: skip
    try:
        for period in range(3):
            data = b"".join(b'{"seq":%d}\n' % (period * 10 + i) for i in range(10))
            with open(journal, "ab") as f:
                f.write(data)
            sealer.append(data[:-1].split(b"\n"), journal.stat().st_size)
            sealer.seal(now=period * 60)
            mirror.sync_now()
        seals = {f"{journal.name}.seals/{p.name}": p.read_bytes() for _, p in list_seals(journal)}
        assert len(seals) == 3
        for _, path in list_seals(journal):  # the attacker removes the local seals
            path.unlink()
        mirror.sync_now()
    finally:
        mirror.close()
    client = gcs_server.client()
    names = [b.name for b in client.list_blobs(gcs_bucket.name, prefix=PREFIX + "/")]
    assert sum(n.startswith(f"{PREFIX}/seals/dt=") and n.endswith(".note") for n in names) == 3
    pulled = tmp_path / "pulled"
    report = pull(f"gs://{gcs_bucket.name}/{PREFIX}", pulled, client=client)
    assert report.ok, report.problems
    remote = {
        p.relative_to(pulled).as_posix(): p.read_bytes() for p in pulled.rglob("*") if p.is_file()
    }
    assert {k: v for k, v in remote.items() if k.endswith(".note")} == seals
    # The bucket's copy, put back beside the journal, still proves it.
    for name, data in seals.items():
        (tmp_path / name).write_bytes(data)
    report = verify_journal_seals(journal, verifiers=[signer.verifier()])
    assert report.ok and report.sealed_lines == 30
