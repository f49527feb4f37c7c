"""WarningFileHandler: persistent warnings, one JSON file each, meant to be committed to git.

File layout: ``{directory}/{YYYY-MM-DD_HH-MM-SS}_{type}_{fp8}.json`` (UTC
creation second of the record, the warning type, the first 8 hex digits of
its fingerprint), body ``{timestamp, type, severity, fingerprint, git_commit,
message, recommendation}`` plus ``details`` when the record carries them.

Design choices, and why:

* **Indented JSON** (2 spaces, sorted as the schema lists the fields, final
  newline). These files are reviewed in pull requests and ``git diff``; one
  short warning per file makes the extra bytes irrelevant and the readability
  worth it. The values are first made strict JSON by :func:`schema.dumps`.
* **Same second, same fingerprint**: the first file gets the plain name, the
  next ones ``..._{fp8}_0002.json``, ``_0003`` ... The suffix starts with ``_``
  (which sorts after ``.``) and is zero-padded, so a plain byte-order sort
  (``sorted()``, ``LC_ALL=C ls``) keeps them in order of creation. Each name is
  claimed with ``os.link`` of a finished temporary file: ``link`` fails if the
  name exists, so two processes can never overwrite each other's warning.
* **Atomic**: the body is written to a hidden temporary file
  (``.{name}.{pid}.{random}.tmp``, created with ``O_EXCL``, so it is never a
  planted symlink, and it matches no ``*.json`` glob), ``fsync``-ed, then
  linked to its final name and unlinked; the directory is ``fsync``-ed. A
  reader sees no file or the whole file, also after ``kill -9`` (a leftover
  temporary file is removed by the next writer after :data:`STALE_TEMP_SECONDS`).
  Where the filesystem has no hard links, ``os.replace`` after an existence
  check is used instead (the check and the rename are then not one step).
* **Fingerprint**: the one given in ``extra``, else SHA-256 over the type,
  the message and the details, computed *after* redaction so that a
  fingerprint cannot be used to guess a redacted secret. The name uses its
  first 8 characters when those are lowercase hex, else the first 8 hex digits
  of a SHA-256 of it (a fingerprint is never trusted as a path component).
* **git_commit**: the one given in ``extra``, else ``HEAD`` of the repository
  holding the working directory read with gitpython (cached per process and
  working directory for :data:`COMMIT_TTL` seconds), else ``null``. This is a
  few lines of gitpython rather than a call into ``audit_logging.probes``:
  writers import nothing above ``schema``.
* **Retention, cheap**: an in-memory index of the folder (per type, sorted by
  name, which is by time) is built by one directory scan at the first write
  and updated by each write and deletion, so a write costs one ``stat`` of the
  folder, not a rescan. The folder is rescanned when our index says a limit is
  exceeded (the truth may differ: other processes delete too), when the
  folder's mtime shows that someone else changed it (at most once a second),
  every :data:`RESCAN_SECONDS`, and on ``close()``. Age is read from the name,
  not the file's mtime (a ``git checkout`` resets mtimes). The file just
  written is never deleted by its own write. Files whose names are not
  warning names (a README in the folder) are never touched. Deleting a file
  another process deleted first is not an error.
* **Secrets**: the whole body goes through :func:`audit_logging.redact.redact`
  (keys like ``password``/``token``/``private_key``, PEM keys, bearer tokens,
  service-account JSON) before it is written.
"""

from __future__ import annotations

import calendar
import errno
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from audit_logging import manifest
from audit_logging._files import create_temp, fsync_directory, write_all
from audit_logging._git_head import COMMIT_TTL, current_commit
from audit_logging._options import check_writer_options
from audit_logging.records import warning_body
from audit_logging.schema import WARNING_KEY
from audit_logging.writers._base import AuditWriter, UnwrittenRecords
from audit_logging.writers._warning_index import WarningIndex

__all__ = ["COMMIT_TTL", "WarningFileHandler", "current_commit", "warning_filename"]

#: Seconds between two full scans of the folder (reconciling with other processes).
RESCAN_SECONDS: Final = 60.0
#: Age after which a leftover temporary file (a writer killed mid-write) is removed.
STALE_TEMP_SECONDS: Final = 600.0
_FOREIGN_RESCAN_MIN: Final = 1.0

_HEX8_RE: Final = re.compile(r"[0-9a-f]{8}")
#: A warning file name: timestamp, type, 8 hex digits, optional collision number.
NAME_RE: Final = re.compile(
    r"(?P<ts>\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d)_(?P<type>[a-z0-9_]+)_(?P<fp>[0-9a-f]{8})"
    r"(?:_(?P<n>\d{4,}))?\.json"
)


# --------------------------------------------------------------------------- names


def _fp8(fingerprint: object) -> str:
    text = fingerprint if isinstance(fingerprint, str) else json.dumps(fingerprint, default=str)
    head = text[:8]
    if _HEX8_RE.fullmatch(head):
        return head
    return hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()[:8]


