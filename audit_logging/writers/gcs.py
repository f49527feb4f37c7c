"""GcsSyncHandler: mirror a log directory to a Google Cloud Storage bucket.

Local files stay the source of truth (they survive a network outage); the
bucket is their mirror, append-only: every sync creates new objects only
(``if_generation_match=0``), *pieces* of the files under ``directory``, in
the layout of :mod:`audit_logging.bucket_layout` under
``gs://{bucket}/{prefix}/`` (``prefix`` defaulting to ``{host}/{session_id}``;
piece names carry host, rank and session, so a shared prefix is safe too).
No object is ever replaced, composed over or deleted, so a bucket with a
locked retention policy works; :mod:`audit_logging.pull` puts the files back
together.
The handler writes no records itself (:meth:`GcsSyncHandler.emit` does
nothing): it is listed last among an :class:`~audit_logging.AuditQueueHandler`'s
targets, which closes it after the writers, so the final sync sees their
final bytes. A sync thread runs every ``interval`` seconds when a file's
size, mtime or inode differs from what was last synced, and once more at
:meth:`~GcsSyncHandler.close`; :meth:`~GcsSyncHandler.sync_now` runs one now.
How a pass sends only the new bytes is told in
:mod:`audit_logging.writers._gcs_sync`. A piece name another writer already
took (HTTP 412) is left alone: the bytes go under the next number.

The network never blocks for long: every call has an explicit ``timeout`` and
a bounded retry (``DEFAULT_RETRY.with_timeout(retry_timeout)``:
google-cloud-storage 3.x otherwise retries for minutes); :meth:`close` gives
up after ``close_timeout`` seconds. What is unsent stays described in
``.gcs-sync-state.json`` in ``directory`` (per file: its prefix, epoch,
synced size, last piece, inode), so the next run resumes where this one
stopped. A file keeps the prefix it was first mirrored to: a new run (with a
new session id) goes on with its predecessor's pieces instead of sending
whole files again. Several processes that mirror the same directory share that
state under a ``portalocker`` lock (``.gcs-sync.lock``) and never upload the
same bytes twice.

Failures produce ONE warning record per outage on the logger
``audit_logging`` (``extra={"warning_type": ..., "details": {...}}``):
``credentials_missing`` when no credentials are found,
``gcs_auth_failed`` for 401/403, a missing bucket or an unreachable endpoint.
The sync thread then retries with exponential backoff (1 s doubling up to
5 min) and, once the bucket answers, sends everything pending. The handler's
``emit`` does nothing, so its own warnings cannot loop back into it.

Reading back lives with the readers: :mod:`audit_logging.read.gcs`.

Requires the optional extra: ``pip install "audit-logging[gcs]"``; without
it, building a :class:`GcsSyncHandler` raises
:class:`~audit_logging._optional.MissingExtraError` (an ``ImportError``)
saying so.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any, Final

from audit_logging import schema
from audit_logging._options import check_number, names
from audit_logging.writers._gcs_bucket import (
    INSTALL_HINT,
    RECOMMENDATIONS,
    Outage,
    classify,
)
from audit_logging.writers._gcs_bucket import require_gcs as _require_gcs
from audit_logging.writers._gcs_files import DEFAULT_EXCLUDE, STATE_FILE
from audit_logging.writers._gcs_sync import SyncPass

__all__ = [
    "DEFAULT_EXCLUDE",
    "INSTALL_HINT",
    "STATE_FILE",
    "GcsSyncHandler",
]

_LOG: Final = logging.getLogger("audit_logging")


# --------------------------------------------------------------------------- the handler


class GcsSyncHandler(SyncPass, logging.Handler):
    """Mirror every file under ``directory`` to ``gs://{bucket}/{prefix}/``.

    :param bucket: bucket name (without ``gs://``).
    :param directory: the local log directory to mirror (recursively).
    :param prefix: object name prefix; default ``{host}/{session_id}``.
    :param interval: seconds between two syncs (only when something changed).
    :param project: Google Cloud project for the client (default: from the environment).
    :param close_timeout: :meth:`close` returns after at most this many seconds.
    :param client: a ``google.cloud.storage.Client`` to use (default: one made on the
        sync thread from Application Default Credentials, or ``STORAGE_EMULATOR_HOST``).
    :param timeout: seconds per HTTP request.
    :param retry_timeout: seconds of retries per operation.
    :param exclude: ``fnmatch`` patterns of file names (basenames) never mirrored.

    Counters for monitoring: :attr:`bytes_uploaded`, :attr:`uploads`,
    :attr:`conflicts`, :attr:`outages`.
    """

    #: First and largest delays between two attempts after a failure.
    backoff_initial: float = 1.0
    backoff_max: float = 300.0

    def __init__(
        self,
        bucket: str,
        directory: str | os.PathLike[str],
        prefix: str | None = None,
        interval: float = 60.0,
        project: str | None = None,
        level: int | str = logging.NOTSET,
        *,
        close_timeout: float = 10.0,
        client: Any = None,
        timeout: float = 10.0,
        retry_timeout: float = 30.0,
        exclude: Iterable[str] = DEFAULT_EXCLUDE,
    ) -> None:
        _require_gcs()
        # Checked before Handler.__init__ registers us: a set-up mistake fails here.
        owner = "GcsSyncHandler"
        if not isinstance(bucket, str) or not bucket or "/" in bucket:
            raise ValueError(f"{owner}: bucket must be a bucket name, not {bucket!r}")
        if prefix is not None and not isinstance(prefix, str):
            raise TypeError(f"{owner}: prefix must be a string, not {type(prefix).__name__}")
        self.interval = check_number(owner, "interval", interval, minimum=0)
        self.close_timeout = check_number(owner, "close_timeout", close_timeout, minimum=0)
        self.timeout = check_number(owner, "timeout", timeout, minimum=0)
        self.retry_timeout = check_number(owner, "retry_timeout", retry_timeout, minimum=0)
        self.exclude = names(owner, "exclude", exclude)  # one string is one pattern
        super().__init__(level)
        self.bucket_name = bucket.removeprefix("gs://")
        self.directory = os.path.abspath(os.fspath(directory))
        if prefix is None:
            prefix = f"{schema.HOST}/{schema.session_id()}"
        self.prefix = prefix.strip("/")
        self.project = project
        self._client = client
        #: Bytes sent in uploads (tails and whole files), for monitoring and tests.
        self.bytes_uploaded = 0
        #: Upload requests made (each tail or whole file counts once).
        self.uploads = 0
        #: Conflicts found: always 0 since the mirror only creates new pieces (kept for
        #: monitoring code that reads it).
        self.conflicts = 0
        #: Outages reported (one warning each).
        self.outages = 0
        self._outage: str | None = None
        self._failures = 0
        self._closed = False
        self._close_deadline: float | None = None
        self._reset_runtime_state()
        _live_syncers.add(self)
        self._ensure_thread()

    def _reset_runtime_state(self) -> None:
        self._sync_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()

    # ------------------------------------------------------------------ logging.Handler

    def emit(self, record: logging.LogRecord) -> None:
        """Start the sync thread if needed; records themselves are written by other handlers."""
        self._ensure_thread()

    def handle(self, record: logging.LogRecord) -> bool:
        # No lock, no filter, no formatting: nothing is written here, so records of the
        # ``audit_logging`` logger (including this handler's own warnings) cannot loop.
        self._ensure_thread()
        return True

    def flush(self) -> None:
        """Nothing to do: a flush must not wait for the network (see :meth:`sync_now`)."""

    def close(self) -> None:
        """Sync once more, giving up after ``close_timeout`` seconds; then stop. Idempotent."""
        with self._thread_lock:
            if self._closed:
                return
            self._closed = True
        deadline = time.monotonic() + self.close_timeout
        self._close_deadline = deadline
        self._stop.set()
        try:
            if self._sync_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                try:
                    self._sync(final=True, deadline=deadline)
                finally:
                    self._sync_lock.release()
            thread = self._thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        finally:
            _live_syncers.discard(self)
            super().close()

    def sync_now(self, timeout: float | None = None) -> bool:
        """Sync now, in this thread; return True when nothing is left to send.

        Everything that changed is sent, partial last lines of journals included
        (as at :meth:`close`). Conflicting files are left alone and do not count
        as left to send. Never raises; gives up after ``timeout`` seconds
        (default: ``retry_timeout``) of network trouble, and False is returned.
        """
        deadline = time.monotonic() + (self.retry_timeout if timeout is None else timeout)
        if not self._sync_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return False
        try:
            return self._sync(final=True, deadline=deadline)
        finally:
            self._sync_lock.release()

    # ------------------------------------------------------------------ thread

    def _ensure_thread(self) -> None:
        if self._thread is not None or self._closed:
            return
        with self._thread_lock:
            if self._thread is None and not self._closed:
                thread = threading.Thread(
                    target=self._run, name=f"GcsSyncHandler[{self.bucket_name}]", daemon=True
                )
                thread.start()
                self._thread = thread

    def _next_wait(self) -> float:
        if self._failures:
            return min(self.backoff_max, self.backoff_initial * 2.0 ** (self._failures - 1))
        return self.interval

    def _run(self) -> None:
        while not self._stop.wait(self._next_wait()):
            with self._sync_lock:
                if self._stop.is_set():
                    return
                self._sync(final=False, deadline=None)

    def _get_client(self) -> Any:
        if self._client is None:
            from google.cloud import storage

            try:
                self._client = storage.Client(project=self.project)
            except Exception as exc:
                kind = classify(exc)
                if kind is None or kind == "conflict":
                    raise
                raise Outage(kind, exc) from exc
        return self._client

    def _sync(self, final: bool, deadline: float | None) -> bool:
        """One pass over the directory; True when nothing is left to send. Never raises."""
        try:
            client = self._get_client()
            bucket = client.bucket(self.bucket_name)
            pending = self._sync_files(bucket, final, deadline)
        except Outage as outage:
            self._on_failure(outage.kind, outage.error)
            return False
        except Exception as exc:
            kind = classify(exc)
            if kind is None or kind == "conflict":
                self._failures += 1
                self.handleError(internal_record(f"GCS sync of {self.directory} failed"))
                return False
            self._on_failure(kind, exc)
            return False
        self._on_success()
        return not pending

    # ------------------------------------------------------------------ reports

    def _on_failure(self, kind: str, error: BaseException | str) -> None:
        self._failures += 1
        if self._outage is not None:
            return
        self._outage = kind
        self.outages += 1
        details = {
            "bucket": self.bucket_name,
            "prefix": self.prefix,
            "directory": self.directory,
            "error": f"{type(error).__name__}: {error}"[:500],
        }
        what = "no credentials found" if kind == "credentials_missing" else "bucket unreachable"
        _LOG.warning(
            "GCS mirror gs://%s/%s: %s; local files are kept and will be sent later",
            self.bucket_name,
            self.prefix,
            what,
            extra={
                "warning_type": kind,
                "details": details,
                "recommendation": RECOMMENDATIONS.get(kind),
            },
        )

    def _on_success(self) -> None:
        if self._outage is not None:
            _LOG.info(
                "GCS mirror gs://%s/%s reachable again after %d failed attempts",
                self.bucket_name,
                self.prefix,
                self._failures,
            )
        self._outage = None
        self._failures = 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} gs://{self.bucket_name}/{self.prefix} <- {self.directory}>"


def internal_record(msg: str) -> logging.LogRecord:
    return logging.LogRecord("audit_logging", logging.ERROR, __file__, 0, msg, None, None)


_live_syncers: weakref.WeakSet[GcsSyncHandler] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # The parent's thread and locks are not the child's; the child starts its own on emit.
    for handler in list(_live_syncers):
        handler._reset_runtime_state()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
