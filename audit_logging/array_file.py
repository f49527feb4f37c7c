"""The ``audit_log.json`` file outside the handler: reading it under the writers' lock, whole,
and writing a new one (:func:`write_new_array`, the rewrite that regrows the reserve).

:class:`~audit_logging.writers.json_array.JsonArrayHandler` writers serialise
on an exclusive lock of the sibling ``.{name}.lock`` file (:func:`lock_path_for`);
readers take it shared (:func:`reading_lock`) so that they never see a batch
in part. The lock file also records the chain's last ``seq``
(:func:`recorded_seq`), which ``verify`` compares with the file.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

from audit_logging._files import chunks, create_temp, fsync_directory, pwrite_all, shared_lock
from audit_logging.array_layout import CHAIN_STATE_SIZE, PAGE, STATE_SIZE, WS, parse_chain_state

__all__ = [
    "CorruptAuditFileError",
    "lock_path_for",
    "read_array_bytes",
    "read_entries",
    "reading_lock",
    "recorded_seq",
    "scan_lines",
    "skip_whitespace",
    "write_new_array",
]

_MIN_RESERVE = 4 * PAGE - 1  # so that the first entry starts on a page boundary
_CHUNK = 1024 * 1024


class CorruptAuditFileError(ValueError):
    """An existing audit file was not a JSON array; it was set aside."""


def lock_path_for(path: str | os.PathLike[str]) -> str:
    """The writers' lock file of the array at ``path``: ``.{name}.lock`` beside it."""
    directory, name = os.path.split(os.fspath(path))
    return os.path.join(directory, f".{name}.lock")


@contextlib.contextmanager
def reading_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the writers' lock of the array at ``path`` shared: no batch is written meanwhile.

    Without a lock file (no writer has run, or it cannot be opened) this
    holds nothing.
    """
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(shared_lock(lock_path_for(path)))
        except OSError:
            pass
        yield


def read_array_bytes(path: str | os.PathLike[str]) -> bytes:
    """The bytes of an ``audit_log.json``, read while no writer is in the middle of a batch.

    Writers hold an exclusive lock on the sibling lock file while they write;
    this takes it shared for the read (:func:`reading_lock`). Every state of
    the file between two writes is a whole array, but a read that races a
    write can see a page half copied (Linux does not make buffered reads
    atomic against writes). Raises ``FileNotFoundError`` when there is no file.
    """
    with reading_lock(path), open(path, "rb") as fh:
        return fh.read()


def recorded_seq(path: str | os.PathLike[str]) -> int | None:
    """The last ``seq`` the writers' lock file records for the array at ``path``, if current."""
    try:
        with open(lock_path_for(path), "rb") as fh:
            raw = fh.read(STATE_SIZE + CHAIN_STATE_SIZE)
        ino = os.stat(path).st_ino
    except OSError:
        return None
    first = raw[:STATE_SIZE].split()
    if len(first) != 2 or first[0] != b"%d" % ino or not first[1].isdigit():
        return None
    recorded = parse_chain_state(raw[STATE_SIZE:], ino, int(first[1]))
    return recorded[0] if recorded is not None else None


def read_entries(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The entries of an ``audit_log.json`` (newest first); ``[]`` if the file does not exist.

    Read under the writers' lock (see :func:`read_array_bytes`), so a batch
    being written is never seen in part.
    """
    try:
        data = read_array_bytes(path)
    except FileNotFoundError:
        return []
    if not data.strip(WS):
        return []
    entries = json.loads(data)
    if not isinstance(entries, list):
        raise CorruptAuditFileError(f"{os.fspath(path)!r} is not a JSON array")
    return entries


def scan_lines(fd: int, start: int, size: int) -> Iterator[tuple[int, bytes, int]]:
    """``(offset of stripped line, stripped line, offset of next line)`` from ``start``."""
    buffer = b""
    buffer_at = start  # file offset of buffer[0]
    index = 0
    while True:
        newline = buffer.find(b"\n", index)
        if newline < 0:
            read_at = buffer_at + len(buffer)
            data = os.pread(fd, min(_CHUNK, size - read_at), read_at) if read_at < size else b""
            if data:
                buffer_at += index
                buffer = buffer[index:] + data
                index = 0
                continue
            newline = len(buffer)
            if index >= newline:
                return
        line = buffer[index:newline]
        stripped = line.lstrip(WS)
        if stripped:
            yield (
                buffer_at + index + len(line) - len(stripped),
                stripped.rstrip(WS),
                buffer_at + newline + 1,
            )
        index = newline + 1


def skip_whitespace(fd: int, pos: int, size: int) -> int:
    """The offset of the first non-whitespace byte of ``fd`` at or after ``pos``."""
    for data in chunks(fd, pos, size):
        stripped = data.lstrip(WS)
        pos += len(data) - len(stripped)
        if stripped:
            break
    return pos


def write_new_array(
    path: str, old_fd: int, head: bytes, rest_from: int, rest_size: int, file_mode: int
) -> tuple[int, int]:
    """Write ``[``, a reserve, ``head``, then ``old_fd``'s ``[rest_from, +rest_size)`` to ``path``.

    The reserve is at least as large as the entries (so it doubles as the
    file grows: O(1) copying per entry, amortised) and ends on a page
    boundary, where the first entry starts. The new file is written beside
    ``path`` (:func:`~audit_logging._files.create_temp`), synced, and renamed
    over it; readers see the old file or the new one. Returns the new file's
    descriptor (read-write) and the offset of its first entry. ``old_fd`` is
    ``-1`` for a new file (then the array is empty unless ``head`` holds
    entries, closed by ``]``).
    """
    body = len(head) + rest_size
    reserve = max(_MIN_RESERVE, body)
    reserve = -(-(reserve + 1) // PAGE) * PAGE - 1  # first entry on a page boundary
    tmp, new = create_temp(path, file_mode, os.O_RDWR)
    try:
        if old_fd >= 0:
            with contextlib.suppress(OSError):
                os.fchmod(new, os.fstat(old_fd).st_mode & 0o7777)
        spaces = b" " * min(reserve, _CHUNK)
        offset = 0
        pwrite_all(new, b"[", offset)
        offset += 1
        left = reserve
        while left:
            n = min(left, len(spaces))
            pwrite_all(new, spaces[:n], offset)
            offset += n
            left -= n
        pwrite_all(new, head, offset)
        offset += len(head)
        if old_fd >= 0:
            for data in chunks(old_fd, rest_from, rest_from + rest_size):
                pwrite_all(new, data, offset)
                offset += len(data)
        if rest_size == 0:
            pwrite_all(new, b"]\n", offset)
        os.fsync(new)
        os.replace(tmp, path)
    except BaseException:
        os.close(new)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_directory(os.path.dirname(path) or ".")
    return new, 1 + reserve
