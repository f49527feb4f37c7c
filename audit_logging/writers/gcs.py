"""GcsSyncHandler: mirror a log directory to a Google Cloud Storage bucket.

Local files stay the source of truth (they survive a network outage); the
bucket is their mirror: every regular file under ``directory`` is copied to
``gs://{bucket}/{prefix}/{relative path}``, ``prefix`` defaulting to
``{host}/{session_id}`` so that machines never write each other's objects.
The handler writes no records itself (:meth:`GcsSyncHandler.emit` does
nothing): it is listed last among an :class:`~audit_logging.AuditQueueHandler`'s
targets, which closes it after the writers, so the final sync sees their
final bytes. A sync thread runs every ``interval`` seconds when a file's
size, mtime or inode differs from what was last synced, and once more at
:meth:`~GcsSyncHandler.close`; :meth:`~GcsSyncHandler.sync_now` runs one now.

Cost per sync is proportional to the new bytes, not to the file size:

* Append-only files (``*.jsonl`` journals, ``*.csv``): the new tail is
  uploaded as a temporary object (``{object}.gcs-sync-tmp.{token}``) and
  appended with ``compose([object@generation, tail])``, naming the generation
  it extends both as the source generation and as ``if_generation_match`` on
  the destination; then the temporary object is deleted. GCS allows 32
  sources per compose; two are enough each time, and a composite object may
  have any number of components. Between syncs only whole batches are sent
  (the size is read under the writers' lock, taken shared) and then only
  whole lines, so a reader of the bucket never sees half a record, nor half a
  CSV row whose quoted cells hold line breaks; :meth:`close` sends every
  byte, so that each object is then byte-identical to its file.
* Everything else (``audit_log.json``, ``*.digest.json``, warning files) is
  rewritten in place or small: it is uploaded whole, with
  ``if_generation_match`` = the generation we wrote last (0: create only).
* An append-only file that shrank, was replaced (new inode) or whose synced
  bytes changed (a hash of the last KiB synced is checked) is uploaded whole
  as a new version of its object, again only if the object's generation is
  the one we wrote.

Objects are never silently overwritten: a precondition failure (HTTP 412) is
a conflict, reported once as a warning on the library logger ``audit_logging``
and not forced; the file is then left alone (its state entry says why).
Every write carries a random token in the object's metadata
(``audit-logging-sync``) and is recorded as pending in the state file before
it is sent: a write whose answer was lost (a timeout, a crash) is recognised
as ours on the next attempt, instead of being taken for a conflict.

The network never blocks for long: every call has an explicit ``timeout`` and
a bounded retry (``DEFAULT_RETRY.with_timeout(retry_timeout)``:
google-cloud-storage 3.x otherwise retries for minutes); :meth:`close` gives
up after ``close_timeout`` seconds. What is unsent stays described in
``.gcs-sync-state.json`` in ``directory`` (per file: object name, synced
size, generation, inode), so the next run resumes where this one stopped. A
file keeps the object name it was first mirrored to: a new run (with a new
session id) appends to its predecessor's objects instead of copying whole
files again. Several processes that mirror the same directory share that
state under a ``portalocker`` lock (``.gcs-sync.lock``) and never upload the
same bytes twice.

Failures produce ONE warning record per outage on the logger
``audit_logging`` (``extra={"warning_type": ..., "details": {...}}``):
``credentials_missing`` when no credentials are found,
``gcs_auth_failed`` for 401/403, a missing bucket or an unreachable endpoint.
The sync thread then retries with exponential backoff (1 s doubling up to
5 min) and, once the bucket answers, sends everything pending. The handler's
``emit`` does nothing, so its own warnings cannot loop back into it.

Reading back: :func:`list_gcs_objects`, :func:`open_gcs_object` and
:func:`iter_gcs_lines` stream ``gs://bucket/prefix`` without downloading
whole objects into memory (for the ``audit-logging`` command).

Requires the optional extra: ``pip install "audit-logging[gcs]"``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import importlib.util
import io
import json
import logging
import os
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Final, cast

import portalocker

from audit_logging import schema
from audit_logging._files import chunks, chunks_backwards, held_shared
from audit_logging.writers._base import replace_atomically, write_all
from audit_logging.writers.json_array import lock_path_for, reading_lock

__all__ = [
    "GcsObject",
    "GcsSyncHandler",
    "iter_gcs_lines",
    "list_gcs_objects",
    "open_gcs_object",
    "parse_gcs_url",
]

INSTALL_HINT: Final = 'pip install "audit-logging[gcs]"'
STATE_FILE: Final = ".gcs-sync-state.json"
LOCK_FILE: Final = ".gcs-sync.lock"
TOKEN_KEY: Final = "audit-logging-sync"
TMP_MARK: Final = ".gcs-sync-tmp."
#: Files appended to, never rewritten: synced by tail + compose.
APPEND_PATTERNS: Final = ("*.jsonl", "*.csv")
#: Never mirrored: our own state and lock, hidden and temporary files of writers.
DEFAULT_EXCLUDE: Final = (".*", "*.tmp", "*.lock", "*~")
_CONTENT_TYPES: Final = {
    ".jsonl": "application/x-ndjson",
    ".json": "application/json",
    ".csv": "text/csv",
}
_FINGERPRINT_BYTES = 1024
_LOG = logging.getLogger("audit_logging")


def _require_gcs() -> None:
    if importlib.util.find_spec("google.cloud.storage") is None:
        raise ImportError(
            f"GCS support needs google-cloud-storage: {INSTALL_HINT}", name="google.cloud.storage"
        )


def _retry(seconds: float) -> Any:
    """google-cloud-storage's default retry, bounded to ``seconds`` in total."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    # with_timeout is google-api-core >= 2.17's name; older versions only have with_deadline.
    bound = getattr(DEFAULT_RETRY, "with_timeout", None) or DEFAULT_RETRY.with_deadline
    return bound(max(seconds, 0.0))


