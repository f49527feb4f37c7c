"""The writes of the GCS mirror: new pieces only, and the pending-write record.

Every sync creates new objects only (``if_generation_match=0``): an object is
never replaced, composed over or deleted, so the mirror works on a bucket
with a locked retention policy, and needs only permission to create and read
objects. What a piece is and how it is named: :mod:`audit_logging.bucket_layout`.

Every write carries a random token in the object's metadata and is recorded
as pending in the state file before it is sent: a write whose answer was
lost (a timeout, a crash) is recognised as ours on the next attempt; a name
taken by another writer is left alone and the bytes go under the next number.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from typing import Any

from audit_logging import bucket_layout, schema
from audit_logging._files import chunks
from audit_logging.writers._gcs_bucket import (
    TOKEN_KEY,
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

    def _piece_name(
        self, state: dict[str, Any], rel: str, entry: dict[str, Any], format: str = ""
    ) -> str:
        # A file keeps the prefix it was first mirrored to: a new run (a new default
        # prefix) goes on with its predecessor's pieces instead of sending it whole again.
        entry.setdefault("prefix", self.prefix)
        n = int(state.get("next_piece") or 0)
        state["next_piece"] = n + 1
        return bucket_layout.piece_name(str(entry["prefix"]), rel, n, format=format)

    def _origin(self, state: dict[str, Any]) -> str:
        # The folder keeps the name of the run that first mirrored it: a reader
        # tells the folders under one prefix apart by it.
        if not state.get("origin"):
            state["origin"] = bucket_layout.origin()
        return str(state["origin"])

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
        """Send the whole file as the first piece of a new epoch."""
        new = dict(entry or {})
        epoch = int(new.get("epoch") or 0) + 1
        self._put_piece(bucket, state, rel, new, fd, st, 0, size, epoch, deadline)

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
        """Send the bytes after those already mirrored as the next piece of the epoch."""
        epoch = int(entry["epoch"])
        self._put_piece(
            bucket, state, rel, entry, fd, st, int(entry["size"]), size, epoch, deadline
        )

    def _put_piece(
        self,
        bucket: Any,
        state: dict[str, Any],
        rel: str,
        entry: dict[str, Any],
        fd: int,
        st: os.stat_result,
        offset: int,
        size: int,
        epoch: int,
        deadline: float | None,
        format: str = "",
    ) -> bool:
        """Create one new object holding bytes ``[offset, size)`` of ``fd`` (never replaces one).

        ``format`` is the pieces' (see :mod:`audit_logging.bucket_layout`). True when created.
        """
        digest = hashlib.sha256()
        for chunk in chunks(fd, offset, size):
            digest.update(chunk)
        piece = bucket_layout.Piece(
            rel, self._origin(state), epoch, offset, size - offset, digest.hexdigest(), format
        )
        name = self._piece_name(state, rel, entry, format)
        token = self._mark_pending(state, rel, entry, fd, st, size, object=name, epoch=epoch)
        blob = bucket.blob(name)
        blob.metadata = {TOKEN_KEY: token, **piece.metadata()}
        try:
            self._upload(blob, fd, offset, size - offset, rel, 0, deadline)
        except Exception as exc:
            if classify(exc) == "conflict":
                # The name is taken: ours (a lost answer) is adopted; another writer's is
                # left alone, and the next sync sends these bytes under the next number.
                self._resolve_pending(bucket, state, rel, entry, deadline)
                return False
            raise
        self._commit(state, rel, entry, blob.generation)
        return True

    def _mark_pending(
        self,
        state: dict[str, Any],
        rel: str,
        entry: dict[str, Any],
        fd: int,
        st: os.stat_result,
        size: int,
        *,
        object: str,
        epoch: int,
    ) -> str:
        """Record in the state file, before sending, the piece about to be created.

        A write whose answer is lost (a timeout, a crash) is then recognised as
        ours by its token on the next attempt. Returns the token.
        """
        token = uuid.uuid4().hex
        entry["pending"] = {
            "op": "piece",
            "object": object,
            "epoch": epoch,
            "token": token,
            "size": size,
            "inode": st.st_ino,
            "mtime_ns": st.st_mtime_ns,
            "fingerprint": fingerprint(fd, size),
        }
        state["files"][rel] = entry
        self._save_state(state)
        return token

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
            object=pending["object"],
            generation=int(generation),
            epoch=int(pending["epoch"]),
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
    ) -> dict[str, Any] | None:
        """Was the pending piece created after all (a lost answer, a crash)? Adopt it or drop it.

        Returns the file's entry, or None when nothing of it is known to be mirrored.
        """
        pending = entry["pending"]
        if pending.get("op") == "piece" and pending.get("object"):
            blob = bucket.get_blob(pending["object"], **self._call_args(deadline))
            if blob is not None and (blob.metadata or {}).get(TOKEN_KEY) == pending["token"]:
                self._commit(state, rel, entry, blob.generation)
                return entry
        entry.pop("pending")
        if not entry.get("epoch"):
            # Nothing of this file is mirrored as pieces yet (or only by the old
            # compose layout): the next sync sends it whole as a new epoch.
            stub = {"prefix": entry["prefix"]} if entry.get("prefix") else None
            state["files"].pop(rel, None)
            if stub is not None:
                state["files"][rel] = stub
            self._save_state(state)
            return stub
        self._save_state(state)
        return entry

    # ------------------------------------------------------------------ old temporary objects

    @staticmethod
    def _collect_garbage(bucket: Any, state: dict[str, Any], deadline: float | None) -> None:
        """Forget the temporary objects an older (compose) mirror listed: never deleted now."""
        state.pop("garbage", None)

    # ------------------------------------------------------------------ state file

    @property
    def state_path(self) -> str:
        return os.path.join(self.directory, STATE_FILE)

    def _load_state(self) -> dict[str, Any]:
        self._state_doc, state = read_state(self.state_path, self.bucket_name)
        return state

    def _save_state(self, state: dict[str, Any]) -> None:
        write_state(self.state_path, self._state_doc, self.bucket_name, state)
