"""One sync pass of the GCS mirror: what changed in each file is sent, and remembered.

Every sync creates new objects only (pieces, named and described in
:mod:`audit_logging.bucket_layout`); cost per sync is proportional to the new
bytes of append-only files, not to their size:

* Append-only files (``*.jsonl`` journals, ``*.csv``): the new tail is one
  new piece, at the offset where the last one ended. Between syncs only whole
  batches are sent (the size is read under the writers' lock, taken shared)
  and then only whole lines, so a reader of the bucket never sees half a
  record, nor half a CSV row whose quoted cells hold line breaks; a final
  sync sends every byte, so that the pieces put back together are then
  byte-identical to the file.
* Everything else (``audit_log.json``, ``*.digest.json``, warning files) is
  rewritten in place or small: each change is sent whole, as the first piece
  of a new epoch; a reader takes the newest epoch.
* An append-only file that shrank, was replaced (new inode) or whose synced
  bytes changed (a hash of the last KiB synced is checked) is sent whole as a
  new epoch too. The older pieces stay: nothing is ever replaced or deleted.

How each write is made and recorded is in
:mod:`audit_logging.writers._gcs_upload`. Several processes that mirror one
folder share the state file under a ``portalocker`` lock (``.gcs-sync.lock``).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import portalocker

from audit_logging import bucket_layout
from audit_logging._files import chunks, held_shared, write_all
from audit_logging.array_file import lock_path_for
from audit_logging.writers._gcs_files import (
    LOCK_FILE,
    complete_length,
    copy_under_lock,
    fingerprint,
    is_append_only,
    is_regular,
    scan,
)
from audit_logging.writers._gcs_upload import Uploads


class SyncPass(Uploads):
    """The sync pass of :class:`~audit_logging.writers.gcs.GcsSyncHandler` (a mixin).

    Runs under the handler's sync lock, on its thread or in ``sync_now()``/``close()``.
    """

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
            for rel, path in scan(self.directory, self.exclude):
                entry = state["files"].get(rel)
                if entry is not None and entry.get("conflict"):
                    # Left alone by an older, overwriting mirror: pieces never collide
                    # with another writer's objects, so the file goes up anew.
                    state["files"].pop(rel)
                pending |= self._sync_file(bucket, state, rel, path, final, deadline)
            return pending
        finally:
            lock.release()

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
            if not is_regular(st.st_mode):
                return False
            append = is_append_only(rel)
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
            if entry is not None and entry.get("seen") == [st.st_size, st.st_ino, st.st_mtime_ns]:
                return False  # an array whose entries went up as lines, unchanged since
            if entry is not None and (
                entry.get("size") == st.st_size
                and entry.get("inode") == st.st_ino
                and entry.get("mtime_ns") == st.st_mtime_ns
            ):
                return False
            extend = (
                append
                and entry is not None
                and bool(entry.get("epoch"))
                and entry.get("inode") == st.st_ino
                and 0 < entry["size"] <= st.st_size
                and entry.get("fingerprint") == fingerprint(fd, entry["size"])
            )
            base = entry["size"] if extend and entry is not None else 0
            size = st.st_size
            if append and not final:
                size = complete_length(fd, base, size)
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
                copy, st = copy_under_lock(path, fd)
                try:
                    self._sync_array(bucket, state, rel, entry, copy, st, deadline)
                finally:
                    os.close(copy)
                return False
            elif "warnings" in rel.split("/")[:-1] and rel.endswith(".json"):
                self._sync_warning(bucket, state, rel, entry, fd, st, deadline)
            else:
                self._upload_whole(bucket, state, rel, entry, fd, st, size, deadline)
            return st.st_size > size
        finally:
            os.close(fd)

    def _sync_array(
        self,
        bucket: Any,
        state: dict[str, Any],
        rel: str,
        entry: dict[str, Any] | None,
        copy: int,
        st: os.stat_result,
        deadline: float | None,
    ) -> None:
        """Send the new entries of an ``audit_log.json`` (a private copy) as JSON Lines.

        The array is rewritten in place at every write, but its entries only
        accumulate: they go up one a line, oldest first, and each sync sends
        those after the lines already sent, as long as the lines sent are
        still the start of the file's (a hash of them is kept). Otherwise (an
        entry merged in between by another process, a file replaced) all lines
        go up as a new epoch; an array not in the writer's layout goes up whole.
        """
        data = b"".join(chunks(copy, 0, st.st_size))
        lines = bucket_layout.array_to_lines(data)
        if lines is None:
            if entry is not None:
                entry.pop("seen", None)
            self._upload_whole(bucket, state, rel, entry, copy, st, st.st_size, deadline)
            return
        fmt = bucket_layout.ARRAY_LINES
        known = dict(entry or {})
        base = int(known.get("size") or 0) if known.get("format") == fmt else 0
        extend = (
            bool(known.get("epoch"))
            and 0 < base <= len(lines)
            and known.get("lines_sha256") == bucket_layout.sha256_hex(lines[:base])
        )
        if not extend:
            # Nothing of the new epoch is sent yet: if this send fails, the next starts over.
            base = 0
            known["epoch"] = int(known.get("epoch") or 0) + 1
            known.update(size=0, format=fmt)
            known.pop("lines_sha256", None)
        if len(lines) > base or not extend:
            tmp, name = tempfile.mkstemp(prefix=".audit-logging-sync-")
            os.unlink(name)
            try:
                write_all(tmp, lines)
                if not self._put_piece(
                    bucket,
                    state,
                    rel,
                    known,
                    tmp,
                    st,
                    base,
                    len(lines),
                    int(known["epoch"]),
                    deadline,
                    fmt,
                ):
                    return
            finally:
                os.close(tmp)
        known.update(
            format=fmt,
            lines_sha256=bucket_layout.sha256_hex(lines),
            seen=[st.st_size, st.st_ino, st.st_mtime_ns],
        )
        state["files"][rel] = known
        self._save_state(state)

    def _sync_warning(
        self,
        bucket: Any,
        state: dict[str, Any],
        rel: str,
        entry: dict[str, Any] | None,
        fd: int,
        st: os.stat_result,
        deadline: float | None,
    ) -> None:
        """Send a warning file as one JSON line (a new epoch), or whole if it cannot be one."""
        line = bucket_layout.warning_to_line(b"".join(chunks(fd, 0, st.st_size)))
        if line is None:
            self._upload_whole(bucket, state, rel, entry, fd, st, st.st_size, deadline)
            return
        known = dict(entry or {})
        epoch = int(known.get("epoch") or 0) + 1
        tmp, name = tempfile.mkstemp(prefix=".audit-logging-sync-")
        os.unlink(name)
        try:
            write_all(tmp, line)
            fmt = bucket_layout.WARNING_LINE
            if not self._put_piece(
                bucket, state, rel, known, tmp, st, 0, len(line), epoch, deadline, fmt
            ):
                return
        finally:
            os.close(tmp)
        # The piece's size is the line's: the file is known unchanged by what was seen.
        known["seen"] = [st.st_size, st.st_ino, st.st_mtime_ns]
        state["files"][rel] = known
        self._save_state(state)
