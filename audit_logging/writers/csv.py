"""CsvHandler: the action audit as a CSV file for spreadsheets, in append order.

``audit_log.csv`` has the header ``timestamp,action_type,status,details,error``
and one row per entry, oldest first (a spreadsheet log grows at the bottom).
The cells are those of :func:`audit_logging.records.action_entry`;
``details`` is its JSON text (strict JSON, ``{}`` when absent), ``error`` is
empty when there is none. The file is UTF-8 without a byte-order mark (so
``csv.reader`` and pandas read the header as written); rows are quoted by the
:mod:`csv` module (RFC 4180, ``\\r\\n`` line ends), so a newline inside a cell
is quoted, never a fake row.

Formula injection (OWASP "CSV injection"): a cell starting with ``=``, ``+``,
``-``, ``@``, tab or carriage return would be run as a formula by Excel or
LibreOffice, so it is written with a leading single quote (``'=1+1``). That
applies to every cell but the timestamp, which the library writes itself.
:func:`restore_cell` undoes it when reading the file back.

Several processes may append: each batch is one ``write()`` on an ``O_APPEND``
descriptor under an exclusive ``portalocker`` lock on the file (the lock
concurrent-log-handler uses), and the header is written under that lock by
whoever finds the file empty, so it is written once. A writer killed in the
middle of a write can leave a torn last row; the next writer never glues its
rows to it: it starts a new line, and first closes the torn row's quoted cell
if it was left open (found by counting quotes, only in that rare case).

Hash chain (``chain=True``; off by default, so that the default file keeps
exactly the five columns above): the header gains two trailing columns,
``...,error,seq,hash``, and every row two trailing cells: ``seq`` numbers the
rows from 1 and ``hash`` is the journal's link (see :mod:`audit_logging.chain`;
SHA-256, or HMAC-SHA256 with ``hmac_key`` or ``AUDIT_LOG_HMAC_KEY``) over the
previous row's hash (64 hex digits; 64 zeros for the first row) followed by
the row's exact UTF-8 bytes from its first byte up to and including the
``seq`` cell, i.e. without the ``,`` before the hash cell, the hash cell and
the ``\r\n``::

    row(n) on disk = cells(n) + "," + seq + "," + hash(n) + "\r\n"
    hash(n)        = SHA256( hash(n-1) + cells(n) + "," + seq )

``seq`` and ``hash`` are digits and hex, never quoted. The previous row's
``seq`` and ``hash`` are read from the end of the file under the lock (only
when another writer appended since our last batch), so several processes
keep one chain. A file keeps the columns its header has: a chained handler
that finds an unchained file (or the reverse) writes rows in the file's
format and reports the mismatch once through ``handleError``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence

from audit_logging import manifest
from audit_logging._files import (
    TAIL_LIMIT,
    append_whole,
    chunks,
    chunks_backwards,
    locked_for_writing,
    open_append,
)
from audit_logging.chain import GENESIS, link_lines
from audit_logging.records import (
    CHAINED_HEADER,
    FORMULA_TRIGGERS,
    HEADER,
    action_row,
    cell,
    neutralise,
    render_row,
    restore_cell,
)
from audit_logging.schema import ACTION_KEY
from audit_logging.writers._base import FileAuditWriter, writer_location

# The row rendering lives in records.py (one home per record kind); re-exported here.
__all__ = [
    "CHAINED_HEADER",
    "FORMULA_TRIGGERS",
    "HEADER",
    "AuditCsvFormatter",
    "CsvHandler",
    "action_row",
    "cell",
    "neutralise",
    "render_row",
    "restore_cell",
]

#: The two cells closing a chained row.
_CHAIN_CELLS = re.compile(rb",(\d+),([0-9a-f]{64})\r?\n")


class AuditCsvFormatter(logging.Formatter):
    """Formats a record as one action-audit CSV row (without the line end).

    For a ``StreamHandler`` or any handler that adds its own terminator::

        "formatters": {"csv": {"()": "audit_logging.AuditCsvFormatter"}}
    """

    def format(self, record: logging.LogRecord) -> str:
        return render_row(action_row(record))[:-2]


def read_tail(fd: int, size: int) -> tuple[int, bytes]:
    """``(seq, hash)`` of the last whole chained row of a file of ``size`` bytes.

    Reads backwards from the end, never the whole file; ``(0, 64 zeros)``
    when there is no chained row (a header only, or an unchained file).
    """
    buffer = b""
    for _, chunk in chunks_backwards(fd, max(0, size - TAIL_LIMIT), size):
        buffer = chunk + buffer
        matches = _CHAIN_CELLS.findall(buffer)
        if matches:
            seq, digest = matches[-1]
            return int(seq), digest
    return 0, GENESIS.encode("ascii")


def _open_quote(fd: int, size: int) -> bool:
    """Whether the file ends inside a quoted cell (an odd number of ``"``)."""
    return sum(data.count(b'"') for data in chunks(fd, 0, size)) % 2 == 1


class CsvHandler(FileAuditWriter):
    """Appends records carrying ``action_type`` as rows of ``audit_log.csv``.

    dictConfig::

        "sheet": {"class": "audit_logging.CsvHandler", "directory": "runs"}

    The file is ``{directory}/{filename}`` (``./audit_log.csv`` by default);
    ``path`` (the whole file path) still works, with a ``DeprecationWarning``.

    With ``chain=True`` rows end with ``seq`` and ``hash`` cells, a hash chain
    (HMAC-SHA256 with ``hmac_key`` or ``AUDIT_LOG_HMAC_KEY``) that
    ``audit-logging verify`` checks; see the module docstring.
    """

    key = ACTION_KEY

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        level: int | str = logging.NOTSET,
        *,
        directory: str | os.PathLike[str] | None = None,
        filename: str = "audit_log.csv",
        chain: bool = False,
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
        self._fd = -1
        self._end = -1  # file size after our last write; -1 = unknown
        self._chained: bool | None = None  # the open file's format, from its header
        self._seq = 0  # seq and hash of the last row, valid when the size is _end
        self._hash = GENESIS.encode("ascii")
        self._mismatch_reported = False

    def write_records(self, records: Sequence[logging.LogRecord]) -> None:
        # Rendered here without their line ends; chained (or not) under the lock.
        cells = self.render_each(records, self._cells)
        if not cells:
            return
        self._append(cells, records[0])
        self.records_written += len(cells)

    def _cells(self, record: logging.LogRecord) -> bytes:
        return render_row(action_row(record, self.redactor))[:-2].encode("utf-8")

    def _file_chained(self) -> bool:
        """Whether the open file's header has the ``seq,hash`` columns (read once per open)."""
        if self._chained is None:
            first = os.pread(self._fd, len(CHAINED_HEADER), 0)
            self._chained = first == CHAINED_HEADER.encode("utf-8")
        return self._chained

    def _chain_rows(self, size: int, cells: list[bytes]) -> bytes:
        """``cells`` (rendered rows without line end) with ``seq`` and ``hash``, as bytes."""
        if size != self._end:
            # Another process (or an earlier run) appended: read its last row.
            self._seq, self._hash = read_tail(self._fd, size)
        lines, self._seq, self._hash = link_lines(
            cells, self._seq, self._hash, self._link, csv=True, end=b"\r\n"
        )
        return b"".join(lines)

    def _open(self) -> int:
        """Open the file (again: see :func:`locked_for_writing`)."""
        self._close_fd()
        self._fd = open_append(self.path, self.file_mode, self.dir_mode)
        return self._fd

    def _append(self, cells: list[bytes], record: logging.LogRecord) -> None:
        fd = self._fd if self._fd >= 0 else self._open()
        with locked_for_writing(fd, self._open) as (_, st):
            size = st.st_size
            prefix = b""
            if size == 0:
                self._chained = self.chain
                prefix = (CHAINED_HEADER if self.chain else HEADER).encode("utf-8")
            elif size != self._end and os.pread(self._fd, 1, size - 1) != b"\n":
                # A writer died mid-row: end that row (closing its open quote).
                prefix = b'"\r\n' if _open_quote(self._fd, size) else b"\r\n"
            chained = self._file_chained()
            if chained != self.chain and not self._mismatch_reported:
                self._report_mismatch(record)
            rows = self._chain_rows(size, cells) if chained else b"\r\n".join(cells) + b"\r\n"
            data = prefix + rows
            append_whole(self._fd, data, size)
            self._end = size + len(data)
            directory, name = os.path.split(self.path)
            if size == 0:
                self._manifest(manifest.created, directory or ".", name, "csv")
            if not chained:  # no chain of its own: the manifest keeps each batch's SHA-256
                self._manifest(manifest.batch, directory or ".", name, size, data)

    def _report_mismatch(self, record: logging.LogRecord) -> None:
        self._mismatch_reported = True
        have, want = ("with", "without") if self._chained else ("without", "with")
        self._report(
            record,
            ValueError(
                f"{self.path!r} has a header {have} seq,hash columns: rows are written "
                f"{have} them, not {want} them as chain={self.chain} asks"
            ),
        )

    def _close_fd(self) -> None:
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = -1
        self._end = -1
        self._chained = None

    def close(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._close_fd()
        super().close()

    def _after_fork_in_child(self) -> None:
        self._close_fd()
