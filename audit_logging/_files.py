"""Reading files that writers are appending to, as they are between two batches.

The journal and CSV writers append each batch (and the journal rewrites its
digest) while holding an exclusive ``portalocker`` lock on the file itself. A
reader that does not wait for it can see a batch half appended: a last line
cut off, or a digest ahead of the lines it read. :func:`between_batches` takes
the lock shared for a moment and gives the file's size then; the files are
append-only, so every byte before that size is final and the reader can take
its time over them without holding writers up.

Also the file primitives the writers share: reading a range in pieces
(:func:`chunks`, :func:`chunks_backwards`) and holding a writer's exclusive
lock on a file that may have been removed meanwhile (:func:`locked_for_writing`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import portalocker

__all__ = [
    "TAIL_LIMIT",
    "between_batches",
    "chunks",
    "chunks_backwards",
    "held_shared",
    "iter_lines",
    "locked_for_writing",
    "shared_lock",
    "size_between_batches",
]

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
#: How far back from its end a writer looks for a file's last record (``seq``, ``hash``).
TAIL_LIMIT = 4 * 1024 * 1024


def chunks(fd: int, start: int, end: int, size: int = 1 << 20) -> Iterator[bytes]:
    """The bytes of ``fd`` in ``[start, end)``, read with ``pread``, ``size`` at a time."""
    while start < end:
        data = os.pread(fd, min(size, end - start), start)
        if not data:  # the file is shorter than the caller thought
            return
        yield data
        start += len(data)


def chunks_backwards(
    fd: int, start: int, end: int, size: int = 64 * 1024
) -> Iterator[tuple[int, bytes]]:
    """``(offset, bytes)`` pieces of ``fd`` in ``[start, end)``, from the end towards ``start``."""
    while end > start:
        low = max(start, end - size)
        yield low, os.pread(fd, end - low, low)
        end = low


def _unlock(fd: int) -> None:
    try:
        portalocker.unlock(fd)
    except Exception:  # a descriptor already closed: its lock went with it
        pass


@contextlib.contextmanager
def locked_for_writing(fd: int, reopen: Callable[[], int]) -> Iterator[tuple[int, os.stat_result]]:
    """Hold ``fd``'s lock exclusive; yields ``(fd, its stat)`` for the writer to append.

    If the file was removed meanwhile (its folder deleted, a user's ``rm``),
    bytes written to it would be lost to every reader: ``reopen()`` gives a
    descriptor of the path's new file, whose lock is held and yielded instead.
    """
    portalocker.lock(fd, portalocker.LockFlags.EXCLUSIVE)
    try:
        st = os.fstat(fd)
        if st.st_nlink == 0:
            _unlock(fd)
            fd = reopen()
            portalocker.lock(fd, portalocker.LockFlags.EXCLUSIVE)
            st = os.fstat(fd)
        yield fd, st
    finally:
        _unlock(fd)


@contextlib.contextmanager
def held_shared(fd: int) -> Iterator[None]:
    """Hold a shared ``portalocker`` lock on the open file ``fd``; writers take it exclusive.

    On a filesystem without ``flock`` this holds nothing: the file is read as it is.
    """
    try:
        portalocker.lock(fd, portalocker.LockFlags.SHARED)
    except Exception:
        yield
        return
    try:
        yield
    finally:
        _unlock(fd)


@contextlib.contextmanager
def shared_lock(path: str | os.PathLike[str]) -> Iterator[int]:
    """Open ``path`` read-only and hold its lock shared (:func:`held_shared`); yields the fd.

    Raises ``OSError`` (e.g. ``FileNotFoundError``) when ``path`` cannot be opened.
    """
    fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
    try:
        with held_shared(fd):
            yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def between_batches(path: Path) -> Iterator[int]:
    """Hold ``path``'s lock shared (no batch is appended meanwhile); yields its size."""
    with shared_lock(path) as fd:
        yield os.fstat(fd).st_size


def size_between_batches(path: Path) -> int:
    """The size of ``path`` at an instant when no batch is half appended."""
    with between_batches(path) as size:
        return size


def iter_lines(path: Path, end: int | None = None) -> Iterator[tuple[int, bytes]]:
    """``(line number, line with its newline)`` of ``path``, up to byte ``end``."""
    with path.open("rb") as fh:
        if end is None:
            yield from enumerate(fh, 1)
            return
        pos = 0
        for number, raw in enumerate(fh, 1):
            if pos >= end:
                return
            pos += len(raw)
            if pos > end:  # a batch appended after the size was taken
                raw = raw[: len(raw) - (pos - end)]
            yield number, raw
