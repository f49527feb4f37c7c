"""C2SP signed notes and checkpoints against the keys and notes of Go's sumdb/note and the C2SP specs."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

pytest.importorskip("cryptography")

from audit_logging.seals.checkpoint import (
    Checkpoint,
    CheckpointError,
    open_checkpoint,
    sign_checkpoint,
)
from audit_logging.seals.note import (
    InvalidSignatureError,
    NoteError,
    Signature,
    Signer,
    UnverifiedNoteError,
    Verifier,
    key_id,
    open_note,
    parse_note,
    sign_note,
)

V = json.loads((Path(__file__).parent / "data" / "signed_note_vectors.json").read_text("utf-8"))
TEXT, PETER_SIG, ENOCH_SIG = V["text"], V["peter_sig"], V["enoch_sig"]
PETER = Verifier.from_key_string(V["peter_vkey"])
ENOCH = Verifier.from_key_string(V["enoch_vkey"])


def test_go_key_strings_parse_and_every_mangling_is_refused() -> None:
    signer = Signer.from_key_string(V["peter_skey"])
    assert (signer.name, signer.key_id) == ("PeterNeumann", 0xC74F20A3)
    assert signer.verifier().key_string() == V["peter_vkey"]
    assert signer.key_string() == V["peter_skey"]
    assert PETER.key_id == 0xC74F20A3 and ENOCH.key_id == 0xAF0CFE78
    for key, parse in [
        (V["peter_vkey"], Verifier.from_key_string),
        (V["peter_skey"], Signer.from_key_string),
    ]:
        b = key.encode()
        for i in range(len(b) + 1):
            for j in range(i + 1, len(b) + 1):
                if (i, j) != (0, len(b)):
                    with pytest.raises(NoteError):
                        parse(b[i:j].decode())
        for i in range(len(b)):
            mangled = b[:i] + bytes([b[i] + 1]) + b[i + 1 :]
            with pytest.raises(NoteError):
                parse(mangled.decode())
    # Go's own bad keys: a wrong-length key and an unknown algorithm, each with its key ID adjusted.
    for bad in [
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ]:
        with pytest.raises(NoteError):
            Verifier.from_key_string(bad)


def test_signing_gives_go_s_exact_note() -> None:
    signer = Signer.from_key_string(V["peter_skey"])
    want = (TEXT + "\n" + PETER_SIG).encode()
    assert sign_note(TEXT, [signer]) == want
    # An existing signature by the same key is replaced, not repeated.
    stale = Signature("PeterNeumann", 0xC74F20A3, b"BAD")
    assert sign_note(TEXT, [signer], keep=[stale]) == want
    with pytest.raises(NoteError):
        sign_note("abc", [signer])


def test_open_verifies_known_keys_and_ignores_unknown_ones() -> None:
    msg = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    n = open_note(msg, [PETER])
    assert n.text == TEXT
    assert [s.name for s in n.verified] == ["PeterNeumann"]
    assert [(s.name, s.key_id) for s in n.unverified] == [("EnochRoot", 0xAF0CFE78)]
    both = open_note(msg, [PETER, ENOCH])
    assert [s.name for s in both.verified] == ["PeterNeumann", "EnochRoot"] and not both.unverified
    with pytest.raises(UnverifiedNoteError) as err:
        open_note(msg, [])
    assert str(err.value) == "note has no verifiable signatures"
    assert len(err.value.note.unverified) == 2
    # A key sharing the name but not the ID (or the ID but not the name) is someone else's: ignored.
    impostor = Signer.from_seed("PeterNeumann", bytes(range(32)))
    with pytest.raises(UnverifiedNoteError):
        open_note(TEXT + "\n" + PETER_SIG, [impostor.verifier()])


def test_open_rejects_what_go_rejects() -> None:
    with pytest.raises(
        InvalidSignatureError, match="invalid signature for key PeterNeumann\\+c74f20a3"
    ):
        open_note(TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:], [PETER])
    with pytest.raises(NoteError):
        open_note(TEXT + "\n" + PETER_SIG * 101, [PETER])
    # Duplicated signatures count once; a corrupt signature of an unknown key is just unknown.
    dup = TEXT + "\n" + PETER_SIG * 2 + ENOCH_SIG * 2 + ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    n = open_note(dup, [PETER])
    assert len(n.verified) == 1 and len(n.unverified) == 2
    bad_msgs = [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        TEXT
        + "\n"
        + "\u2014 Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
    ]
    for msg in bad_msgs:
        with pytest.raises(NoteError):
            open_note(msg, [PETER])
    with pytest.raises(NoteError):
        open_note(b"\xff" + (TEXT + "\n" + PETER_SIG).encode(), [PETER])


def test_the_c2sp_example_note_parses_and_its_unknown_key_is_ignored() -> None:
    text, sigs = parse_note(V["c2sp_note"])
    assert (
        text.endswith("ed \u00e8 subito sera.\n") and "\n\n" in text
    )  # the text keeps its blank line
    assert [s[0] for s in sigs] == ["quasimodo.example/salvatore"]
    with pytest.raises(UnverifiedNoteError):
        open_note(V["c2sp_note"], [PETER])
    # Adding our signature to it (a co-signer) keeps theirs, and ours verifies.
    ours = Signer.from_seed("audit-logging.example/test", bytes(32))
    kept = [Signature(n, k, s) for n, k, s, _ in sigs]
    cosigned = sign_note(text, [ours], keep=kept)
    n = open_note(cosigned, [ours.verifier()])
    assert n.text == text and len(n.verified) == 1 and n.unverified == tuple(kept)


def test_a_checkpoint_signed_by_sum_golang_org_verifies() -> None:
    cp, opened = open_checkpoint(V["sumdb_checkpoint"], [Verifier.from_key_string(V["sumdb_vkey"])])
    assert cp.origin == "go.sum database tree" and cp.size == 31700353
    assert base64.b64encode(cp.root).decode() == "qINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs="
    assert opened.verified[0].key_id == 0x033DE0AE
    tampered = V["sumdb_checkpoint"].replace("31700353", "31700354")
    with pytest.raises(InvalidSignatureError):
        open_checkpoint(tampered, [Verifier.from_key_string(V["sumdb_vkey"])])


def test_the_c2sp_example_checkpoint_parses() -> None:
    text, sigs = parse_note(V["c2sp_checkpoint"])
    cp = Checkpoint.parse(text)
    assert (cp.origin, cp.size, cp.extensions) == ("example.com/behind-the-sofa", 20852163, ())
    assert cp.text() == text
    assert sigs[0][1] == int.from_bytes(base64.b64decode("Az3grlgt")[:4], "big")


def test_our_checkpoints_round_trip_with_several_signatures() -> None:
    a = Signer.from_seed("audit-logging.example/a", bytes([1]) * 32)
    b = Signer.from_seed("audit-logging.example/b", bytes([2]) * 32)
    cp = Checkpoint(
        "audit-logging/host/ml-platform-2026-05-27.jsonl", 42, bytes(range(32)), ("fss-epoch 3",)
    )
    note = sign_checkpoint(cp, [a, b])
    got, opened = open_checkpoint(note, [b.verifier()])
    assert got == cp and got.epoch == 3
    assert [s.name for s in opened.verified] == ["audit-logging.example/b"]
    # A bare public key (no name known) matches a signature by its key ID.
    bare = Verifier(None, a.public_key)
    assert open_checkpoint(note, [bare])[1].verified[0].name == "audit-logging.example/a"
    assert key_id(a.name, a.public_key) == a.key_id


@pytest.mark.parametrize(
    "text",
    [
        "o\n42\n",
        "\n42\n" + "A" * 43 + "=\n",
        "o\n042\n" + "A" * 43 + "=\n",
        "o\n-1\n" + "A" * 43 + "=\n",
        "o\n1\nAAAA\n",
        "o\n1\n" + "A" * 43 + "=\n\n",
    ],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(CheckpointError):
        Checkpoint.parse(text)
