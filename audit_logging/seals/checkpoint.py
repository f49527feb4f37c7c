"""C2SP tlog checkpoints (https://c2sp.org/tlog-checkpoint) of a file's Merkle tree.

The note text of a checkpoint is::

    <origin>
    <tree size, decimal, no leading zero>
    <base64 of the RFC 6962 root hash>
    [extension lines, each non-empty]

signed as a C2SP note (:mod:`audit_logging.seals.note`). A seal of a journal
is one checkpoint: the origin names the journal (``audit-logging/<host>/<file
name>``), the size counts its lines, the root is the tree of those lines.
A forward-secure seal adds one extension line, ``fss-epoch <i>``, naming the
epoch whose key signed it (see :mod:`audit_logging.seals.forward`).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass

from audit_logging.seals.merkle import HASH_SIZE
from audit_logging.seals.note import (
    NoteError,
    OpenedNote,
    Signature,
    Signer,
    Verifier,
    open_note,
    parse_note,
    sign_note,
)

__all__ = ["Checkpoint", "CheckpointError", "open_checkpoint", "sign_checkpoint"]

_SIZE = re.compile(r"0|[1-9][0-9]*")
EPOCH_PREFIX = "fss-epoch "


class CheckpointError(NoteError):
    """A note whose text is not a checkpoint."""


@dataclass(frozen=True)
class Checkpoint:
    """Origin, tree size, root hash and extension lines of one checkpoint."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        """The note text (ends with a newline)."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode("ascii")]
        return "\n".join([*lines, *self.extensions]) + "\n"

    @property
    def epoch(self) -> int | None:
        """The forward-secure epoch the checkpoint claims (``fss-epoch`` line), if any."""
        for line in self.extensions:
            if line.startswith(EPOCH_PREFIX):
                digits = line[len(EPOCH_PREFIX) :]
                if _SIZE.fullmatch(digits):
                    return int(digits)
        return None

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """The checkpoint a note text states, or :class:`CheckpointError`."""
        if not text.endswith("\n"):
            raise CheckpointError("a checkpoint ends with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError("a checkpoint has at least three lines")
        origin, size, root64, *extensions = lines
        if not origin:
            raise CheckpointError("empty checkpoint origin")
        if not _SIZE.fullmatch(size):
            raise CheckpointError(f"bad checkpoint tree size {size!r}")
        try:
            root = base64.b64decode(root64.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError) as exc:
            raise CheckpointError("bad checkpoint root hash") from exc
        if len(root) != HASH_SIZE:
            raise CheckpointError("a checkpoint root hash is 32 bytes")
        if any(not line for line in extensions):
            raise CheckpointError("empty checkpoint extension line")
        return cls(origin, int(size), root, tuple(extensions))


def sign_checkpoint(
    checkpoint: Checkpoint, signers: Iterable[Signer], keep: Iterable[Signature] = ()
) -> bytes:
    """The checkpoint as a signed note, by every signer (after the kept signatures)."""
    return sign_note(checkpoint.text(), signers, keep)


def open_checkpoint(
    data: bytes | str, verifiers: Iterable[Verifier]
) -> tuple[Checkpoint, OpenedNote]:
    """Check a signed checkpoint's signatures (see :func:`open_note`) and parse its text."""
    opened = open_note(data, verifiers)
    return Checkpoint.parse(opened.text), opened


def read_checkpoint(data: bytes | str) -> Checkpoint:
    """The checkpoint of a signed note WITHOUT checking any signature (to list, not to trust)."""
    text, _ = parse_note(data)
    return Checkpoint.parse(text)
