"""Forward-secure sealing keys: a host taken over at time t cannot re-seal what came before.

A simpler form of systemd-journald's Forward Secure Sealing. ``keygen
--forward-secure`` draws an initial secret ``K_0``; time from the key's
``start`` is cut into epochs of ``interval`` seconds (epoch ``i`` covers
``[start + i*interval, start + (i+1)*interval)``), and::

    K_(i+1)   = HMAC-SHA256(K_i, "audit-logging fss v1 evolve")     one-way
    seed_i    = HMAC-SHA256(K_i, "audit-logging fss v1 ed25519")
    epoch key = the Ed25519 key of seed_i

The writer's state file holds only the current ``K_i``. Moving to a later
epoch derives the next secrets and overwrites the old one (the file is
rewritten in place and replaced atomically, both fsynced), so whoever takes
the host over in epoch ``t`` finds ``K_t`` and cannot compute any earlier
epoch's key: seals of epochs before ``t`` stay unforgeable.

A forward-secure seal is a checkpoint with the extension line ``fss-epoch
<i>``, signed as an ordinary C2SP Ed25519 note signature under the key's name
by epoch ``i``'s key (its key ID is that epoch key's, so any signed-note tool
given ``verifier_key_string(i)`` checks it).

The verification key is ``K_0`` with the name, start and interval
(``FSS-VERIFY+<name>+<start>+<interval>+<base64 K_0>``). It derives every
epoch's key, so whoever holds it CAN FORGE seals of every epoch: it is printed
once by ``keygen`` and belongs off the host, with the auditor (a password
manager, a vault, a sealed envelope), never beside the logs. A verifier checks
each seal with the key of the epoch the seal states and no other (the lesson
of journald's CVE-2023-31439), and checks the epochs against the lines'
times (:mod:`audit_logging.seals.verify`).

Key material in memory is held in ``bytearray`` objects the class zeroes when
it moves on; copies made inside ``hmac`` and ``cryptography`` are beyond its
reach, and on copy-on-write filesystems or SSDs an overwrite in place may
leave old blocks on the device: keep the state file on an encrypted volume
where that matters.
"""

from __future__ import annotations

import base64
import hmac
import json
import math
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from audit_logging.seals.checkpoint import EPOCH_PREFIX, Checkpoint, sign_checkpoint
from audit_logging.seals.note import NoteError, Signature, Signer, Verifier

__all__ = ["DEFAULT_INTERVAL", "ForwardKey", "ForwardKeyError", "VerificationKey"]

DEFAULT_INTERVAL = 15 * 60  # journald's default sealing interval
_EVOLVE = b"audit-logging fss v1 evolve"
_SEED = b"audit-logging fss v1 ed25519"
_STATE_FORMAT = "audit-logging-fss-state/1"
_STATE_SIZE = 512  # fixed, so a rewrite in place covers every byte of the old state
_VERIFY_PREFIX = "FSS-VERIFY"


class ForwardKeyError(NoteError):
    """A malformed verification key or state file, or an epoch the key can no longer sign."""


def _evolve(secret: bytes | bytearray) -> bytes:
    return hmac.digest(bytes(secret), _EVOLVE, "sha256")


def _seed(secret: bytes | bytearray) -> bytes:
    return hmac.digest(bytes(secret), _SEED, "sha256")


def _epoch_at(start: int, interval: int, t: float) -> int:
    return max(0, math.floor((t - start) / interval))


@dataclass(frozen=True)
class VerificationKey:
    """``K_0`` with the key's name, start (Unix seconds) and epoch length: every epoch's key."""

    name: str
    start: int
    interval: int
    secret: bytes

    def key_string(self) -> str:
        encoded = base64.b64encode(self.secret).decode("ascii")
        return f"{_VERIFY_PREFIX}+{self.name}+{self.start}+{self.interval}+{encoded}"

    @classmethod
    def parse(cls, text: str) -> VerificationKey:
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[0] != _VERIFY_PREFIX:
            raise ForwardKeyError("not a forward-secure verification key (FSS-VERIFY+...)")
        _, name, start, interval, encoded = parts
        try:
            secret = base64.b64decode(encoded, validate=True)
            key = cls(name, int(start), int(interval), secret)
        except ValueError as exc:
            raise ForwardKeyError("malformed forward-secure verification key") from exc
        if len(secret) != 32 or key.interval <= 0 or not name:
            raise ForwardKeyError("malformed forward-secure verification key")
        return key

    def epoch_at(self, t: float) -> int:
        return _epoch_at(self.start, self.interval, t)

    def verifiers(self, epochs: set[int]) -> dict[int, Verifier]:
        """Each listed epoch's verifier, derived from ``K_0`` in one pass."""
        out: dict[int, Verifier] = {}
        secret = self.secret
        for epoch in range(max(epochs, default=-1) + 1):
            if epoch in epochs:
                out[epoch] = Signer.from_seed(self.name, _seed(secret)).verifier()
            secret = _evolve(secret)
        return out

    def verifier_key_string(self, epoch: int) -> str:
        """Epoch ``epoch``'s key as a standard C2SP verifier key string."""
        return self.verifiers({epoch})[epoch].key_string()


