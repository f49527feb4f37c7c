"""The one file layer: opening, writing, replacing and locking the library's files.

Writers and readers go through these primitives, never ``open()`` of their own:

* :func:`open_created` / :func:`open_append` / :func:`open_existing`: open a
  file without following a symlink planted at its name (``O_NOFOLLOW``),
  creating it and its folder with private modes;
* :func:`write_all` / :func:`pwrite_all`: write every byte (a write may be
  partial); :func:`append_whole`: append a batch to a locked file, or take it
  back whole (``ftruncate``) when the disk fills up mid-write;
* :func:`replace_atomically`: write a new file beside the old one, ``fsync``
  it, ``os.replace`` it over the old, ``fsync`` the folder; :func:`create_temp`
  for writers that finish the temp file themselves;
* locks (``portalocker``, i.e. ``flock``): :func:`locked_for_writing`
  (exclusive, following a file removed meanwhile), :func:`held_shared`,
  :func:`shared_lock`, and :func:`between_batches` below.

Reading files that writers are appending to, as they are between two batches:

The journal and CSV writers append each batch (and the journal rewrites its
digest) while holding an exclusive ``portalocker`` lock on the file itself. A
reader that does not wait for it can see a batch half appended: a last line
cut off, or a digest ahead of the lines it read. :func:`between_batches` takes
the lock shared for a moment and gives the file's size then; the files are
append-only, so every byte before that size is final and the reader can take
its time over them without holding writers up.

Also reading a range in pieces (:func:`chunks`, :func:`chunks_backwards`).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import portalocker

__all__ = [
    "TAIL_LIMIT",
    "append_whole",
    "between_batches",
    "chunks",
    "chunks_backwards",
    "create_temp",
    "ensure_directory",
    "fsync_directory",
    "held_shared",
    "iter_lines",
    "locked_for_writing",
    "open_append",
    "open_created",
    "open_existing",
    "pwrite_all",
    "replace_atomically",
    "shared_lock",
    "size_between_batches",
    "write_all",
]

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: How far back from its end a writer looks for a file's last record (``seq``, ``hash``).
TAIL_LIMIT = 4 * 1024 * 1024


# --------------------------------------------------------------------------- opening


def ensure_directory(directory: str, mode: int = 0o700) -> None:
    os.makedirs(directory, mode=mode, exist_ok=True)


def open_created(path: str, flags: int, file_mode: int = 0o600, dir_mode: int = 0o700) -> int:
    """``os.open(path, flags | O_CREAT)``, creating the directory too, never through a symlink."""
    flags |= os.O_CREAT | _O_CLOEXEC | _O_NOFOLLOW
    try:
        return os.open(path, flags, file_mode)
    except FileNotFoundError:
        ensure_directory(os.path.dirname(path) or ".", dir_mode)
        return os.open(path, flags, file_mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(exc.errno, f"refusing to follow a symlink at {path!r}") from exc
        raise


def open_append(path: str, file_mode: int = 0o600, dir_mode: int = 0o700) -> int:
    """Open ``path`` for appending (creating it and its directory), never through a symlink."""
    # Read access too: a writer reads its own tail (the last seq) under its lock.
    return open_created(path, os.O_RDWR | os.O_APPEND, file_mode, dir_mode)


def open_existing(path: str, flags: int = os.O_RDWR) -> int:
    """Open an existing ``path`` (``FileNotFoundError`` if it is not there), never a symlink."""
    return os.open(path, flags | _O_CLOEXEC | _O_NOFOLLOW)


def create_temp(path: str, file_mode: int = 0o600, flags: int = os.O_WRONLY) -> tuple[str, int]:
    """A new hidden temp file beside ``path`` (``O_EXCL``: never a planted symlink): name, fd.

    Its name starts with ``.{name}.`` and ends with ``.tmp``, so that no
    reader's glob for the real files matches it.
    """
    directory, name = os.path.split(path)
    temp = os.path.join(directory, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    flags |= os.O_CREAT | os.O_EXCL | _O_CLOEXEC | _O_NOFOLLOW
    return temp, os.open(temp, flags, file_mode)


# --------------------------------------------------------------------------- writing


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (a write may be partial)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """``os.pwrite`` at ``offset`` until every byte is written."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def append_whole(fd: int, data: bytes, size: int) -> None:
    """Append a batch ``data`` to a file of ``size`` bytes (its lock held), or leave it as it was.

    A write cut short (ENOSPC) is taken back with ``ftruncate``, so that the
    writer's retry neither duplicates the lines that got through nor leaves a
    torn one.
    """
    try:
        write_all(fd, data)
    except OSError:
        try:
            os.ftruncate(fd, size)
        except OSError:
            pass
        raise


def fsync_directory(directory: str) -> None:
    """Make a rename in ``directory`` durable; a filesystem that refuses is let be."""
    try:
        fd = os.open(directory or ".", os.O_RDONLY | _O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a directory; the data itself is synced
    finally:
        os.close(fd)


def replace_atomically(path: str, data: bytes, file_mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` through a temp file: readers see the old or the new file.

    The temp file (:func:`create_temp`) is synced, renamed over ``path``, and
    removed if anything fails; the folder is synced after the rename.
    """
    temp, fd = create_temp(path, file_mode)
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    fsync_directory(os.path.dirname(path))


# --------------------------------------------------------------------------- reading and locks


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
