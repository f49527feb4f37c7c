"""One sync pass of the GCS mirror: what changed in each file is sent, and remembered.

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
  CSV row whose quoted cells hold line breaks; a final sync sends every
  byte, so that each object is then byte-identical to its file.
* Everything else (``audit_log.json``, ``*.digest.json``, warning files) is
  rewritten in place or small: it is uploaded whole, with
  ``if_generation_match`` = the generation we wrote last (0: create only).
* An append-only file that shrank, was replaced (new inode) or whose synced
  bytes changed (a hash of the last KiB synced is checked) is uploaded whole
  as a new version of its object, again only if the object's generation is
  the one we wrote.

How each write is made and recorded is in
:mod:`audit_logging.writers._gcs_upload`. Several processes that mirror one
folder share the state file under a ``portalocker`` lock (``.gcs-sync.lock``).
"""

from __future__ import annotations

import os
from typing import Any

import portalocker

from audit_logging._files import held_shared
from audit_logging.array_file import lock_path_for
from audit_logging.writers._gcs_bucket import Conflict
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
                    self._report_conflict(rel, entry)
                    continue
                try:
                    pending |= self._sync_file(bucket, state, rel, path, final, deadline)
                except Conflict as conflict:
                    entry = state["files"].setdefault(rel, {})
                    entry["conflict"] = str(conflict)
                    entry.pop("pending", None)
                    self._save_state(state)
                    self.conflicts += 1
                    self._report_conflict(rel, entry)
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
                    self._upload_whole(bucket, state, rel, entry, copy, st, st.st_size, deadline)
                finally:
                    os.close(copy)
                return False
            else:
                self._upload_whole(bucket, state, rel, entry, fd, st, size, deadline)
            return st.st_size > size
        finally:
            os.close(fd)
