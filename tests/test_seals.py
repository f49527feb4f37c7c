"""Sealing a journal, verifying it, forward-secure keys against a host taken over, proofs, keygen."""

from __future__ import annotations

import json
import shutil
import stat
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

pytest.importorskip("cryptography")

from audit_logging.seals.checkpoint import Checkpoint, read_checkpoint, sign_checkpoint
from audit_logging.seals.forward import ForwardKey, ForwardKeyError, VerificationKey
from audit_logging.seals.keys import keygen, load_signer, load_verification_key, load_verifiers
from audit_logging.seals.note import Signer, Verifier, open_note
from audit_logging.seals.proofs import ProofError, check_proof, index_of_seq, prove
from audit_logging.seals.sealer import JournalSealer, list_seals, seal_path
from audit_logging.seals.tiles import seals_dir
from audit_logging.seals.verify import verify_journal_seals

T0 = 1_780_000_000  # the forward-secure key's start (Unix seconds)
EPOCH = 100  # seconds per epoch in these tests


def line_at(t: float, i: int) -> bytes:
    ts = datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return b'{"timestamp":"%s","event":"TRAINING_PROGRESS","step":%d,"seq":%d,"hash":"h"}' % (
        ts.encode(),
        i,
        i + 1,
    )


def write(sealer: JournalSealer, lines: list[bytes]) -> None:
    with open(sealer.journal, "ab") as f:
        f.write(b"".join(x + b"\n" for x in lines))
    sealer.append(lines, sealer.journal.stat().st_size)


@pytest.fixture
def fss(tmp_path: Path) -> tuple[Path, VerificationKey]:
    files = keygen(tmp_path / "keys", forward_secure=True, interval=EPOCH, start=T0)
    return files.private, load_verification_key(files.verifier_key)


def run_epochs(journal: Path, state: Path, epochs: int, per_epoch: int = 10) -> JournalSealer:
    """A writer that logs ``per_epoch`` lines in each epoch and seals every 20 s."""
    journal.touch()
    sealer = JournalSealer(
        journal, forward_key=ForwardKey(state), origin="audit-logging/test/j.jsonl"
    )
    i = 0
    for epoch in range(epochs):
        for k in range(per_epoch):
            t = T0 + epoch * EPOCH + k * (EPOCH - 20) / per_epoch
            write(sealer, [line_at(t, i)])
            i += 1
            if k % 3 == 2:
                sealer.seal(now=t + 1)
        sealer.seal(now=T0 + epoch * EPOCH + EPOCH - 5)
    return sealer


def test_forward_secure_seals_verify_each_with_its_own_epoch_key(tmp_path: Path, fss) -> None:
    state, vk = fss
    journal = tmp_path / "j.jsonl"
    sealer = run_epochs(journal, state, epochs=4)
    assert [p for p, _ in list_seals(journal)] == [
        0,
        1,
        2,
        3,
    ]  # one seal per epoch, the latest kept
    write(sealer, [line_at(T0 + 4 * EPOCH + 1, 40), line_at(T0 + 4 * EPOCH + 2, 41)])
    report = verify_journal_seals(journal, verification_key=vk, now=T0 + 4 * EPOCH + 3)
    assert report.ok, report.problems
    assert (report.lines, report.sealed_lines, report.unsealed_lines, report.seals) == (
        42,
        40,
        2,
        4,
    )
    # Each seal is a standard note signature by that epoch's key only.
    note = seal_path(journal, 2).read_bytes()
    assert read_checkpoint(note).epoch == 2
    open_note(note, [Verifier.from_key_string(vk.verifier_key_string(2))])
    with pytest.raises(Exception, match="no verifiable signatures"):
        open_note(note, [Verifier.from_key_string(vk.verifier_key_string(3))])


def test_the_state_file_keeps_only_the_current_epoch_s_secret(tmp_path: Path, fss) -> None:
    state, vk = fss
    key = ForwardKey(state)
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    first = json.loads(state.read_bytes())["secret"]
    key.advance(3)
    data = state.read_bytes()
    assert json.loads(data)["epoch"] == 3 and first.encode() not in data
    assert len(data) == 512 and not state.with_name(state.name + ".tmp").exists()
    with pytest.raises(ForwardKeyError):
        key.advance(2)  # an earlier epoch's key is gone for good
    # The epoch-3 key the state signs with is the one the verification key derives.
    epoch, signer = ForwardKey(state).signer(now=T0 + 3 * EPOCH + 1)
    assert epoch == 3 and signer.verifier().key_string() == vk.verifier_key_string(3)