# --------------------------------------------------------------------------- errors


class _Outage(Exception):
    """The bucket cannot be used now: retried with backoff, reported once."""

    def __init__(self, kind: str, error: BaseException | str) -> None:
        super().__init__(str(error))
        self.kind = kind
        self.error = error


class _Conflict(Exception):
    """An object is not the one we last wrote: reported, never forced."""


def _classify(exc: BaseException) -> str | None:
    """The warning type of an outage for ``exc``, ``"conflict"``, or None (not a GCS error)."""
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth

    if isinstance(exc, auth.DefaultCredentialsError):
        return schema.WarningType.CREDENTIALS_MISSING.value
    if isinstance(exc, api.PreconditionFailed):
        return "conflict"
    # Not every OSError: a local one (disk full while saving the state) is not an outage.
    network: tuple[type[BaseException], ...] = (
        api.GoogleAPIError,
        auth.GoogleAuthError,
        ConnectionError,
        TimeoutError,
    )
    try:
        import requests

        network += (requests.RequestException,)
    except ImportError:  # pragma: no cover - a dependency of google-cloud-storage
        pass
    if isinstance(exc, network):
        return schema.WarningType.GCS_AUTH_FAILED.value
    return None


_RECOMMENDATIONS: Final = {
    "credentials_missing": (
        "Provide credentials: `gcloud auth application-default login`, "
        "GOOGLE_APPLICATION_CREDENTIALS, or a service account on the VM. "
        "Local files are kept and will be sent once credentials are found."
    ),
    "gcs_auth_failed": (
        "Check that the bucket exists and that these credentials may create and compose "
        "objects in it (roles/storage.objectCreator is not enough: compose and the "
        "preconditions need storage.objects.get; delete of temporary objects needs "
        "storage.objects.delete). Local files are kept and will be sent when reachable."
    ),
}


# --------------------------------------------------------------------------- state


def _is_append_only(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(name, p) for p in APPEND_PATTERNS)


def _content_type(rel: str) -> str:
    return _CONTENT_TYPES.get(os.path.splitext(rel)[1].lower(), "application/octet-stream")


def _fingerprint(fd: int, end: int) -> str:
    """Hash of the last KiB before ``end``: cheap evidence that synced bytes did not change."""
    start = max(0, end - _FINGERPRINT_BYTES)
    data = os.pread(fd, end - start, start)
    return hashlib.sha256(data).hexdigest()[:32]


