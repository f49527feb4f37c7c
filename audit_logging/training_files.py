"""What :class:`~audit_logging.training.TrainingRun` reads from files: size, SHA-256, CSV shape.

Files are streamed in 1 MiB chunks, never loaded whole; a CSV is parsed by
:mod:`csv` over the same hashing stream, so that it is read once.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from dataclasses import dataclass
from typing import IO, Any

__all__ = ["DatasetInfo", "file_sha256", "scan_csv"]

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class DatasetInfo:
    """What :meth:`TrainingRun.dataset` read from a CSV file."""

    path: str
    size_bytes: int
    sha256: str
    rows: int | None
    columns: int | None
    ragged_rows: int | None
    error: str | None = None


class _HashingRaw(io.RawIOBase):
    """A raw stream that hashes and counts the bytes read through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n: int = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self.digest.update(memoryview(buffer)[:n])
            self.size += n
        return n


def file_sha256(path: str | os.PathLike[str]) -> tuple[int, str]:
    """(size in bytes, SHA-256 hex) of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buffer):
            digest.update(view[:n])
            size += n
    return size, digest.hexdigest()


def scan_csv(path: str | os.PathLike[str], encoding: str = "utf-8-sig") -> DatasetInfo:
    """Rows, columns, size and SHA-256 of a CSV file, in one streaming pass.

    ``rows`` excludes the header and blank lines; ``ragged_rows`` counts rows
    whose number of fields differs from the header's. A file that the
    :mod:`csv` module cannot parse still gets its size and hash, with the
    parse error in ``error``. Raises ``OSError`` when the file cannot be read.
    """
    with open(path, "rb", buffering=0) as raw:
        hashing = _HashingRaw(raw)
        buffered = io.BufferedReader(hashing, _CHUNK)
        text = io.TextIOWrapper(buffered, encoding=encoding, errors="replace", newline="")
        rows = columns = ragged = 0
        error: str | None = None
        try:
            reader = csv.reader(text)
            header = next(reader, None)
            columns = len(header) if header is not None else 0
            for row in reader:
                if not row:
                    continue
                rows += 1
                if len(row) != columns:
                    ragged += 1
        except (csv.Error, UnicodeError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        # Hash whatever the parser did not consume (all of it after a parse error).
        while buffered.read(_CHUNK):
            pass
        text.detach()
    if error is not None:
        return DatasetInfo(
            os.fspath(path), hashing.size, hashing.digest.hexdigest(), None, None, None, error
        )
    return DatasetInfo(
        os.fspath(path), hashing.size, hashing.digest.hexdigest(), rows, columns, ragged
    )
