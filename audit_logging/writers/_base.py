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
``secret_keys`` changes the key words). A record that breaks the schema (an
unknown event) or cannot be rendered is not lost: it goes whole into the
rejects file beside the writer's output (``rejected-YYYY-MM-DD.jsonl``, UTC
day) and is counted in :attr:`~AuditWriter.records_rejected`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, TypeVar

from audit_logging import manifest
from audit_logging._files import append_whole, locked_for_writing, open_append
from audit_logging._fork import reset_after_fork
from audit_logging._options import check_writer_options
from audit_logging.chain import hasher_from_env
from audit_logging.records import record_time, rejected_line
from audit_logging.redact import Redactor
from audit_logging.schema import safe_str

__all__ = ["AuditWriter", "FileAuditWriter", "UnwrittenRecords", "writer_location"]

_T = TypeVar("_T")
_MAX_REASONS = 1000  # distinct rejection reasons remembered (each is reported once)


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
        # Wrong types fail here, when dictConfig builds the writer, not at the first record.
        check_writer_options(
            type(self).__name__,
            file_mode=file_mode,
            dir_mode=dir_mode,
            redact=redact,
            secret_keys=secret_keys,
        )
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
        #: Records refused because they break the schema (e.g. an unknown event); each
        #: is kept whole in the rejects file beside the output (:meth:`rejects_path`).
        self.records_rejected = 0
        #: Rejected records that could not be written to the rejects file either.
        self.rejects_lost = 0
        self._failing = False
        self._reported_reasons: set[str] = set()
        reset_after_fork(self)

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

    @property
    def output_directory(self) -> str:
        """The folder this writer writes in (its rejects file goes there too). Override this."""
        raise NotImplementedError

    def rejects_path(self, created: float) -> str:
        """The rejects file of the UTC day of ``created``: ``rejected-YYYY-MM-DD.jsonl``."""
        day = time.strftime("%Y-%m-%d", time.gmtime(created))
        return os.path.join(self.output_directory, f"rejected-{day}.jsonl")

    def reject(self, record: logging.LogRecord, error: Exception) -> None:
        """Refuse ``record`` (it breaks the schema, or cannot be rendered): keep it, count it.

        The whole record goes into the rejects file beside this writer's
        output (:meth:`rejects_path`) with the ``reason`` and the ``writer``,
        so that nothing logged is lost; it is counted in
        :attr:`records_rejected`; each distinct reason is reported once, on
        stderr, with where the record went.
        """
        self.records_rejected += 1
        reason = safe_str(error)
        try:
            path = self.rejects_path(record_time(record))
            line = rejected_line(record, reason, type(self).__name__, self.redactor)
            self._append_reject(path, line)
        except Exception as exc:
            self.rejects_lost += 1
            self._report(record, exc)
            return
        if reason not in self._reported_reasons:
            if len(self._reported_reasons) < _MAX_REASONS:
                self._reported_reasons.add(reason)
            self._say(f"{type(self).__name__} rejected a record: {reason}; it was kept in {path}")

    def _manifest(self, note: Callable[..., None], *args: Any, **fields: Any) -> None:
        """One line of the folder's manifest (:mod:`audit_logging.manifest`), e.g.
        ``self._manifest(manifest.created, directory, name, "csv")``.

        Called after the bytes are on disk: a manifest that cannot be written
        is reported like a failed write, never raised into the batch (which
        would then be retried and written twice).
        """
        record = logging.LogRecord("audit_logging", logging.ERROR, "", 0, "manifest", None, None)
        note(*args, on_error=lambda exc: self._report(record, exc), **fields)

    def _append_reject(self, path: str, line: bytes) -> None:
        fds = [open_append(path, self.file_mode, self.dir_mode)]

        def reopen() -> int:
            fds.append(open_append(path, self.file_mode, self.dir_mode))
            return fds[-1]

        try:
            with locked_for_writing(fds[0], reopen) as (fd, st):
                append_whole(fd, line, st.st_size)
                directory, name = os.path.split(path)
                self._manifest(manifest.batch, directory or ".", name, st.st_size, line)
        finally:
            for fd in fds:
                os.close(fd)

    @staticmethod
    def _say(message: str) -> None:
        """One line on stderr, where ``handleError`` prints (if ``raiseExceptions``)."""
        if logging.raiseExceptions and sys.stderr is not None:
            try:
                sys.stderr.write(f"audit_logging: {message}\n")
            except Exception:
                pass

    # ------------------------------------------------------------------ fork

    def _after_fork_in_child(self) -> None:
        """Forget file descriptors shared with the parent (their locks are the parent's)."""


def writer_location(
    cls: type,
    path: str | os.PathLike[str] | None,
    directory: str | os.PathLike[str] | None,
    filename: str,
) -> str:
    """The file of a one-file writer from ``directory`` and ``filename`` (or the retired ``path``).

    Every writer takes the folder it writes in as ``directory``; a writer of
    one file also takes its ``filename``. ``path`` (the whole file path, the
    older style) still works, with a ``DeprecationWarning``.
    """
    if path is not None:
        if directory is not None:
            raise TypeError(f"{cls.__name__}: give directory (and filename), not path as well")
        warnings.warn(
            f"{cls.__name__}(path=...) is deprecated: give the folder as directory= "
            f"(and the file name as filename=, default {filename!r})",
            DeprecationWarning,
            stacklevel=3,
        )
        return os.fspath(path)
    if os.sep in filename or (os.altsep and os.altsep in filename):
        raise ValueError(f"{cls.__name__}: filename must be a name, not a path: {filename!r}")
    return os.path.join(os.fspath(directory) if directory is not None else ".", filename)


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
        check_writer_options(type(self).__name__, chain=chain, hmac_key=hmac_key)
        super().__init__(
            level, file_mode=file_mode, dir_mode=dir_mode, redact=redact, secret_keys=secret_keys
        )
        #: The file written (``directory`` joined with ``filename``).
        self.path = os.fspath(path)
        #: Whether entries carry ``seq`` and ``hash`` (see :mod:`audit_logging.chain`).
        self.chain = chain
        self._link = hasher_from_env(hmac_key).link

    @property
    def output_directory(self) -> str:
        return os.path.dirname(self.path) or "."

    @property
    def baseFilename(self) -> str:
        """The absolute path of the file (as ``logging.FileHandler.baseFilename``)."""
        return os.path.abspath(self.path)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path} ({logging.getLevelName(self.level)})>"