def _copy_under_lock(path: str, fd: int) -> tuple[int, os.stat_result]:
    """A private copy of the array file open as ``fd``, taken under its writers' lock.

    Returns the copy's descriptor (its file already unlinked) and the stat of
    the original at the time of the copy.
    """
    copy, name = tempfile.mkstemp(prefix=".audit-logging-sync-")
    os.unlink(name)
    try:
        with reading_lock(path):
            st = os.fstat(fd)
            for chunk in chunks(fd, 0, st.st_size):
                write_all(copy, chunk)
    except BaseException:
        os.close(copy)
        raise
    return copy, st


def _complete_length(fd: int, start: int, end: int) -> int:
    """Length of the file up to its last newline in ``[start, end)``; ``start`` if there is none."""
    for low, chunk in chunks_backwards(fd, start, end):
        i = chunk.rfind(b"\n")
        if i >= 0:
            return low + i + 1
    return start


class _Window(io.RawIOBase):
    """``length`` bytes of ``fd`` from ``offset``, as a file (what ``upload_from_file`` reads).

    Reads with ``pread``: a writer appending meanwhile cannot move our position,
    and bytes past the window (written after the stat) are not sent.
    """

    def __init__(self, fd: int, offset: int, length: int, counter: list[int]) -> None:
        self._fd, self._start, self._end, self._pos = fd, offset, offset + length, offset
        self._counter = counter

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos - self._start

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: self._start, os.SEEK_CUR: self._pos, os.SEEK_END: self._end}[whence]
        self._pos = min(max(self._start, base + pos), self._end)
        return self.tell()

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = min(len(view), self._end - self._pos)
        if n <= 0:
            return 0
        data = os.pread(self._fd, n, self._pos)
        if len(data) < n:  # the file shrank under us: the next sync sees it and re-sends
            raise OSError(f"file shrank while uploading ({len(data)} < {n} bytes)")
        view[: len(data)] = data
        self._pos += len(data)
        self._counter[0] += len(data)
        return len(data)


# --------------------------------------------------------------------------- the handler


