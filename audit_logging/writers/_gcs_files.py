"""The local side of the GCS mirror: which files, what kind, and what to send of each.

Pure helpers on file descriptors (no network, no state): the handler's sync
pass (:mod:`audit_logging.writers._gcs_sync`) asks them what to upload.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import stat
import tempfile
from collections.abc import Iterable
from typing import Any, Final

from audit_logging._files import chunks, chunks_backwards, replace_atomically, write_all
from audit_logging.array_file import reading_lock
from audit_logging.manifest import MANIFEST_NAME
from audit_logging.writers._gcs_bucket import TMP_MARK

STATE_FILE: Final = ".gcs-sync-state.json"
LOCK_FILE: Final = ".gcs-sync.lock"
#: Files appended to, never rewritten: synced by tail + compose.
APPEND_PATTERNS: Final = ("*.jsonl", "*.csv")
#: Never mirrored: our own state and lock, hidden and temporary files of writers.
DEFAULT_EXCLUDE: Final = (".*", "*.tmp", "*.lock", "*~")
CONTENT_TYPES: Final = {
    ".jsonl": "application/x-ndjson",
    ".json": "application/json",
    ".csv": "text/csv",
}
FINGERPRINT_BYTES = 1024


def is_append_only(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(name, p) for p in APPEND_PATTERNS)


def content_type(rel: str) -> str:
    return CONTENT_TYPES.get(os.path.splitext(rel)[1].lower(), "application/octet-stream")


def fingerprint(fd: int, end: int) -> str:
    """Hash of the last KiB before ``end``: cheap evidence that synced bytes did not change."""
    start = max(0, end - FINGERPRINT_BYTES)
    data = os.pread(fd, end - start, start)
    return hashlib.sha256(data).hexdigest()[:32]


def copy_under_lock(path: str, fd: int) -> tuple[int, os.stat_result]:
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


def complete_length(fd: int, start: int, end: int) -> int:
    """Length of the file up to its last newline in ``[start, end)``; ``start`` if there is none."""
    for low, chunk in chunks_backwards(fd, start, end):
        i = chunk.rfind(b"\n")
        if i >= 0:
            return low + i + 1
    return start


class Window(io.RawIOBase):
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


def is_regular(mode: int) -> bool:
    return stat.S_ISREG(mode)


def excluded(name: str, patterns: Iterable[str]) -> bool:
    """Whether a file or folder name is not mirrored: the mirror's own files, or ``patterns``."""
    # Our state and lock whatever ``patterns`` the user chose instead of the default.
    if name in (STATE_FILE, LOCK_FILE) or TMP_MARK in name:
        return True
    if name == MANIFEST_NAME:  # hidden, but it is the evidence a deleted file cannot hide
        return False
    return any(fnmatch.fnmatch(name, p) for p in patterns)


def scan(directory: str, patterns: Iterable[str]) -> list[tuple[str, str]]:
    """(relative posix path, path) of the regular files to mirror, in sorted order."""
    patterns = tuple(patterns)
    found: list[tuple[str, str]] = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = [d for d in dirs if not excluded(d, patterns)]
        for name in names:
            if excluded(name, patterns):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, directory).replace(os.sep, "/")
            found.append((rel, path))
    return sorted(found)


def read_state(path: str, bucket: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The state file's document (a new one if missing or unreadable) and ``bucket``'s part."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict) or data.get("version") != 1:
        data = {"version": 1, "buckets": {}}
    state = data["buckets"].setdefault(bucket, {})
    state.setdefault("files", {})
    state.setdefault("garbage", [])
    return data, dict(state)


def write_state(path: str, doc: dict[str, Any], bucket: str, state: dict[str, Any]) -> None:
    """Replace the state file atomically with ``doc``, ``bucket``'s part set to ``state``."""
    doc["buckets"][bucket] = state
    replace_atomically(path, json.dumps(doc, indent=1, sort_keys=True).encode())