def taken_over(tmp_path: Path, fss, epochs: int = 5) -> tuple[Path, JournalSealer, VerificationKey]:
    """The writer ran ``epochs`` epochs; the attacker copies the disk during the last."""
    state, vk = fss
    journal = tmp_path / "j.jsonl"
    run_epochs(journal, state, epochs=epochs)
    stolen = tmp_path / "stolen"
    stolen.mkdir()
    shutil.copy(journal, stolen / journal.name)
    shutil.copytree(seals_dir(journal), seals_dir(stolen / journal.name))
    shutil.copy(state, stolen / "state")
    lines = (stolen / journal.name).read_bytes().splitlines()
    lines[12] = lines[12].replace(b"TRAINING_PROGRESS", b"TRAINING_COMPLETED")  # a line of epoch 1
    (stolen / journal.name).write_bytes(b"".join(x + b"\n" for x in lines))
    return stolen / journal.name, JournalSealer.__new__(JournalSealer), vk


def reseal_all(journal: Path, state: Path, now: float) -> None:
    sealer = JournalSealer(
        journal, forward_key=ForwardKey(state), origin="audit-logging/test/j.jsonl"
    )
    sealer.sealed_size = -1
    sealer.seal(now=now)


def test_a_host_taken_over_cannot_rewrite_an_earlier_epoch(tmp_path: Path, fss) -> None:
    now = T0 + 4 * EPOCH + 50  # the attacker's time: epoch 4
    journal, _, vk = taken_over(tmp_path, fss)
    state = journal.parent / "state"
    # 1. The old seals kept, everything re-sealed with the key found on the host.
    reseal_all(journal, state, now)
    report = verify_journal_seals(journal, verification_key=vk, now=now)
    assert {p.kind for p in report.problems} == {"seal-mismatch"}
    # Every seal of epochs 0-3 (each also covers the first lines of the next epoch,
    # sealed by the old key before it was erased) no longer holds.
    assert {p.line for p in report.problems} == {13, 23, 33, 43}
    # 2. The old seals deleted: the lines of epochs 0-3 are sealed only in epoch 4, too late.
    for period, path in list_seals(journal):
        if period < 4:
            path.unlink()
    report = verify_journal_seals(journal, verification_key=vk, now=now)
    assert [p.kind for p in report.problems] == ["seal-epoch"] and report.problems[0].line == 1
    # 3. The old seals rewritten: signed by the key the attacker has, they are not their epoch's.
    for epoch in range(4):
        cp = Checkpoint(
            "audit-logging/test/j.jsonl", 10 * (epoch + 1), bytes(32), (f"fss-epoch {epoch}",)
        )
        _, signer = ForwardKey(state).signer(now=now)
        seal_path(journal, epoch).write_bytes(sign_checkpoint(cp, [signer]))
    report = verify_journal_seals(journal, verification_key=vk, now=now)
    assert sorted(p.kind for p in report.problems) == ["seal-epoch"] + ["seal-forged"] * 4
    # 4. Claiming epochs not yet begun is refused too.
    cp = Checkpoint("audit-logging/test/j.jsonl", 50, bytes(32), ("fss-epoch 9",))
    seal_path(journal, 9).write_bytes(
        sign_checkpoint(cp, [Signer.from_seed("audit-logging/fss", bytes(32))])
    )
    assert "seal-epoch" in {
        p.kind for p in verify_journal_seals(journal, verification_key=vk, now=now).problems
    }


