"""The per-folder manifest: evidence that a deleted file cannot hide.

``.audit-manifest.jsonl`` in each output folder gets one line per event in a
file's life, appended by the writer that caused it::

    {"timestamp":…,"op":"created","file":"ml-platform-2026-05-27.jsonl","kind":"journal","seq":1,"hash":…}
    {"timestamp":…,"op":"batch","file":"audit_log.csv","start":0,"end":412,"sha256":…,"seq":2,"hash":…}
    {"timestamp":…,"op":"sealed","file":"ml-platform-2026-05-27.jsonl","last_seq":812,"last_hash":…,"size":…,"seq":3,"hash":…}
    {"timestamp":…,"op":"retired","file":"2026-05-27_10-00-00_nan_1a2b3c4d.json","reason":"max_age_days","seq":4,"hash":…}

``op`` is ``created`` (a file begun; a whole-written file such as a warning
carries its ``sha256`` and ``size``), ``batch`` (bytes ``[start, end)`` of a
file without a chain of its own, the default five-column CSV, with their
SHA-256), ``rotated`` or ``sealed`` (a journal closed: its final digest),
``retired`` (removed on purpose by retention). The manifest is hash-chained
like a journal (``seq``, ``hash``: SHA-256, or HMAC-SHA256 with
``AUDIT_LOG_HMAC_KEY``), so an edited or deleted manifest line is named too.
``audit-logging verify`` checks every file the manifest names.

Writers call :func:`append` (or the helpers) after the bytes are on disk;
appends from several processes serialise on the manifest's own lock. A writer
passes ``on_error``: a manifest that cannot be written is then reported
through it rather than raised, so that the batch already on disk is not sent
back to be retried (which would write it twice).
This module imports only ``_files``, ``chain`` and ``schema``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

import portalocker

from audit_logging._files import chunks_backwards
from audit_logging.chain import GENESIS, Hasher, hasher_from_env, seq_of, split_hash
from audit_logging.schema import dumps, utc_now

__all__ = ["MANIFEST_NAME", "append", "batch", "created", "retired", "sealed"]

#: The manifest's name in each output folder (the same as ``formats.MANIFEST_NAME``).
MANIFEST_NAME = ".audit-manifest.jsonl"
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _tail(fd: int, size: int) -> tuple[int, bytes]:
    """``(seq, hash)`` of the manifest's last line, ``(0, GENESIS)`` when it has none."""
    rest = b""
    for _, piece in chunks_backwards(fd, 0, size):
        rest = piece + rest
        lines = rest.rstrip(b"\n").split(b"\n")
        if len(lines) > 1 or len(rest) >= size:
            parts = split_hash(lines[-1])
            if parts is not None:
                seq = seq_of(parts[0])
                if seq is not None:
                    return seq, parts[1].encode("ascii")
            return 0, GENESIS.encode("ascii")
    return 0, GENESIS.encode("ascii")


OnError = Callable[[OSError], None]


def append(
    directory: str | os.PathLike[str],
    op: str,
    file: str,
    *,
    hasher: Hasher | None = None,
    on_error: OnError | None = None,
    **fields: Any,
) -> None:
    """Append one chained line ``{timestamp, op, file, **fields, seq, hash}`` to the manifest.

    ``file`` is the file's name relative to ``directory``. When the manifest
    cannot be written, ``on_error(exc)`` is called, or the ``OSError`` raised
    without it.
    """
    try:
        _append(directory, op, file, hasher or hasher_from_env(), fields)
    except OSError as exc:
        if on_error is None:
            raise
        on_error(exc)


def _append(
    directory: str | os.PathLike[str], op: str, file: str, hasher: Hasher, fields: dict[str, Any]
) -> None:
    path = os.path.join(os.fspath(directory), MANIFEST_NAME)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _O_CLOEXEC | _O_NOFOLLOW, 0o600)
    try:
        portalocker.lock(fd, portalocker.LockFlags.EXCLUSIVE)
        try:
            size = os.fstat(fd).st_size
            rfd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
            try:
                seq, previous = _tail(rfd, size)
            finally:
                os.close(rfd)
            body = dumps({"timestamp": utc_now(), "op": op, "file": file, **fields})
            unhashed = b'%s,"seq":%d}' % (body[:-1], seq + 1)
            link = hasher.link(previous, unhashed)
            prefix = b"\n" if size and not _ends_with_newline(path, size) else b""
            os.write(fd, prefix + b'%s,"hash":"%s"}\n' % (unhashed[:-1], link))
        finally:
            portalocker.unlock(fd)
    finally:
        os.close(fd)


def _ends_with_newline(path: str, size: int) -> bool:
    with open(path, "rb") as fh:
        fh.seek(size - 1)
        return fh.read(1) == b"\n"


def created(
    directory: str | os.PathLike[str],
    file: str,
    kind: str,
    data: bytes | None = None,
    *,
    on_error: OnError | None = None,
) -> None:
    """A file begun; ``data``: the whole content of a file written once (a warning file)."""
    if data is None:
        append(directory, "created", file, kind=kind, on_error=on_error)
    else:
        digest = hashlib.sha256(data).hexdigest()
        append(
            directory, "created", file, kind=kind, size=len(data), sha256=digest,
            on_error=on_error,
        )  # fmt: skip


def batch(
    directory: str | os.PathLike[str],
    file: str,
    start: int,
    data: bytes,
    *,
    on_error: OnError | None = None,
) -> None:
    """Bytes ``data`` appended at offset ``start`` of ``file`` (a file without its own chain)."""
    append(
        directory,
        "batch",
        file,
        start=start,
        end=start + len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        on_error=on_error,
    )


def sealed(
    directory: str | os.PathLike[str],
    file: str,
    *,
    last_seq: int,
    last_hash: str,
    size: int,
    op: str = "sealed",
    on_error: OnError | None = None,
) -> None:
    """A journal closed (``op="sealed"``) or left for the next day's (``op="rotated"``)."""
    append(
        directory, op, file, last_seq=last_seq, last_hash=last_hash, size=size,
        on_error=on_error,
    )  # fmt: skip


def retired(
    directory: str | os.PathLike[str], file: str, reason: str, *, on_error: OnError | None = None
) -> None:
    """A file removed on purpose (retention): ``verify`` reports it as retired, not missing."""
    append(directory, "retired", file, reason=reason, on_error=on_error)
