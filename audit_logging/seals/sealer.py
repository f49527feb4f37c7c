"""The writer's side of sealing one journal: keep its tree, write one signed checkpoint per period.

``<journal>.seals/`` holds the tree's tiles (``tree.tiles``) and one signed
checkpoint per sealing period, ``<period>.note``: the forward-secure epoch,
or for an Ed25519 key alone ``floor(Unix time / interval)``. While a period
lasts its seal is replaced (atomically) by each newer one; once it is over
its file is never written again. So a journal has one seal per period in
which it grew. A forward-secure period's last seal is the one made at the
first call after the period ended, still with that period's key, which is
then erased: it covers every line written in the period.

A writer calls :meth:`JournalSealer.append` with the lines of each batch it
appended (under the journal's lock, so the tree follows the file even when
several processes write it), and :meth:`JournalSealer.seal` at each digest
interval and at close; the latter signs, which is what may be moved off the
writer's thread.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from audit_logging.seals.checkpoint import (
    EPOCH_PREFIX,
    Checkpoint,
    read_checkpoint,
    sign_checkpoint,
)
from audit_logging.seals.forward import DEFAULT_INTERVAL, ForwardKey
from audit_logging.seals.note import NoteError, Signer, parse_note
from audit_logging.seals.tiles import JournalTree, seals_dir

__all__ = ["JournalSealer", "default_origin", "list_seals", "seal_path"]


def default_origin(journal: str | os.PathLike[str]) -> str:
    """``audit-logging/<host>/<journal file name>``: names the log a checkpoint is of."""
    host = socket.gethostname().replace(" ", "-").replace("+", "-") or "localhost"
    return f"audit-logging/{host}/{Path(journal).name}"


def seal_path(journal: str | os.PathLike[str], period: int) -> Path:
    return seals_dir(journal) / f"{period}.note"


def list_seals(journal: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """``(period, path)`` of every seal file of a journal, oldest period first."""
    folder = seals_dir(journal)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        stem, dot, ext = name.partition(".")
        if dot and ext == "note" and stem.isdigit():
            out.append((int(stem), folder / name))
    return sorted(out)


def latest_seal(journal: str | os.PathLike[str]) -> bytes | None:
    """The signed note of a journal's largest seal, unchecked (that is the reader's job)."""
    best: tuple[int, bytes] | None = None
    for _, path in list_seals(journal):
        data = path.read_bytes()
        try:
            size = read_checkpoint(data).size
        except NoteError:
            continue
        if best is None or size >= best[0]:
            best = (size, data)
    return best[1] if best else None


class JournalSealer:
    """Keeps one journal's tree and writes its seals (Ed25519 and/or forward-secure key)."""

    def __init__(
        self,
        journal: str | os.PathLike[str],
        signer: Signer | None = None,
        forward_key: ForwardKey | None = None,
        origin: str | None = None,
        interval: int = DEFAULT_INTERVAL,
    ) -> None:
        if signer is None and forward_key is None:
            raise ValueError("a sealer needs a signing key or a forward-secure key")
        self.journal = Path(journal)
        self.signer = signer
        self.forward_key = forward_key
        self.origin = origin or default_origin(journal)
        self.interval = forward_key.interval if forward_key is not None else interval
        self.tree = (
            JournalTree.open(self.journal) if self.journal.exists() else JournalTree(journal)
        )
        last = latest_seal(journal)
        self.sealed_size = read_checkpoint(last).size if last else -1

    def append(self, lines: list[bytes], end_offset: int, fd: int | None = None) -> None:
        """Add a batch just written; with ``fd``, other processes' lines before it first."""
        start = end_offset - sum(len(line) + 1 for line in lines)
        if fd is not None and start > self.tree.offset:
            self.tree.catch_up(fd, start)
        self.tree.append(lines, end_offset)

    def after_write(self, fd: int, data: bytes, end_offset: int) -> None:
        """The writer's one call per batch, under the journal's lock, after appending ``data``.

        ``data`` are the batch's bytes (whole lines, each ending with a newline)
        and ``end_offset`` the file's size after them. When the tree does not
        end where the batch began (another process wrote, or a torn line was
        closed by the batch's leading newline) the tree reads the file from
        its end instead, so it always follows the file's bytes.
        """
        start = end_offset - len(data)
        if start == self.tree.offset and data.endswith(b"\n"):
            self.tree.append(data[:-1].split(b"\n"), end_offset)
        else:
            self.tree.catch_up(fd, end_offset)

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.origin, self.tree.size, self.tree.root())

    def seal(self, now: float | None = None) -> Path | None:
        """Write the checkpoint of the tree as it is, signed, as this period's seal.

        With a forward-secure key the seal is signed by the key's current
        epoch, and only then does the key move on to the epoch of ``now``
        (erasing the old secret): the lines of an epoch are sealed by that
        epoch's key, or an earlier one, never a later one, however late the
        call. Call it at each digest interval even when nothing was written,
        so an idle writer does not keep an old epoch's key. Returns the seal
        written, or ``None`` when nothing was written since the last seal.
        """
        now = time.time() if now is None else now
        self.tree.flush()
        cp = self.checkpoint()
        path = None if cp.size == self.sealed_size else self._write(cp, now)
        if self.forward_key is not None:
            fk = self.forward_key
            fk.advance(max(fk.epoch, fk.epoch_at(now)))
        return path

    def _write(self, cp: Checkpoint, now: float) -> Path:
        signers = [self.signer] if self.signer is not None else []
        if self.forward_key is not None:
            # One note, one text (with its epoch line), signed by the epoch's
            # key and by the Ed25519 key when there is one.
            period, fss = self.forward_key.current_signer()
            cp = Checkpoint(cp.origin, cp.size, cp.root, (f"{EPOCH_PREFIX}{period}",))
            signers.append(fss)
        else:
            period = int(now // self.interval)
        data = sign_checkpoint(cp, signers)
        parse_note(data)  # never write a seal that does not parse
        path = seal_path(self.journal, period)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self.sealed_size = cp.size
        return path