def warning_filename(created: float, warning_type: str, fingerprint: str, n: int = 1) -> str:
    """The file name of a warning: ``{YYYY-MM-DD_HH-MM-SS}_{type}_{fp8}[_{n:04d}].json`` (UTC)."""
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S", time.gmtime(created))
    suffix = "" if n <= 1 else f"_{n:04d}"
    return f"{stamp}_{warning_type}_{_fp8(fingerprint)}{suffix}.json"


def _utc_seconds(stamp: str) -> float:
    return float(calendar.timegm(time.strptime(stamp, "%Y-%m-%d_%H-%M-%S")))


# --------------------------------------------------------------------------- handler


class WarningFileHandler(AuditWriter):
    """Writes each record carrying ``warning_type`` as its own JSON file (see the module docs).

    ``extra`` keys read: ``warning_type`` (``[a-z0-9_]+``, else the record is
    rejected through ``handleError``: it becomes a file name), ``severity``
    (default: :data:`~audit_logging.schema.DEFAULT_SEVERITIES`, else the
    record's level name), ``fingerprint``, ``git_commit``, ``recommendation``,
    ``details``. Retention keeps at most ``max_files_per_type`` files per type,
    none older than ``max_age_days`` and at most ``max_total_bytes`` in all
    (``None`` disables a limit). ``secret_keys`` replaces the key words of
    :data:`audit_logging.redact.DEFAULT_SECRET_KEYS`.
    """

    key = WARNING_KEY

    def __init__(
        self,
        directory: str | os.PathLike[str] = "training_logs/warnings",
        max_files_per_type: int | None = 100,
        max_age_days: float | None = 90,
        max_total_bytes: int | None = 10 * 1024 * 1024,
        level: int | str = logging.NOTSET,
        *,
        file_mode: int = 0o600,
        dir_mode: int = 0o700,
        redact: bool = True,
        secret_keys: Iterable[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            level, file_mode=file_mode, dir_mode=dir_mode, redact=redact, secret_keys=secret_keys
        )
        #: What "now" is for ``max_age_days`` (injectable, e.g. to replay a long run).
        self.clock = clock
        for name, limit in (
            ("max_files_per_type", max_files_per_type),
            ("max_age_days", max_age_days),
            ("max_total_bytes", max_total_bytes),
        ):
            # Wrong types are check_writer_options's to name.
            if isinstance(limit, (int, float)) and not isinstance(limit, bool) and limit <= 0:
                raise ValueError(f"{name} must be positive or None, not {limit!r}")
        check_writer_options(
            type(self).__name__,
            max_files_per_type=max_files_per_type,
            max_age_days=max_age_days,
            max_total_bytes=max_total_bytes,
        )
        self.directory = os.fspath(directory)
        self.max_files_per_type = max_files_per_type
        self.max_age_days = max_age_days
        self.max_total_bytes = max_total_bytes
        #: Files this handler deleted to keep within the limits.
        self.files_deleted = 0
        #: Deletions that failed for another reason than "already gone".
        self.retention_errors = 0
        self._index: WarningIndex | None = None
        self._scanned_at = 0.0
        self._dir_mtime: int | None = None
        self._next_n: dict[str, int] = {}
        self._retention_failing = False

    # ------------------------------------------------------------------ rendering

    def render(self, record: logging.LogRecord) -> tuple[str, dict[str, Any]]:
        """The warning type and the redacted, JSON-safe body of ``record``.

        The body is :func:`audit_logging.records.warning_body`'s, with
        ``git_commit`` looked up when the record does not carry it. Raises
        ``ValueError`` when ``warning_type`` is not a valid name.
        """
        wtype, body = warning_body(record, self.redactor)
        if body["git_commit"] is None:
            body["git_commit"] = current_commit()
        return wtype, body

    @staticmethod
    def serialize(body: dict[str, Any]) -> bytes:
        return (json.dumps(body, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    # ------------------------------------------------------------------ writing

    def write_records(self, records: Sequence[logging.LogRecord]) -> None:
        for i, record in enumerate(records):
            try:
                wtype, body = self.render(record)
            except ValueError as exc:
                self.reject(record, exc)
                continue
            try:
                name = self._write_file(record.created, wtype, body["fingerprint"], body)
            except Exception as exc:
                # One file per warning: those already written must not be written again.
                raise UnwrittenRecords(records[i:]) from exc
            self.records_written += 1
            self._apply_retention(record, keep=name)

    def _write_file(self, created: float, wtype: str, fingerprint: Any, body: Any) -> str:
        data = self.serialize(body)
        self._ensure_directory()
        base = warning_filename(created, wtype, fingerprint)
        tmp, fd = create_temp(os.path.join(self.directory, base), self.file_mode)
        try:
            try:
                write_all(fd, data)
                os.fsync(fd)
                mtime_ns = os.fstat(fd).st_mtime_ns
            finally:
                os.close(fd)
            name = self._claim_name(tmp, created, wtype, fingerprint, base)
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        fsync_directory(self.directory)
        self._manifest(manifest.created, self.directory, name, "warning", data)
        assert self._index is not None
        self._index.add(wtype, name, len(data), mtime_ns)
        return name

    def _claim_name(self, tmp: str, created: float, wtype: str, fp: Any, base: str) -> str:
        n = self._next_n.get(base, 1)
        while True:
            name = warning_filename(created, wtype, fp, n)
            path = os.path.join(self.directory, name)
            try:
                os.link(tmp, path, follow_symlinks=False)
            except FileExistsError:
                n += 1
                continue
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                    raise
                # No hard links here (some network and FUSE filesystems).
                if os.path.lexists(path):
                    n += 1
                    continue
                os.replace(tmp, path)
            # Remember where the numbering got to: a burst of identical warnings
            # in one second does not retry every taken name.
            self._next_n = {base: n + 1}
            return name

    def _ensure_directory(self) -> None:
        if not os.path.isdir(self.directory):
            os.makedirs(self.directory, mode=self.dir_mode, exist_ok=True)
            self._index = None  # removed under us: whatever we knew is gone
        if self._index is None:
            self._rescan()

    # ------------------------------------------------------------------ retention

    def _rescan(self) -> None:
        index = WarningIndex()
        now = time.time()
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            entries = []
        for entry in entries:
            name = entry.name
            match = NAME_RE.fullmatch(name)
            try:
                if match is not None:
                    if entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        index.add(match["type"], name, st.st_size, st.st_mtime_ns)
                elif name.startswith(".") and name.endswith(".tmp"):
                    st = entry.stat(follow_symlinks=False)
                    if now - st.st_mtime > STALE_TEMP_SECONDS:
                        os.unlink(entry.path)
            except FileNotFoundError:
                continue  # deleted by another process while we looked
        self._index = index
        self._scanned_at = time.monotonic()
        self._dir_mtime = self._folder_mtime()

    def _folder_mtime(self) -> int | None:
        try:
            return os.stat(self.directory).st_mtime_ns
        except OSError:
            return None

    def _over_limits(self, index: WarningIndex, wtype: str, now: float) -> bool:
        if self.max_total_bytes is not None and index.total > self.max_total_bytes:
            return True
        names = index.names.get(wtype, [])
        if self.max_files_per_type is not None and len(names) > self.max_files_per_type:
            return True
        if self.max_age_days is not None:
            oldest = index.oldest()
            if oldest is not None and self._is_expired(oldest[1], now):
                return True
        return False

    def _is_expired(self, name: str, now: float) -> bool:
        assert self.max_age_days is not None
        return _utc_seconds(name[:19]) < now - self.max_age_days * 86400

    def _apply_retention(self, record: logging.LogRecord, keep: str) -> None:
        try:
            self._retention(keep)
        except Exception as exc:
            self.retention_errors += 1
            if not self._retention_failing:
                self._retention_failing = True
                self._report(record, exc)
        else:
            self._retention_failing = False

    def _retention(self, keep: str, *, force_scan: bool = False) -> None:
        match = NAME_RE.fullmatch(keep)
        wtype = match["type"] if match else ""
        index = self._index
        now = self.clock()
        mono = time.monotonic()
        mtime = self._folder_mtime()
        foreign = mtime != self._dir_mtime and mono - self._scanned_at >= _FOREIGN_RESCAN_MIN
        if (
            index is None
            or force_scan
            or foreign
            or mono - self._scanned_at >= RESCAN_SECONDS
            or self._over_limits(index, wtype, now)
        ):
            self._rescan()
            index = self._index
            assert index is not None
            if keep:
                index.add(wtype, keep, 0, time.time_ns())  # raced with a deletion
        if self.max_age_days is not None:
            victims: list[tuple[str, str]] = []
            for t, names in index.names.items():
                for n in names:  # sorted by time: stop at the first young one
                    if not self._is_expired(n, now):
                        break
                    if n != keep:
                        victims.append((t, n))
            for t, n in victims:
                self._delete(index, t, n)
        if self.max_files_per_type is not None:
            for t, names in list(index.names.items()):
                excess = len(names) - self.max_files_per_type
                for n in [n for n in names if n != keep][: max(0, excess)]:
                    self._delete(index, t, n)
        if self.max_total_bytes is not None:
            while index.total > self.max_total_bytes:
                oldest = index.oldest(keep)
                if oldest is None:
                    break  # only the file just written is left: it stays
                self._delete(index, *oldest)
        self._dir_mtime = self._folder_mtime()

    def _delete(self, index: WarningIndex, wtype: str, name: str) -> None:
        index.remove(wtype, name)
        try:
            os.unlink(os.path.join(self.directory, name))
        except FileNotFoundError:
            return  # another process's clean-up got there first
        self.files_deleted += 1
        self._manifest(manifest.retired, self.directory, name, "retention")

    def enforce_retention(self) -> None:
        """Rescan the folder and apply the limits now (also done on every write and on close)."""
        with self.lock:  # type: ignore[union-attr]
            if os.path.isdir(self.directory):
                self._retention("", force_scan=True)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        try:
            if self._index is not None:
                self.enforce_retention()
        except Exception:
            pass  # close must not raise; the limits are enforced again at the next write
        super().close()

    def _after_fork_in_child(self) -> None:
        self._index = None  # the parent keeps writing too: start from the folder's truth

    @property
    def output_directory(self) -> str:
        return self.directory

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.directory}>"
