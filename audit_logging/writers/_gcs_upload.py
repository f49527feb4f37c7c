"""The writes of the GCS mirror: whole uploads, appended tails, and the pending-write record.

Every write carries a random token in the object's metadata and is recorded
as pending in the state file before it is sent: a write whose answer was
lost (a timeout, a crash) is recognised as ours on the next attempt, instead
of being taken for a conflict. Every write names the generation it replaces
(``if_generation_match``; 0 = create only), so an object someone else wrote
is never overwritten: that is a :class:`~audit_logging.writers._gcs_bucket.Conflict`.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from audit_logging import schema
from audit_logging.writers._gcs_bucket import (
    TMP_MARK,
    TOKEN_KEY,
    Conflict,
    Outage,
    bounded_retry,
    classify,
)
from audit_logging.writers._gcs_files import (
    STATE_FILE,
    Window,
    content_type,
    fingerprint,
    read_state,
    write_state,
)


class Uploads:
    """The writes of :class:`~audit_logging.writers.gcs.GcsSyncHandler` (a mixin).

    Called by its sync pass, under its sync lock; they save the state file as they go.
    """

    directory: str
    bucket_name: str
    prefix: str
    exclude: tuple[str, ...]
    timeout: float
    retry_timeout: float
    bytes_uploaded: int
    uploads: int
    conflicts: int
    _close_deadline: float | None
    _state_doc: dict[str, Any]

    def _report_conflict(self, rel: str, entry: dict[str, Any]) -> None:
        raise NotImplementedError  # the handler's: a warning on the library logger

    def _remaining(self, deadline: float | None) -> float:
        ends = [d for d in (deadline, self._close_deadline) if d is not None]
        if not ends:
            return self.retry_timeout
        return min(self.retry_timeout, min(ends) - time.monotonic())

    def _call_args(self, deadline: float | None) -> dict[str, Any]:
        left = self._remaining(deadline)
        if left <= 0:
            raise Outage(schema.WarningType.GCS_AUTH_FAILED.value, "deadline reached")
        return {"timeout": min(self.timeout, left), "retry": bounded_retry(left)}

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
            if classify(exc) == "conflict":
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
            "fingerprint": fingerprint(fd, size),
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
        dest.content_type = content_type(rel)
        sources = [bucket.blob(name, generation=generation), tmp]
        try:
            dest.compose(sources, if_generation_match=generation, **self._call_args(deadline))
        except Exception as exc:
            kind = classify(exc)
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
            raise Conflict(
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
        window = Window(fd, offset, length, counter)
        try:
            blob.upload_from_file(
                window,
                size=length,
                content_type=content_type(rel),
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
            raise Conflict(
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
        self._state_doc, state = read_state(self.state_path, self.bucket_name)
        return state

    def _save_state(self, state: dict[str, Any]) -> None:
        write_state(self.state_path, self._state_doc, self.bucket_name, state)