def test_a_verifier_that_trusted_a_later_epoch_s_key_would_be_fooled(tmp_path: Path, fss) -> None:
    """Why each seal is checked with ITS epoch's key: the later key signs a valid-looking note."""
    state, vk = fss
    journal = tmp_path / "j.jsonl"
    run_epochs(journal, state, epochs=3)
    _, later = ForwardKey(state).signer(now=T0 + 2 * EPOCH + 1)
    cp = read_checkpoint(seal_path(journal, 0).read_bytes())
    seal_path(journal, 0).write_bytes(
        sign_checkpoint(cp, [later])
    )  # epoch 0's seal, signed by epoch 2
    open_note(seal_path(journal, 0).read_bytes(), [later.verifier()])  # a careless check passes
    report = verify_journal_seals(journal, verification_key=vk, now=T0 + 2 * EPOCH + 50)
    # The forged seal is named, and epoch 0's lines are then sealed only in epoch 1.
    assert [p.kind for p in report.problems] == ["seal-forged", "seal-epoch"]


def test_ed25519_seals_name_an_edit_and_a_forged_seal(tmp_path: Path) -> None:
    files = keygen(tmp_path / "keys")
    signer = load_signer(files.private)
    verifiers = load_verifiers(files.public)
    journal = tmp_path / "j.jsonl"
    journal.touch()
    sealer = JournalSealer(journal, signer=signer, interval=60)
    for i in range(30):
        write(sealer, [line_at(T0 + i, i)])
        if i % 10 == 9:
            sealer.seal(now=T0 + i * 60)
    write(sealer, [line_at(T0 + 40, 30)])
    report = verify_journal_seals(journal, verifiers=verifiers)
    assert report.ok and (report.seals, report.sealed_lines, report.unsealed_lines) == (3, 30, 1)
    assert report.unsealed_bytes == len(line_at(T0 + 40, 30)) + 1
    # Someone without the key edits line 5: the seals of 10, 20 and 30 lines no longer hold.
    data = journal.read_bytes().replace(b'"step":4,', b'"step":40,')
    journal.write_bytes(data)
    assert {
        (p.kind, p.line) for p in verify_journal_seals(journal, verifiers=verifiers).problems
    } == {
        ("seal-mismatch", 10),
        ("seal-mismatch", 20),
        ("seal-mismatch", 30),
    }
    # ... and re-seals with a key of their own: not the public key's signature.
    impostor = JournalSealer(journal, signer=Signer.from_seed("audit-logging", bytes(32)))
    impostor.sealed_size = -1
    for _, path in list_seals(journal):
        path.unlink()
    impostor.seal(now=T0)
    assert [p.kind for p in verify_journal_seals(journal, verifiers=verifiers).problems] == [
        "seal-forged"
    ]
    # Cutting the last lines off is named as well.
    journal.write_bytes(b"".join(journal.read_bytes().splitlines(keepends=True)[:5]))
    impostor.seal(now=T0 + 10_000)  # even a new seal cannot hide that old ones covered more


def test_a_proof_of_one_line_is_checked_without_the_log(tmp_path: Path) -> None:
    files = keygen(tmp_path / "keys")
    journal = tmp_path / "j.jsonl"
    journal.touch()
    sealer = JournalSealer(journal, signer=load_signer(files.private))
    write(sealer, [line_at(T0 + i, i) for i in range(700)])
    sealer.seal(now=T0)
    bundle = prove(journal, index_of_seq(journal, 614))
    text = json.dumps(bundle)
    assert len(text) < 4000
    started = time.perf_counter()
    proved = check_proof(text, load_verifiers(files.public))
    assert time.perf_counter() - started < 0.5
    assert (
        proved.line == line_at(T0 + 613, 613)
        and proved.index == 613
        and proved.checkpoint.size == 700
    )
    with pytest.raises(ProofError, match="not line 614"):
        check_proof(
            {**bundle, "line": bundle["line"].replace("613", "614")}, load_verifiers(files.public)
        )
    with pytest.raises(ProofError, match="not line"):
        check_proof({**bundle, "index": 612}, load_verifiers(files.public))
    other = Verifier.from_public_key(Signer.from_seed("x", bytes(32))._key.public_key())
    with pytest.raises(ProofError, match="signature"):
        check_proof(bundle, [other])
    # A journal edited after its seal cannot be proved against the seal.
    journal.write_bytes(journal.read_bytes().replace(b'"step":3,', b'"step":33,'))
    with pytest.raises(ProofError, match="changed"):
        prove(journal, 5)


