"""What every audit writer shares: record selection, batching, failure accounting, files.

A writer is a :class:`logging.Handler` that takes only the records carrying its
``extra`` key (:attr:`AuditWriter.key`) and writes a whole batch at once
(:meth:`AuditWriter.handle_batch`, called by the queue handler's listener), so
that it takes its cross-process file lock once per batch, not once per record.
Used directly on a logger, it writes each record as a batch of one.

Failures never raise into the caller: a failed write is counted in
:attr:`~AuditWriter.records_failed` and reported through ``handleError`` once
per burst (the first failure after a success), not once per record. The
failed records are kept (up to :attr:`~AuditWriter.retry_limit`) and written
with the next batch or ``flush()``, so a full disk that frees up loses
nothing; beyond the limit they are counted in :attr:`~AuditWriter.records_lost`.
Secret-looking keys and values are masked before they reach any file
(:attr:`~AuditWriter.redactor`; ``redact=False`` turns it off,
``secret_keys`` changes the key words). A record that breaks the schema is
counted in
:attr:`~AuditWriter.records_rejected`.
"""

from __future__ import annotations

import errno
import logging
import os
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import ClassVar, TypeVar

from audit_logging.chain import hasher_from_env
from audit_logging.redact import Redactor
from audit_logging.schema import safe_str

__all__ = [
    "AuditWriter",
    "FileAuditWriter",
    "UnwrittenRecords",
    "append_whole",
    "fsync_directory",
    "open_append",
    "open_created",
    "replace_atomically",
    "write_all",
]

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_REPORT_EVERY = 60.0  # seconds between two reports of the same rejection
_T = TypeVar("_T")


def ensure_directory(directory: str, mode: int = 0o700) -> None:
    os.makedirs(directory, mode=mode, exist_ok=True)


def open_append(path: str, file_mode: int = 0o600, dir_mode: int = 0o700) -> int:
    """Open ``path`` for appending (creating it and its directory), never through a symlink."""
    # Read access too: a writer reads its own tail (the last seq) under its lock.
    return open_created(path, os.O_RDWR | os.O_APPEND, file_mode, dir_mode)


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


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (a write may be partial)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def append_whole(fd: int, data: bytes, size: int) -> None:
    """Append ``data`` to a file of ``size`` bytes (its lock held), or leave it as it was.

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

    The temp file is created with ``O_EXCL`` beside ``path`` (never through a
    symlink), synced, renamed over ``path``, and removed if anything fails.
    """
    directory, name = os.path.split(path)
    temp = os.path.join(directory, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC | _O_NOFOLLOW, file_mode)
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
    fsync_directory(directory)


class UnwrittenRecords(Exception):
    """Raised from ``write_records`` when it wrote only part of a batch: the rest, and why.

    Raise it ``from`` the cause; the records written before are not tried again.
    """

    def __init__(self, records: Sequence[logging.LogRecord]) -> None:
        super().__init__(f"{len(records)} record(s) not written")
        self.records = list(records)