class ForwardKey:
    """The writer's forward-secure key: a state file holding the current epoch's secret only."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        state = self._load()
        self.name: str = state["name"]
        self.start: int = int(state["start"])
        self.interval: int = int(state["interval"])
        self.epoch: int = int(state["epoch"])
        self._secret = bytearray(base64.b64decode(state["secret"], validate=True))
        if len(self._secret) != 32 or self.interval <= 0:
            raise ForwardKeyError(f"{self.path}: malformed forward-secure state")

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        name: str = "audit-logging/fss",
        interval: int = DEFAULT_INTERVAL,
        start: int | None = None,
    ) -> tuple[ForwardKey, VerificationKey]:
        """Draw ``K_0``, write the state file (mode 0o600, never over an existing one)."""
        if interval <= 0:
            raise ForwardKeyError("the epoch interval is a positive number of seconds")
        Signer.from_seed(name, bytes(32))  # the name must be a valid key name
        secret = secrets.token_bytes(32)
        start = int(time.time()) if start is None else start
        data = _state_bytes(name, start, interval, 0, secret)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(Path(path).parent)
        return cls(path), VerificationKey(name, start, interval, secret)

    def _load(self) -> dict[str, str]:
        last: Exception | None = None
        # The ``.tmp`` copy is the new state written before the main file was;
        # it is read only when a crash left the main file unreadable.
        for candidate in (self.path, self.path.with_name(self.path.name + ".tmp")):
            try:
                state = json.loads(candidate.read_bytes())
                if state.get("format") == _STATE_FORMAT:
                    return dict(state)
            except (OSError, ValueError) as exc:
                last = exc
        raise ForwardKeyError(f"{self.path}: no readable forward-secure state") from last

    def epoch_at(self, t: float) -> int:
        return _epoch_at(self.start, self.interval, t)

    def advance(self, epoch: int) -> None:
        """Move to ``epoch``: derive its secret, overwrite the old one on disk and in memory."""
        if epoch < self.epoch:
            raise ForwardKeyError(f"epoch {epoch} is over: the key is at epoch {self.epoch}")
        if epoch == self.epoch:
            return
        secret = self._secret
        for _ in range(epoch - self.epoch):
            new = bytearray(_evolve(secret))
            secret[:] = bytes(len(secret))
            secret = new
        self._secret, self.epoch = secret, epoch
        self._save()

    def _save(self) -> None:
        data = _state_bytes(self.name, self.start, self.interval, self.epoch, self._secret)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        # Overwrite the old state where it lies (same length, so every byte of
        # the old secret), then swap the files; a crash at any step leaves one
        # readable state, never the old secret beside the new.
        fd = os.open(self.path, os.O_WRONLY)
        try:
            os.pwrite(fd, data, 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)

    def current_signer(self) -> tuple[int, Signer]:
        """``(epoch, signer)`` of the key's current epoch, without moving on."""
        return self.epoch, Signer.from_seed(self.name, _seed(self._secret))

    def signer(self, now: float | None = None) -> tuple[int, Signer]:
        """``(epoch, signer)`` for the epoch of ``now``, advancing (and erasing) the key first.

        A clock that went back signs with the key's current epoch: earlier keys are gone.
        """
        self.advance(max(self.epoch, self.epoch_at(time.time() if now is None else now)))
        return self.epoch, Signer.from_seed(self.name, _seed(self._secret))

    def sign(
        self, checkpoint: Checkpoint, now: float | None = None, keep: tuple[Signature, ...] = ()
    ) -> tuple[Checkpoint, bytes]:
        """The checkpoint with its ``fss-epoch`` line, signed by this epoch's key."""
        epoch, signer = self.signer(now)
        extensions = tuple(e for e in checkpoint.extensions if not e.startswith(EPOCH_PREFIX))
        sealed = Checkpoint(
            checkpoint.origin, checkpoint.size, checkpoint.root,
            (*extensions, f"{EPOCH_PREFIX}{epoch}"),
        )  # fmt: skip
        return sealed, sign_checkpoint(sealed, [signer], keep)


def _state_bytes(
    name: str, start: int, interval: int, epoch: int, secret: bytes | bytearray
) -> bytes:
    state = {
        "format": _STATE_FORMAT,
        "name": name,
        "start": start,
        "interval": interval,
        "epoch": epoch,
        "secret": base64.b64encode(bytes(secret)).decode("ascii"),
    }
    text = json.dumps(state, separators=(",", ":")).encode("utf-8")
    if len(text) >= _STATE_SIZE:
        raise ForwardKeyError("the key name is too long for the state file")
    return text.ljust(_STATE_SIZE - 1) + b"\n"


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