def test_a_forward_secure_proof(tmp_path: Path, fss) -> None:
    state, vk = fss
    journal = tmp_path / "j.jsonl"
    run_epochs(journal, state, epochs=2)
    bundle = prove(journal, 3, seal_path(journal, 0).read_bytes())
    assert check_proof(bundle, verification_key=vk).checkpoint.epoch == 0
    wrong = VerificationKey(vk.name, vk.start, vk.interval, bytes(32))
    with pytest.raises(ProofError):
        check_proof(bundle, verification_key=wrong)


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(
    tmp_path: Path,
) -> None:
    files = keygen(tmp_path)
    assert stat.S_IMODE(files.private.stat().st_mode) == 0o600
    assert files.private.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    signer = load_signer(files.private)
    assert signer.verifier().key_string() == files.verifier_key
    assert load_verifiers(files.verifier_key)[0].key_string() == files.verifier_key
    note = sign_checkpoint(Checkpoint("o", 1, bytes(32)), [signer])
    open_note(note, load_verifiers(files.public))  # the PEM public key checks it
    with pytest.raises(FileExistsError):
        keygen(tmp_path)
    fs = keygen(tmp_path, forward_secure=True)
    assert fs.public is None and fs.verifier_key.startswith("FSS-VERIFY+audit-logging/fss+")
    assert stat.S_IMODE(fs.private.stat().st_mode) == 0o600
    k0 = fs.verifier_key.rsplit("+", 1)[1]
    ForwardKey(fs.private).advance(1)
    assert k0 not in fs.private.read_text()  # once the key moved on, K_0 is off the host
    with pytest.raises(FileExistsError):
        keygen(tmp_path, forward_secure=True)


def test_today_s_log_extends_a_checkpoint_kept_last_month(tmp_path: Path) -> None:
    from audit_logging.seals.verify import verify_since

    files = keygen(tmp_path / "keys")
    verifiers = load_verifiers(files.public)
    journal = tmp_path / "j.jsonl"
    journal.touch()
    sealer = JournalSealer(journal, signer=load_signer(files.private), interval=60)
    write(sealer, [line_at(T0 + i, i) for i in range(300)])
    kept = sealer.seal(now=T0).read_bytes()  # what the auditor kept
    write(sealer, [line_at(T0 + i, i) for i in range(300, 700)])
    sealer.seal(now=T0 + 3600)
    assert verify_since(journal, kept, verifiers=verifiers) == []
    # A line before the kept checkpoint rewritten, everything re-sealed: named.
    journal.write_bytes(journal.read_bytes().replace(b'"step":7,', b'"step":8,'))
    JournalSealer(journal, signer=load_signer(files.private)).tree.flush()
    (problem,) = verify_since(journal, kept, verifiers=verifiers)
    assert problem.kind == "since-mismatch" and problem.line == 300
    # A checkpoint not signed by the key is not taken as evidence.
    forged = sign_checkpoint(read_checkpoint(kept), [Signer.from_seed("audit-logging", bytes(32))])
    assert [p.kind for p in verify_since(journal, forged, verifiers=verifiers)] == ["seal-forged"]


def test_the_writer_hook_follows_the_file_through_other_writers_and_a_torn_line(
    tmp_path: Path,
) -> None:
    import os

    from audit_logging.seals.merkle import leaf_hash, root_from_leaves

    journal = tmp_path / "j.jsonl"
    journal.touch()
    sealer = JournalSealer(journal, signer=Signer.from_seed("audit-logging", bytes(32)))
    fd = os.open(journal, os.O_RDWR | os.O_APPEND)
    try:
        for data in [b"a\nb\n", b"c\n", None, b"e\n", b"\nf\n"]:
            if data is None:  # another process's batch, then a torn line it left
                os.write(fd, b"d\nto")
                continue
            os.write(fd, data)
            sealer.after_write(fd, data, os.fstat(fd).st_size)
    finally:
        os.close(fd)
    want = [b"a", b"b", b"c", b"d", b"toe", b"", b"f"]
    assert journal.read_bytes().split(b"\n")[:-1] == want
    assert sealer.tree.root() == root_from_leaves([leaf_hash(x) for x in want])
    sealer.seal(now=T0)
    assert verify_journal_seals(journal, verifiers=[sealer.signer.verifier()]).ok


