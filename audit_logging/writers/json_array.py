"""JsonArrayHandler: the action audit as one JSON array, newest entry first.

What is written
===============

``audit_log.json`` holds one JSON array of entries::

    {"timestamp": ..., "action_type": ..., "status": ..., "details": {...}, "error": ...}

plus a top-level ``experiment`` field when the record carries ``experiment``
(the :class:`~audit_logging.facade.AuditLogger` always sets it), then, with
``chain=True`` (the default), ``seq`` and ``hash``. The array is kept in
descending ``timestamp`` order (ties: the later written first).

Hash chain
----------

``seq`` numbers the entries of the file from 1 in the order they were
*written* (assigned under the lock, so one chain across processes), which is
not always their place in the array: a batch older than entries another
process wrote is merged below them. ``hash`` is the journal's link (see
:mod:`audit_logging.chain`): SHA-256, or HMAC-SHA256 with ``hmac_key`` or
``AUDIT_LOG_HMAC_KEY``, over the hash of the entry with the previous ``seq``
(64 hex digits; 64 zeros before ``seq`` 1) followed by the entry's compact
bytes as written, without its ``,"hash":"..."`` member::

    hash(n) = SHA256( hash(n-1) + entry(n) without its hash member )

The last ``seq`` and ``hash`` are kept in the lock file's state, so a writer
never reads the file to continue the chain; when that state is missing or
stale (another version of the library wrote, a writer died before saving
it) the file is scanned once for the highest ``seq``.
``audit-logging verify`` checks the chain in ``seq`` order.

Field rules (see :func:`action_entry`): ``status`` is written as given, by
convention ``"success"`` or ``"failed"``; other strings are kept rather than
refused, because a dropped audit entry is worse than an unusual status. When
the record carries no ``status`` it is ``"failed"`` if the record carries an
``error``, an exception or a level of ERROR and above, else ``"success"``.
``error`` is ``null`` unless given (or, for a failed record, taken from its
exception). ``details`` is a JSON object, ``{}`` when absent; any other value
is wrapped as ``{"value": ...}``. Values JSON cannot hold are converted by
:func:`audit_logging.schema.dumps`, never dropped.

On-disk layout
==============

One JSON array, one compact entry per line, with a reserve of spaces in
front of the first entry where new entries are written in place (one
``pwrite`` per page), so that every state of the file is valid JSON, also
after ``kill -9``; see :mod:`audit_logging.array_layout` for the layout, why
it is crash-safe, and what is not guaranteed.

Several processes and handlers
------------------------------

Writers serialise on an exclusive ``portalocker`` lock (``flock``, the lock
concurrent-log-handler uses) on a sibling ``.{name}.lock`` file, taken once per
batch; the data file itself cannot carry the lock because rewrites replace it.
The lock file also holds the inode and the offset of the first entry, so no
writer scans the reserve; the offset is checked (the 8 KiB before it must be
whitespace) and recomputed if a writer died before updating it. Its second
line holds inode, offset, last ``seq`` and last ``hash``; it is trusted only
when inode and offset match the first line, which every writer (also of
earlier versions, which write the first 64 bytes only) updates after each
batch, so a batch by a writer that did not chain makes it stale.

Damaged files
-------------

The first write of a handler validates the file (one full parse). A file that
is not a JSON array is renamed to ``{name}.corrupt-{UTC time}`` (never deleted,
never emptied), reported through ``handleError``, and a new file begun. A valid
array in another layout (e.g. the indented file of the WeightsLab reference) is
rewritten, entries unchanged, in this layout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence

from audit_logging import manifest
from audit_logging._files import (
    chunks,
    ensure_directory,
    locked_for_writing,
    open_created,
    open_existing,
    pwrite_all,
)
from audit_logging.array_file import (
    CorruptAuditFileError,
    lock_path_for,
    read_array_bytes,
    read_entries,
    reading_lock,
    recorded_seq,
    scan_lines,
    skip_whitespace,
    write_new_array,
)
from audit_logging.array_layout import (
    CHAIN_STATE_SIZE,
    CHAIN_TAIL,
    PAGE,
    STATE_SIZE,
    WS,
    Entry,
    displaced,
    entry_ts,
    layout_ok,
    merge,
    newest_first,
    pack,
    parse_chain_state,
    parse_front_state,
    split_merge,
    state_bytes,
)
from audit_logging.chain import GENESIS, link_lines
from audit_logging.records import action_entry
from audit_logging.schema import ACTION_KEY, dumps
from audit_logging.writers._base import FileAuditWriter, writer_location

# Re-exported where earlier versions had them (the readers live in array_file now).
__all__ = [
    "PAGE",
    "CorruptAuditFileError",
    "JsonArrayHandler",
    "lock_path_for",
    "read_array_bytes",
    "read_entries",
    "reading_lock",
    "recorded_seq",
]

_SPACES = b" " * (2 * PAGE)
_EMPTY_CHAIN = (0, GENESIS.encode("ascii"))


def _utc_stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


class JsonArrayHandler(FileAuditWriter):
    """Writes records carrying ``action_type`` into a JSON array file, newest entry first.

    dictConfig::

        "actions": {"class": "audit_logging.JsonArrayHandler", "directory": "runs"}

    The file is ``{directory}/{filename}`` (``./audit_log.json`` by default);
    ``path`` (the whole file path) still works, with a ``DeprecationWarning``.

    Entries are never lost to a crash of the writer, and the file is a whole
    JSON array between any two writes (read it with :func:`read_entries`
    while writers are busy); see the module docstring for the layout.
    With ``chain=True`` (the default) entries end with ``seq`` and ``hash``,
    a hash chain (HMAC-SHA256 with ``hmac_key`` or ``AUDIT_LOG_HMAC_KEY``)
    that ``audit-logging verify`` checks.
    """

    key = ACTION_KEY

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        level: int | str = logging.NOTSET,
        *,
        directory: str | os.PathLike[str] | None = None,
        filename: str = "audit_log.json",
        chain: bool = True,
        hmac_key: str | bytes | None = None,
        file_mode: int = 0o600,
        dir_mode: int = 0o700,
        redact: bool = True,
        secret_keys: Iterable[str] | None = None,
    ) -> None:
        super().__init__(
            writer_location(type(self), path, directory, filename),
            level,
            chain=chain,
            hmac_key=hmac_key,
            file_mode=file_mode,
            dir_mode=dir_mode,
            redact=redact,
            secret_keys=secret_keys,
        )
        self.lock_path = lock_path_for(self.path)
        self._fd = -1
        self._ino = -1
        self._lock_fd = -1
        self._validated = False
        self._chain_state = b""  # the state's second line, as read by _front

    # ------------------------------------------------------------------ writing

    def write_records(self, records: Sequence[logging.LogRecord]) -> None:
        batch = self.render_each(records, self._entry)
        if not batch:
            return
        with self._locked():
            self._insert(batch, records[0])
        self.records_written += len(batch)

    def _entry(self, record: logging.LogRecord) -> Entry:
        entry = action_entry(record, self.redactor)
        return Entry(entry["timestamp"], dumps(entry))

    def _open_lock(self) -> int:
        """Open the lock file (again, when it was removed: others lock the new one)."""
        self._close_fds()
        # Not O_APPEND: the state is written at offset 0 (pwrite ignores it under O_APPEND).
        self._lock_fd = open_created(self.lock_path, os.O_RDWR, self.file_mode, self.dir_mode)
        return self._lock_fd

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = self._lock_fd if self._lock_fd >= 0 else self._open_lock()
        with locked_for_writing(fd, self._open_lock):
            yield

    def _insert(self, batch: list[Entry], record: logging.LogRecord) -> None:
        size = self._open_data(record)
        front = self._front(size)
        end_byte = os.pread(self._fd, 1, front)
        if end_byte not in (b"{", b"]"):
            # Not our layout any more (edited by hand?): validate it as on start.
            self._validated = False
            size = self._open_data(record)
            front = self._front(size)
        tail: tuple[int, bytes] | None = None
        if self.chain:
            seq, last = self._chain_tail(front, size)
            # In write order: the order of the records.
            bodies = (e.body[:-1] for e in batch)
            lines, seq, last = link_lines(bodies, seq, last, self._link, end=b"")
            batch = [Entry(e.ts, line) for e, line in zip(batch, lines, strict=True)]
            tail = (seq, last)
        ordered = newest_first(batch)
        new_front = self._insert_in_place(ordered, front, size)
        if new_front is None:
            new_front = self._rewrite(ordered, front)
        self._save_front(new_front, tail)

    def _chain_tail(self, front: int, size: int) -> tuple[int, bytes]:
        """``(seq, hash)`` of the last entry written: from the lock file's state, else a scan."""
        recorded = parse_chain_state(self._chain_state, self._ino, front)
        if recorded is not None:
            return recorded
        # Stale or missing: the one case where the file is read whole.
        best = _EMPTY_CHAIN
        for match in CHAIN_TAIL.finditer(b"".join(chunks(self._fd, 0, size))):
            seq = int(match[1])
            if seq > best[0]:
                best = (seq, match[2])
        return best

    def _insert_in_place(self, batch: list[Entry], front: int, size: int) -> int | None:
        fd = self._fd
        window = os.pread(fd, min(size - front, 2 * PAGE), front)
        complete = front + len(window) == size
        front_entries = displaced(window, front, batch[-1].ts, complete)
        if front_entries is None:
            return None
        writes: list[tuple[int, bytes]] | None
        if not front_entries.entries:
            writes = pack(batch, front, last_comma=window.startswith(b"{"))
            if writes is None:
                return None
        else:
            # Rewrite the displaced entries and the batch's older ones with one
            # pwrite inside one page, then add the batch's newer ones in front.
            page_start = (front_entries.end - 1) // PAGE * PAGE
            if front < page_start:
                return None
            head, tail = split_merge(batch, front_entries.entries)
            tail_bytes = b",\n".join(e.body for e in tail)
            tail_bytes += b",\n" if front_entries.comma else b"\n"
            start = front_entries.end - len(tail_bytes)
            if start < max(1, page_start):
                return None
            head_writes = pack(head, start, last_comma=True)
            if head_writes is None:
                return None
            writes = [*head_writes, (start, tail_bytes)]
        # Highest offset first: each write puts whole entries in front of the array.
        for offset, data in reversed(writes):
            pwrite_all(fd, data, offset)
        return writes[0][0]

    # ------------------------------------------------------------------ rewriting

    def _rewrite(self, batch: list[Entry], front: int) -> int:
        """Insert ``batch`` by writing a new file (reserve regrown), then ``os.replace``."""
        size = os.fstat(self._fd).st_size
        oldest = batch[-1].ts
        displaced: list[Entry] = []
        pos, comma = size, False
        for item_offset, item, next_offset in scan_lines(self._fd, front, size):
            if item.startswith(b"]"):
                pos, comma = item_offset, False
                break
            ts = entry_ts(item)
            if ts <= oldest:
                pos, comma = item_offset, True
                break
            comma = item.endswith(b",")
            displaced.append(Entry(ts, item[:-1] if comma else item))
            if not comma:  # the oldest entry of the file
                pos = next_offset
                break
        merged = merge(batch, displaced)
        head = b",\n".join(e.body for e in merged) + (b",\n" if comma else b"\n")
        return self._write_new_file(head, rest_from=pos, rest_size=size - pos)

    def _write_new_file(self, head: bytes, rest_from: int = 0, rest_size: int = 0) -> int:
        """Replace the file by a new one (:func:`write_new_array`); ``self._fd`` then refers to it.

        Returns the offset of the first entry.
        """
        new, front = write_new_array(
            self.path, self._fd, head, rest_from, rest_size, self.file_mode
        )
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = new
        self._ino = os.fstat(new).st_ino
        return front

    # ------------------------------------------------------------------ opening / state

    def _open_data(self, record: logging.LogRecord) -> int:
        """Open (or reopen after a rewrite elsewhere) the data file; its size. Under the lock."""
        try:
            st = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is None:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            ensure_directory(os.path.dirname(self.path) or ".", self.dir_mode)
            self._save_front(self._write_new_file(b""), _EMPTY_CHAIN)
            self._validated = True
            directory, name = os.path.split(self.path)
            self._manifest(manifest.created, directory or ".", name, "array")
            return os.fstat(self._fd).st_size
        if st.st_ino != self._ino or self._fd < 0:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            self._fd = open_existing(self.path)
            self._ino = os.fstat(self._fd).st_ino
        if not self._validated:
            self._validate(record)
            self._validated = True
        return os.fstat(self._fd).st_size

    def _validate(self, record: logging.LogRecord) -> None:
        """Check the whole file once: set a damaged one aside, convert another layout."""
        size = os.fstat(self._fd).st_size
        data = b"".join(chunks(self._fd, 0, size))
        if not data.strip(WS):
            # Empty (e.g. touched): nothing to keep.
            self._save_front(self._write_new_file(b""), _EMPTY_CHAIN)
            return
        try:
            entries = json.loads(data)
            if not isinstance(entries, list):
                raise ValueError(f"a JSON {type(entries).__name__}, not an array")
        except (ValueError, RecursionError) as exc:
            self._set_aside(record, exc)
            return
        if layout_ok(data):
            return
        lines = []
        for entry in entries:
            if isinstance(entry, dict) and "timestamp" in entry:
                entry = {"timestamp": entry["timestamp"], **entry}
            lines.append(dumps(entry))
        head = b",\n".join(lines) + b"\n" if lines else b""
        self._save_front(self._write_new_file(head))

    def _set_aside(self, record: logging.LogRecord, exc: BaseException) -> None:
        aside = f"{self.path}.corrupt-{_utc_stamp()}"
        n = 1
        while os.path.lexists(aside):
            n += 1
            aside = f"{self.path}.corrupt-{_utc_stamp()}-{n}"
        os.rename(self.path, aside)
        self._save_front(self._write_new_file(b""), _EMPTY_CHAIN)
        error = CorruptAuditFileError(
            f"{self.path!r} was not a valid JSON array ({exc}); it was moved to {aside!r} "
            "and a new file begun"
        )
        self._report(record, error)

    def _front(self, size: int) -> int:
        """Offset of the first entry (or of ``]``): from the lock file's state, checked."""
        fd = self._fd
        raw = os.pread(self._lock_fd, STATE_SIZE + CHAIN_STATE_SIZE, 0)
        self._chain_state = raw[STATE_SIZE:]
        state = parse_front_state(raw)
        if state is not None:
            ino, front = state
            if ino == self._ino and 1 <= front < size:
                low = max(1, front - 2 * PAGE)
                before = os.pread(fd, front - low, low)
                # Spaces (the reserve) compare as one memcmp; strip() costs ~10 us on 8 KiB.
                blank = before == _SPACES[: len(before)] or not before.strip(WS)
                if blank and os.pread(fd, 1, front) in (b"{", b"]"):
                    return front
        # A writer died before saving the state, or it is missing: scan the reserve.
        return skip_whitespace(self._fd, 1, size)

    def _save_front(self, front: int, tail: tuple[int, bytes] | None = None) -> None:
        """Record the first entry's offset and, when known, the chain's last ``(seq, hash)``.

        Both lines are written by one ``pwrite``; the first keeps the format
        of earlier versions, which read and write only those 64 bytes.
        """
        os.pwrite(self._lock_fd, state_bytes(self._ino, front, tail), 0)

    # ------------------------------------------------------------------ lifecycle

    def _close_fds(self) -> None:
        for name in ("_fd", "_lock_fd"):
            fd = getattr(self, name)
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
                setattr(self, name, -1)
        self._ino = -1

    def close(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._close_fds()
        super().close()

    def _after_fork_in_child(self) -> None:
        self._close_fds()
