"""The proof of one line: checked by an auditor without the rest of the log.

A bundle is a small JSON document::

    {"format": "audit-logging-proof/1",
     "file": "ml-platform-2026-05-27.jsonl",
     "index": 41,                      # the line's leaf index (line number - 1)
     "line": "{\\"timestamp\\": ...}",  # the line as written, without its newline
     "tree_size": 1000,
     "inclusion": ["<base64 hash>", ...],   # RFC 6962 audit path, leaf upwards
     "checkpoint": "<the signed C2SP checkpoint, as in the seal file>"}

:func:`check_proof` verifies the checkpoint's signature (an Ed25519 public
key, or a forward-secure verification key and the epoch the checkpoint
states), then the line's inclusion in the tree the checkpoint signs. A line
that is not valid UTF-8 is carried as ``line_base64`` instead.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit_logging.seals.checkpoint import Checkpoint, open_checkpoint, read_checkpoint
from audit_logging.seals.forward import VerificationKey
from audit_logging.seals.merkle import MerkleError, leaf_hash, verify_inclusion
from audit_logging.seals.note import NoteError, OpenedNote, Verifier
from audit_logging.seals.sealer import latest_seal
from audit_logging.seals.tiles import TreeReader

__all__ = ["FORMAT", "ProofError", "ProvedLine", "check_proof", "index_of_seq", "prove"]

FORMAT = "audit-logging-proof/1"


class ProofError(ValueError):
    """A bundle that does not prove its line, or a line that cannot be proved."""


@dataclass(frozen=True)
class ProvedLine:
    """What a checked bundle proves: ``line`` is line ``index + 1`` of the signed log."""

    line: bytes
    index: int
    checkpoint: Checkpoint
    signed_by: tuple[str, ...]


def prove(
    journal: str | os.PathLike[str], index: int, checkpoint: bytes | None = None
) -> dict[str, Any]:
    """The bundle proving line ``index + 1`` of ``journal`` against a checkpoint.

    ``checkpoint`` is a signed note; by default the journal's latest seal.
    The tree is read from the tiles beside the journal, so this costs a few
    milliseconds whatever the journal's length.
    """
    journal = Path(journal)
    if checkpoint is None:
        checkpoint = latest_seal(journal)
        if checkpoint is None:
            raise ProofError(f"{journal}: no seal to prove against")
    cp = read_checkpoint(checkpoint)
    if not 0 <= index < cp.size:
        raise ProofError(f"line {index + 1} is not under the checkpoint ({cp.size} lines)")
    changed = f"{journal} does not match its seal of {cp.size} lines: it was changed"
    with TreeReader(journal) as tree:
        if tree.size < cp.size:
            raise ProofError(f"{journal} has {tree.size} lines, fewer than its seal's {cp.size}")
        try:
            if tree.root(cp.size) != cp.root:
                raise ProofError(changed)
            line = tree.line(index)
            path = tree.inclusion(index, cp.size)
        except MerkleError as exc:  # lines moved under the tiles' offsets
            raise ProofError(f"{changed} ({exc})") from exc
    bundle: dict[str, Any] = {"format": FORMAT, "file": journal.name, "index": index}
    try:
        bundle["line"] = line.decode("utf-8")
    except UnicodeDecodeError:
        bundle["line_base64"] = base64.b64encode(line).decode("ascii")
    bundle["tree_size"] = cp.size
    bundle["inclusion"] = [base64.b64encode(h).decode("ascii") for h in path]
    bundle["checkpoint"] = checkpoint.decode("utf-8")
    return bundle


def index_of_seq(journal: str | os.PathLike[str], seq: int) -> int:
    """The leaf index of the journal line whose ``seq`` is ``seq`` (seq counts lines from 1)."""
    with TreeReader(journal) as tree:
        if not 1 <= seq <= tree.size:
            raise ProofError(f"{journal} has no line with seq {seq} ({tree.size} lines)")
        if b',"seq":%d,' % seq not in tree.line(seq - 1)[-120:]:
            raise ProofError(f"line {seq} of {journal} does not carry seq {seq}")
    return seq - 1


def _verifiers_for(
    note: str,
    public_key: Verifier | Iterable[Verifier] | None,
    verification_key: VerificationKey | None,
) -> list[Verifier]:
    verifiers: list[Verifier] = []
    if isinstance(public_key, Verifier):
        verifiers.append(public_key)
    elif public_key is not None:
        verifiers.extend(public_key)
    if verification_key is not None:
        epoch = read_checkpoint(note).epoch
        if epoch is None:
            raise ProofError("the checkpoint carries no forward-secure epoch")
        verifiers.append(verification_key.verifiers({epoch})[epoch])
    if not verifiers:
        raise ProofError("a proof is checked against a public key or a verification key")
    return verifiers


def check_proof(
    bundle: dict[str, Any] | str | bytes,
    public_key: Verifier | Iterable[Verifier] | None = None,
    *,
    verification_key: VerificationKey | None = None,
) -> ProvedLine:
    """Verify a bundle; raise :class:`ProofError` naming what does not hold.

    ``public_key``: verifiers of the Ed25519 key (see ``keys.load_verifiers``);
    ``verification_key``: a forward-secure key (the epoch's own key is derived).
    A verification key for both kinds of signature may be given; each given
    key must have signed the checkpoint.
    """
    if not isinstance(bundle, dict):
        try:
            bundle = json.loads(bundle)
        except ValueError as exc:
            raise ProofError("the bundle is not JSON") from exc
        if not isinstance(bundle, dict):
            raise ProofError("the bundle is not a JSON object")
    if bundle.get("format") != FORMAT:
        raise ProofError(f"not a {FORMAT} bundle")
    try:
        note = str(bundle["checkpoint"])
        index = int(bundle["index"])
        size = int(bundle["tree_size"])
        if "line" in bundle:
            line = str(bundle["line"]).encode("utf-8")
        else:
            line = base64.b64decode(bundle["line_base64"], validate=True)
        path = [base64.b64decode(h, validate=True) for h in bundle["inclusion"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ProofError(f"malformed bundle: {exc}") from exc
    try:
        checkpoint, opened = open_checkpoint(
            note, _verifiers_for(note, public_key, verification_key)
        )
    except NoteError as exc:
        raise ProofError(f"the checkpoint's signature does not hold: {exc}") from exc
    _require_each_key(opened, public_key, verification_key, checkpoint)
    if checkpoint.size != size:
        raise ProofError(f"the bundle says {size} lines, its checkpoint {checkpoint.size}")
    try:
        verify_inclusion(index, size, leaf_hash(line), path, checkpoint.root)
    except MerkleError as exc:
        raise ProofError(f"the line is not line {index + 1} of the signed log: {exc}") from exc
    return ProvedLine(line, index, checkpoint, tuple(s.name for s in opened.verified))


def _require_each_key(
    opened: OpenedNote,
    public_key: Verifier | Iterable[Verifier] | None,
    verification_key: VerificationKey | None,
    checkpoint: Checkpoint,
) -> None:
    """With both kinds of key given, a signature by either one alone is not enough."""
    if verification_key is None or public_key is None:
        return
    epoch = checkpoint.epoch
    assert epoch is not None
    fss = verification_key.verifiers({epoch})[epoch]
    ids = {(s.name, s.key_id) for s in opened.verified}
    if (fss.name, fss.key_id) not in ids:
        raise ProofError("the checkpoint is not signed by its epoch's forward-secure key")
    if ids == {(fss.name, fss.key_id)}:
        raise ProofError("the checkpoint is not signed by the public key given")