def test_a_late_seal_uses_the_old_epoch_s_key_and_an_idle_writer_still_erases_keys(
    tmp_path: Path, fss
) -> None:
    state, vk = fss
    journal = tmp_path / "j.jsonl"
    journal.touch()
    sealer = JournalSealer(journal, forward_key=ForwardKey(state))
    write(sealer, [line_at(T0 + 10, 0)])
    path = sealer.seal(now=T0 + 5 * EPOCH + 1)  # the first call comes epochs later
    assert path is not None and path.name == "0.note"  # sealed by the epoch its line was written in
    assert ForwardKey(state).epoch == 5  # then the old secret is gone
    assert sealer.seal(now=T0 + 9 * EPOCH) is None  # nothing new, but the key still moves on
    assert ForwardKey(state).epoch == 9
    assert verify_journal_seals(journal, verification_key=vk, now=T0 + 9 * EPOCH).ok


def test_the_verify_plug_in_fills_a_report_as_the_read_package_prints_it(tmp_path: Path) -> None:
    from dataclasses import dataclass, field

    from audit_logging.seals import verify_seals as plug_in

    @dataclass
    class Report:  # the fields of the read package's VerifyReport that the plug-in fills
        problems: list = field(default_factory=list)
        unproven: list = field(default_factory=list)

    files = keygen(tmp_path / "keys")
    journal = tmp_path / "runs" / "j.jsonl"
    journal.parent.mkdir()
    journal.touch()
    sealer = JournalSealer(journal, signer=load_signer(files.private))
    write(sealer, [line_at(T0 + i, i) for i in range(20)])
    kept = tmp_path / "kept.note"
    kept.write_bytes(sealer.seal(now=T0).read_bytes())
    write(sealer, [line_at(T0 + 20, 20)])
    unsigned = tmp_path / "runs" / "other.jsonl"
    unsigned.write_bytes(line_at(T0, 0) + b"\n")
    seal_files = [p for _, p in list_seals(journal)]
    report = Report()
    plug_in(seal_files, [journal, unsigned], report, public_key=str(files.public), since=kept)
    assert [str(p) for p in report.problems] == [f"{unsigned}: seal: no seal: not signed"]
    assert [str(u) for u in report.unproven] == [
        f"{journal}: unproven: {len(line_at(T0 + 20, 20)) + 1} byte(s), 1 line(s): after the last seal"
    ]
    # The journal deleted, its seals left: named.
    journal.unlink()
    report = Report()
    plug_in(seal_files, [unsigned], report)
    assert [p.as_dict()["message"] for p in report.problems] == [
        "its seals are here but the journal is missing"
    ]


def test_one_note_carries_both_signatures_and_each_key_checks_its_own(tmp_path: Path, fss) -> None:
    state, vk = fss
    files = keygen(tmp_path / "ed")
    journal = tmp_path / "j.jsonl"
    journal.touch()
    sealer = JournalSealer(
        journal, signer=load_signer(files.private), forward_key=ForwardKey(state)
    )
    write(sealer, [line_at(T0 + i, i) for i in range(30)])
    path = sealer.seal(now=T0 + 40)
    assert path is not None and len(path.read_text().split("\n\u2014 ")) == 3  # text + 2 signatures
    verifiers = load_verifiers(files.public)
    for keys in (
        {"verifiers": verifiers},
        {"verification_key": vk},
        {"verifiers": verifiers, "verification_key": vk},
    ):
        assert verify_journal_seals(journal, now=T0 + 50, **keys).ok, keys
    bundle = prove(journal, 7)
    assert check_proof(bundle, verifiers, verification_key=vk).signed_by == (
        "audit-logging",
        "audit-logging/fss",
    )
    # With both keys given, a note signed by one of them only is not enough.
    only_fss = sign_checkpoint(
        read_checkpoint(path.read_bytes()), [ForwardKey(state).current_signer()[1]]
    )
    with pytest.raises(ProofError, match="public key"):
        check_proof({**bundle, "checkpoint": only_fss.decode()}, verifiers, verification_key=vk)