class GcsSyncHandler(logging.Handler):
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
        super().__init__(level)
        if not bucket or "/" in bucket:
            raise ValueError(f"bucket must be a bucket name, not {bucket!r}")
        self.bucket_name = bucket.removeprefix("gs://")
        self.directory = os.path.abspath(os.fspath(directory))
        if prefix is None:
            prefix = f"{schema.HOST}/{schema.session_id()}"
        self.prefix = prefix.strip("/")
        self.interval = float(interval)
        self.project = project
        self.close_timeout = float(close_timeout)
        self.timeout = float(timeout)
        self.retry_timeout = float(retry_timeout)
        self.exclude = tuple(exclude)
        self._client = client
        #: Bytes sent in uploads (tails and whole files), for monitoring and tests.
        self.bytes_uploaded = 0
        #: Upload requests made (each tail or whole file counts once).
        self.uploads = 0
        #: Conflicts found (objects not overwritten).
        self.conflicts = 0
        #: Outages reported (one warning each).
        self.outages = 0
        self._outage: str | None = None
        self._failures = 0
        self._reported_conflicts: set[str] = set()
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

    # ------------------------------------------------------------------ one sync

    def _remaining(self, deadline: float | None) -> float:
        ends = [d for d in (deadline, self._close_deadline) if d is not None]
        if not ends:
            return self.retry_timeout
        return min(self.retry_timeout, min(ends) - time.monotonic())

    def _call_args(self, deadline: float | None) -> dict[str, Any]:
        left = self._remaining(deadline)
        if left <= 0:
            raise _Outage(schema.WarningType.GCS_AUTH_FAILED.value, "deadline reached")
        return {"timeout": min(self.timeout, left), "retry": _retry(left)}

    def _get_client(self) -> Any:
        if self._client is None:
            from google.cloud import storage

            try:
                self._client = storage.Client(project=self.project)
            except Exception as exc:
                kind = _classify(exc)
                if kind is None or kind == "conflict":
                    raise
                raise _Outage(kind, exc) from exc
        return self._client

    def _sync(self, final: bool, deadline: float | None) -> bool:
        """One pass over the directory; True when nothing is left to send. Never raises."""
        try:
            client = self._get_client()
            bucket = client.bucket(self.bucket_name)
            pending = self._sync_files(bucket, final, deadline)
        except _Outage as outage:
            self._on_failure(outage.kind, outage.error)
            return False
        except Exception as exc:
            kind = _classify(exc)
            if kind is None or kind == "conflict":
                self._failures += 1
                self.handleError(_internal_record(f"GCS sync of {self.directory} failed"))
                return False
            self._on_failure(kind, exc)
            return False
        self._on_success()
        return not pending

    def _sync_files(self, bucket: Any, final: bool, deadline: float | None) -> bool:
        if not os.path.isdir(self.directory):
            return False
        lock_wait = max(0.0, self._remaining(deadline))
        lock = portalocker.Lock(
            os.path.join(self.directory, LOCK_FILE),
            mode="a",
            timeout=lock_wait,
            check_interval=0.05,
            fail_when_locked=False,
        )
        try:
            lock.acquire()
        except portalocker.LockException:
            return True  # another process is syncing this directory: not known to be done
        try:
            state = self._load_state()
            self._collect_garbage(bucket, state, deadline)
            pending = False
            for rel, path in self._scan():
                entry = state["files"].get(rel)
                if entry is not None and entry.get("conflict"):
                    self._report_conflict(rel, entry)
                    continue
                try:
                    pending |= self._sync_file(bucket, state, rel, path, final, deadline)
                except _Conflict as conflict:
                    entry = state["files"].setdefault(rel, {})
                    entry["conflict"] = str(conflict)
                    entry.pop("pending", None)
                    self._save_state(state)
                    self.conflicts += 1
                    self._report_conflict(rel, entry)
            return pending
        finally:
            lock.release()

    def _scan(self) -> Iterator[tuple[str, str]]:
        """(relative posix path, path) of regular files to mirror, in sorted order."""
        found: list[tuple[str, str]] = []
        for root, dirs, files in os.walk(self.directory):
            dirs[:] = [d for d in dirs if not self._excluded(d)]
            for name in files:
                if self._excluded(name):
                    continue
                path = os.path.join(root, name)
                rel = os.path.relpath(path, self.directory).replace(os.sep, "/")
                found.append((rel, path))
        return iter(sorted(found))

    def _excluded(self, name: str) -> bool:
        return TMP_MARK in name or any(fnmatch.fnmatch(name, p) for p in self.exclude)

    def _sync_file(
        self,
        bucket: Any,
        state: dict[str, Any],
        rel: str,
        path: str,
        final: bool,
        deadline: float | None,
    ) -> bool:
        """Send what changed in one file; True when bytes are left for a later sync."""
        try:
            # Never through a symlink: a link to a secret must not end up in a bucket.
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return False  # vanished or unreadable: nothing to mirror
        try:
            st = os.fstat(fd)
            if not _is_regular(st.st_mode):
                return False
            append = _is_append_only(rel)
            if append and not final:
                # Whole batches only: the journal and CSV writers append each
                # batch under an exclusive lock on the file, so its size seen
                # under that lock (shared) ends a batch. "Up to the last newline"
                # alone could cut a CSV row, whose quoted cells may hold newlines.
                with held_shared(fd):
                    st = os.fstat(fd)
            entry: dict[str, Any] | None = state["files"].get(rel)
            if entry is not None and entry.get("pending"):
                entry = self._resolve_pending(bucket, state, rel, entry, deadline)
            if entry is not None and (
                entry.get("size") == st.st_size
                and entry.get("inode") == st.st_ino
                and entry.get("mtime_ns") == st.st_mtime_ns
            ):
                return False
            extend = (
                append
                and entry is not None
                and bool(entry.get("generation"))
                and entry.get("inode") == st.st_ino
                and 0 < entry["size"] <= st.st_size
                and entry.get("fingerprint") == _fingerprint(fd, entry["size"])
            )
            base = entry["size"] if extend and entry is not None else 0
            size = st.st_size
            if append and not final:
                size = _complete_length(fd, base, size)
            if extend and entry is not None:
                if size == base:
                    return st.st_size > size
                self._append(bucket, state, rel, entry, fd, st, size, deadline)
            elif append:
                if size == 0 and st.st_size > 0:
                    return True  # not one whole line yet
                self._upload_whole(bucket, state, rel, entry, fd, st, size, deadline)
            elif os.path.exists(lock_path_for(path)):
                # audit_log.json is written in place: copy it under its writers'
                # lock (a read racing a write can see a page half copied), then
                # send the copy, without holding the writers up for the upload.
                copy, st = _copy_under_lock(path, fd)
                try:
                    self._upload_whole(bucket, state, rel, entry, copy, st, st.st_size, deadline)
                finally:
                    os.close(copy)
                return False
            else:
                self._upload_whole(bucket, state, rel, entry, fd, st, size, deadline)
            return st.st_size > size
        finally:
            os.close(fd)

    def _object_name(self, rel: str, entry: dict[str, Any] | None) -> str:
        if entry is not None and entry.get("object"):
            return str(entry["object"])
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def _upload_whole(
        self,
        bucket: Any,
        state: dict[str, Any],
        rel: str,
        entry: dict[str, Any] | None,
        fd: int,
        st: os.stat_result,
        size: int,
        deadline: float | None,
    ) -> None:
        generation = int(entry.get("generation") or 0) if entry else 0
        new = dict(entry or {})
        name, token = self._mark_pending(state, rel, new, fd, st, size, op="whole")
        blob = bucket.blob(name)
        blob.metadata = {TOKEN_KEY: token}
        try:
            self._upload(blob, fd, 0, size, rel, generation, deadline)
        except Exception as exc:
            if _classify(exc) == "conflict":
                self._resolve_pending(bucket, state, rel, new, deadline, raise_conflict=True)
                return
            raise
        self._commit(state, rel, new, blob.generation)

    def _mark_pending(
        self,
        state: dict[str, Any],
        rel: str,
        entry: dict[str, Any],
        fd: int,
        st: os.stat_result,
        size: int,
        op: str,
        token: str | None = None,
        **extra: Any,
    ) -> tuple[str, str]:
        """Record in the state file, before sending, the write about to be made.

        A write whose answer is lost (a timeout, a crash) is then recognised as
        ours by its token on the next attempt. Returns ``(object name, token)``.
        """
        name = self._object_name(rel, entry)
        token = token or uuid.uuid4().hex
        entry["object"] = name
        entry["pending"] = {
            "token": token,
            "size": size,
            "inode": st.st_ino,
            "mtime_ns": st.st_mtime_ns,
            "fingerprint": _fingerprint(fd, size),
            "op": op,
            **extra,
        }
        state["files"][rel] = entry
        self._save_state(state)
        return name, token

    def _append(
        self,
        bucket: Any,
        state: dict[str, Any],
        rel: str,
        entry: dict[str, Any],
        fd: int,
        st: os.stat_result,
        size: int,
        deadline: float | None,
    ) -> None:
        generation = int(entry["generation"])
        token = uuid.uuid4().hex
        name = self._object_name(rel, entry)
        tmp = bucket.blob(f"{name}{TMP_MARK}{token}")
        self._mark_pending(state, rel, entry, fd, st, size, op="append", token=token, tmp=tmp.name)
        self._upload(tmp, fd, entry["size"], size - entry["size"], rel, 0, deadline)
        dest = bucket.blob(name)
        dest.metadata = {TOKEN_KEY: token}
        dest.content_type = _content_type(rel)
        sources = [bucket.blob(name, generation=generation), tmp]
        try:
            dest.compose(sources, if_generation_match=generation, **self._call_args(deadline))
        except Exception as exc:
            kind = _classify(exc)
            from google.api_core import exceptions as api

            if kind == "conflict":
                self._resolve_pending(bucket, state, rel, entry, deadline, raise_conflict=True)
                return
            if isinstance(exc, api.NotFound) and self._bucket_exists(bucket, deadline):
                # Our object was deleted remotely: send the whole file again, create-only.
                state["files"].pop(rel, None)
                self._remember_garbage(state, tmp.name)
                self._save_state(state)
                return
            raise
        self._remember_garbage(state, tmp.name)
        # GCS enforces the preconditions above; some emulators do not, so check the result.
        if dest.size is not None and int(dest.size) != size:
            raise _Conflict(
                f"gs://{self.bucket_name}/{name} has {dest.size} bytes after appending, "
                f"{size} expected: it was changed by someone else"
            )
        self._commit(state, rel, entry, dest.generation)
        self._collect_garbage(bucket, state, deadline)

    def _upload(
        self,
        blob: Any,
        fd: int,
        offset: int,
        length: int,
        rel: str,
        if_generation_match: int,
        deadline: float | None,
    ) -> None:
        """The one place bytes are sent: ``length`` bytes of ``fd`` from ``offset``."""
        counter = [0]
        window = _Window(fd, offset, length, counter)
        try:
            blob.upload_from_file(
                window,
                size=length,
                content_type=_content_type(rel),
                if_generation_match=if_generation_match,
                **self._call_args(deadline),
            )
        finally:
            # Bytes read for sending, each retry included: what this sync cost on the wire.
            self.bytes_uploaded += counter[0]
            self.uploads += 1

    def _commit(
        self, state: dict[str, Any], rel: str, entry: dict[str, Any], generation: Any
    ) -> None:
        pending = entry.pop("pending")
        entry.update(
            generation=int(generation),
            size=pending["size"],
            inode=pending["inode"],
            mtime_ns=pending["mtime_ns"],
            fingerprint=pending["fingerprint"],
        )
        state["files"][rel] = entry
        self._save_state(state)

    def _resolve_pending(
        self,
        bucket: Any,
        state: dict[str, Any],
        rel: str,
        entry: dict[str, Any],
        deadline: float | None,
        raise_conflict: bool = False,
    ) -> dict[str, Any]:
        """Was the pending write sent after all (a lost answer, a crash)? Adopt it or drop it."""
        pending = entry["pending"]
        if pending.get("tmp"):
            self._remember_garbage(state, pending["tmp"])
        blob = bucket.get_blob(entry["object"], **self._call_args(deadline))
        if blob is not None and (blob.metadata or {}).get(TOKEN_KEY) == pending["token"]:
            self._commit(state, rel, entry, blob.generation)
            return entry
        generation = entry.get("generation") or 0
        if raise_conflict:
            found = "exists" if blob is not None else "is missing"
            raise _Conflict(
                f"gs://{self.bucket_name}/{entry['object']} {found} but is not the version "
                f"this mirror wrote (expected generation {generation}); not overwritten"
            )
        entry.pop("pending")
        if not entry.get("generation"):
            # Never written: keep only the object name, so the file still goes where this
            # mirror meant to put it (the prefix of the run that first saw it).
            stub: dict[str, Any] = {"object": entry["object"]}
            state["files"][rel] = stub
            self._save_state(state)
            return stub
        self._save_state(state)
        return entry

    def _bucket_exists(self, bucket: Any, deadline: float | None) -> bool:
        return bool(bucket.exists(**self._call_args(deadline)))

    # ------------------------------------------------------------------ temporary objects

    @staticmethod
    def _remember_garbage(state: dict[str, Any], name: str) -> None:
        if name not in state["garbage"]:
            state["garbage"].append(name)

    def _collect_garbage(self, bucket: Any, state: dict[str, Any], deadline: float | None) -> None:
        """Delete the temporary tail objects of earlier appends (kept in the state until gone)."""
        from google.api_core import exceptions as api

        for name in list(state["garbage"]):
            try:
                bucket.blob(name).delete(**self._call_args(deadline))
            except api.NotFound:
                pass
            except api.Forbidden:
                # A retention policy (Bucket Lock) keeps them: nothing more we may do.
                pass
            state["garbage"].remove(name)
            self._save_state(state)

    # ------------------------------------------------------------------ state file

    @property
    def state_path(self) -> str:
        return os.path.join(self.directory, STATE_FILE)

    def _load_state(self) -> dict[str, Any]:
        try:
            with open(self.state_path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            data = {}
        if not isinstance(data, dict) or data.get("version") != 1:
            data = {"version": 1, "buckets": {}}
        self._state_doc = data
        bucket = data["buckets"].setdefault(self.bucket_name, {})
        bucket.setdefault("files", {})
        bucket.setdefault("garbage", [])
        return dict(bucket)

    def _save_state(self, state: dict[str, Any]) -> None:
        doc = self._state_doc
        doc["buckets"][self.bucket_name] = state
        replace_atomically(self.state_path, json.dumps(doc, indent=1, sort_keys=True).encode())

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
                "recommendation": _RECOMMENDATIONS.get(kind),
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

    def _report_conflict(self, rel: str, entry: dict[str, Any]) -> None:
        if rel in self._reported_conflicts:
            return
        self._reported_conflicts.add(rel)
        _LOG.warning(
            "GCS mirror conflict for %s: %s",
            rel,
            entry.get("conflict"),
            extra={
                "warning_type": "gcs_sync_conflict",
                "details": {
                    "bucket": self.bucket_name,
                    "object": entry.get("object"),
                    "file": os.path.join(self.directory, rel),
                    "state_file": self.state_path,
                },
                "recommendation": (
                    "Another writer owns this object name. Use a distinct prefix, or move "
                    "the object away and remove the file's entry from the state file."
                ),
            },
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} gs://{self.bucket_name}/{self.prefix} <- {self.directory}>"


def _is_regular(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)


def _internal_record(msg: str) -> logging.LogRecord:
    return logging.LogRecord("audit_logging", logging.ERROR, __file__, 0, msg, None, None)


_live_syncers: weakref.WeakSet[GcsSyncHandler] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # The parent's thread and locks are not the child's; the child starts its own on emit.
    for handler in list(_live_syncers):
        handler._reset_runtime_state()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# --------------------------------------------------------------------------- reading back


@dataclass(frozen=True)
class GcsObject:
    """One object of a listing: ``url`` is ``gs://bucket/name``."""

    bucket: str
    name: str
    size: int
    generation: int

    @property
    def url(self) -> str:
        return f"gs://{self.bucket}/{self.name}"


def parse_gcs_url(url: str) -> tuple[str, str]:
    """``gs://bucket/some/prefix`` -> ``("bucket", "some/prefix")``."""
    if not url.startswith("gs://"):
        raise ValueError(f"not a gs:// URL: {url!r}")
    bucket, _, name = url[5:].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {url!r}")
    return bucket, name


def _default_client(client: Any) -> Any:
    _require_gcs()
    if client is not None:
        return client
    from google.cloud import storage

    return storage.Client()


def list_gcs_objects(
    url: str, *, client: Any = None, suffixes: Iterable[str] | None = None, timeout: float = 60.0
) -> list[GcsObject]:
    """The objects under ``url`` (an object name or a prefix), sorted by name.

    A prefix matches whole path components (``gs://b/run`` lists ``run/...``,
    not ``run2/...``), unless it is the exact name of an object. Temporary
    objects of an append in progress are skipped. ``suffixes`` keeps names
    ending with one of them (e.g. ``(".jsonl",)``).
    """
    bucket, prefix = parse_gcs_url(url)
    client = _default_client(client)
    ends = tuple(suffixes) if suffixes is not None else None
    found = []
    for blob in client.list_blobs(bucket, prefix=prefix or None, timeout=timeout):
        name = blob.name
        if TMP_MARK in name or name.endswith("/"):
            continue
        whole_components = prefix and name != prefix and not prefix.endswith("/")
        if whole_components and not name.startswith(prefix + "/"):
            continue
        if ends is not None and not name.endswith(ends):
            continue
        found.append(GcsObject(bucket, name, int(blob.size or 0), int(blob.generation or 0)))
    return sorted(found, key=lambda o: o.name)


def open_gcs_object(obj: GcsObject | str, *, client: Any = None) -> IO[bytes]:
    """A binary stream of one object (read in chunks, pinned to its listed generation)."""
    client = _default_client(client)
    if isinstance(obj, str):
        bucket, name = parse_gcs_url(obj)
        blob = client.bucket(bucket).blob(name)
    else:
        blob = client.bucket(obj.bucket).blob(obj.name, generation=obj.generation or None)
    stream: IO[bytes] = blob.open("rb", chunk_size=1024 * 1024)
    return stream


def iter_gcs_lines(
    url: str,
    *,
    client: Any = None,
    suffixes: Iterable[str] | None = None,
    encoding: str = "utf-8",
) -> Iterator[str]:
    """Lines (with their ``\\n``) of every object under ``url``, in name order, streamed.

    Memory stays bounded by the longest line plus one chunk (1 MiB) whatever the
    object sizes. For per-file positions, combine :func:`list_gcs_objects` and
    :func:`open_gcs_object`.
    """
    client = _default_client(client)
    for obj in list_gcs_objects(url, client=client, suffixes=suffixes):
        with contextlib.closing(open_gcs_object(obj, client=client)) as raw:
            yield from io.TextIOWrapper(cast(Any, raw), encoding, newline="\n")