class AuditWriter(logging.Handler):
    """Base of the audit writers: subclasses set :attr:`key` and implement :meth:`write_records`."""

    #: The ``extra`` key a record must carry to be written by this writer.
    key: ClassVar[str] = ""

    def __init__(
        self,
        level: int | str = logging.NOTSET,
        *,
        file_mode: int = 0o600,
        dir_mode: int = 0o700,
        redact: bool = True,
        secret_keys: Iterable[str] | None = None,
    ) -> None:
        super().__init__(level)
        self.file_mode = file_mode
        self.dir_mode = dir_mode
        #: Masks secret-looking keys and values before they reach the file (``None``:
        #: ``redact=False``); ``secret_keys`` replaces the key words it looks for.
        self.redactor = Redactor(secret_keys) if redact else None
        #: Records written so far.
        self.records_written = 0
        #: Records whose write failed (I/O errors); reported once per burst, then retried.
        self.records_failed = 0
        #: Records given up after failures, beyond the :attr:`retry_limit` kept for retrying.
        self.records_lost = 0
        #: How many failed records are kept to be written when the disk comes back.
        self.retry_limit = 10_000
        self._retry: list[logging.LogRecord] = []
        #: Records refused because they break the schema (e.g. an unknown event).
        self.records_rejected = 0
        self._failing = False
        self._last_reports: dict[str, float] = {}
        _live_writers.add(self)

    # ------------------------------------------------------------------ selection

    def selects(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` carries :attr:`key` and passes this writer's level and filters."""
        return (
            self.key in record.__dict__
            and record.levelno >= self.level
            and bool(self.filter(record))
        )

    def handle(self, record: logging.LogRecord) -> bool:
        self.handle_batch([record])
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle_batch([record])

    def handle_batch(self, records: Sequence[logging.LogRecord]) -> None:
        """Write those of ``records`` that this writer selects, in one locked write."""
        key, level = self.key, self.level
        if self.filters:
            selected = [r for r in records if self.selects(r)]
        else:  # the common case, without a call per record
            selected = [r for r in records if key in r.__dict__ and r.levelno >= level]
        if selected or self._retry:
            self._write(selected)

    def _write(self, selected: list[logging.LogRecord]) -> None:
        with self.lock:  # type: ignore[union-attr]
            batch = self._retry + selected if self._retry else selected
            if not batch:
                return
            try:
                self.write_records(batch)
            except Exception as exc:
                # Keep what failed for the next batch (the disk may come back);
                # bounded, so a dead disk cannot exhaust memory.
                failed: list[logging.LogRecord] = batch
                cause: BaseException = exc
                if isinstance(exc, UnwrittenRecords):
                    failed, cause = exc.records, exc.__cause__ or exc
                retried = {id(r) for r in self._retry}
                self.records_failed += sum(1 for r in failed if id(r) not in retried)
                keep = failed[-self.retry_limit :] if self.retry_limit > 0 else []
                self.records_lost += len(failed) - len(keep)
                self._retry = keep
                if not self._failing:
                    self._failing = True
                    self._report(failed[0], cause)
            else:
                self._retry = []
                self._failing = False

    def flush(self) -> None:
        """Nothing is buffered; records kept after a failed write are tried again now."""
        if self._retry:
            self._write([])

    def write_records(self, records: Sequence[logging.LogRecord]) -> None:
        """Render and write ``records`` (already selected), under :attr:`lock`. Override this."""
        raise NotImplementedError

    def render_each(
        self, records: Sequence[logging.LogRecord], render: Callable[[logging.LogRecord], _T]
    ) -> list[_T]:
        """``render(record)`` for each record; one that raises is rejected, not retried.

        Only a failed write is kept for retrying: a record that cannot be
        rendered would fail every retry and hold back every record after it.
        """
        rendered = []
        for record in records:
            try:
                rendered.append(render(record))
            except Exception as exc:
                self.reject(record, exc)
        return rendered

    # ------------------------------------------------------------------ reporting

    def _report(self, record: logging.LogRecord, exc: BaseException) -> None:
        # handleError prints the exception being handled; raise it to be sure it is that one.
        try:
            raise exc
        except BaseException:
            self.handleError(record)

    def reject(self, record: logging.LogRecord, error: Exception) -> None:
        """Refuse ``record``: count it and report ``error`` (at most once a minute per message)."""
        self.records_rejected += 1
        message = safe_str(error)
        now = time.monotonic()
        last = self._last_reports.get(message)
        if last is None or now - last >= _REPORT_EVERY:
            self._last_reports[message] = now
            self._report(record, error)

    # ------------------------------------------------------------------ fork

    def _after_fork_in_child(self) -> None:
        """Forget file descriptors shared with the parent (their locks are the parent's)."""


class FileAuditWriter(AuditWriter):
    """Base of the writers of one file (``audit_log.json``, ``audit_log.csv``): path and chain."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        level: int | str = logging.NOTSET,
        *,
        chain: bool,
        hmac_key: str | bytes | None = None,
        file_mode: int = 0o600,
        dir_mode: int = 0o700,
        redact: bool = True,
        secret_keys: Iterable[str] | None = None,
    ) -> None:
        super().__init__(
            level, file_mode=file_mode, dir_mode=dir_mode, redact=redact, secret_keys=secret_keys
        )
        self.path = os.fspath(path)
        #: Whether entries carry ``seq`` and ``hash`` (see :mod:`audit_logging.chain`).
        self.chain = chain
        self._link = hasher_from_env(hmac_key).link

    @property
    def baseFilename(self) -> str:
        """The absolute path of the file (as ``logging.FileHandler.baseFilename``)."""
        return os.path.abspath(self.path)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path} ({logging.getLevelName(self.level)})>"


_live_writers: weakref.WeakSet[AuditWriter] = weakref.WeakSet()


def _reset_writers_in_child() -> None:
    for writer in list(_live_writers):
        try:
            writer._after_fork_in_child()
        except Exception:
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_writers_in_child)
