"""JsonlHandler: the daily JSON Lines journal of ML events.

File layout: ``{directory}/{prefix}-{YYYY-MM-DD}.jsonl`` (UTC day of the
record's creation time), or ``{prefix}-{YYYY-MM-DD}-{session_id}.jsonl`` with
``per_session=True``; in a distributed job (world size above 1, see
:mod:`audit_logging.context`) each rank writes its own file, named by host and
rank: ``{prefix}-{YYYY-MM-DD}[-{session_id}]-{host}-r{rank}.jsonl``, so that
ranks on different machines never share a file, and so no lock (a shared NFS
folder cannot be trusted with file locks). One record per line, in the field order of
:data:`audit_logging.schema.JOURNAL_FIELDS` and the context fields, ``seq``
numbering the lines of each file from 1.

Several processes may append to one file (multi-GPU ranks, data-loader
workers). Each batch is written with one ``write()`` on an ``O_APPEND``
descriptor while holding an exclusive ``portalocker`` lock on the file (the
lock concurrent-log-handler is built on). ``O_APPEND`` alone would keep whole
lines apart, but the lock is needed to number lines: reading the last ``seq``
and appending must be one step, whoever wrote last. concurrent-log-handler's
handlers themselves are not used: they lock, stat and write once per record
(about 16 us each here) and rotate by size and renaming, whereas a journal
rotates by name at UTC midnight and never renames.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import portalocker

from audit_logging import context as run_context
from audit_logging import manifest
from audit_logging._files import (
    TAIL_LIMIT,
    append_whole,
    chunks_backwards,
    locked_for_writing,
    open_append,
    replace_atomically,
)
from audit_logging._options import check_writer_options
from audit_logging.chain import GENESIS, digest_path, hasher_from_env, link_lines, predecessor
from audit_logging.records import CUTS_KEY, did_you_mean, journal_context, journal_fields
from audit_logging.schema import (
    EVENT_KEY,
    JOURNAL_USER_FIELDS,
    UnknownEventError,
    dumps,
    dumps_unescaped,
    escape_line_separators,
    event_name,
    known_event_names,
    session_id,
    utc_now,
)
from audit_logging.truncate import truncate_fields
from audit_logging.writers._base import AuditWriter, UnwrittenRecords

__all__ = ["JsonlHandler"]

_MAX_NOTES = 20  # cuts listed in a line's ``truncated`` member


@dataclass
class _Journal:
    path: str
    fd: int
    end: int = -1  # file size after our last write; -1 = unknown
    seq: int = 0  # seq of the last line in the file
    hash: str = GENESIS  # hash of the last line in the file
    digest_at: float = 0.0  # monotonic time of our last digest of this file
    dirty: bool = False  # written since our last digest
    sealer: Any = None  # a seals.sealer.JournalSealer when the journal is sealed
    sealed_at: float = 0.0  # monotonic time of our last seal of this file


def _seal_keys(
    signing_key: str | os.PathLike[str] | None, forward_secure_key: str | os.PathLike[str] | None
) -> tuple[Any, Any] | None:
    """The keys sealing journals: the arguments, else ``AUDIT_LOG_SIGNING_KEY`` (a PEM file)
    and ``AUDIT_LOG_FSS_KEY`` (a forward-secure state file); ``None`` when neither is set."""
    signing_key = signing_key or os.environ.get("AUDIT_LOG_SIGNING_KEY") or None
    forward_secure_key = forward_secure_key or os.environ.get("AUDIT_LOG_FSS_KEY") or None
    if signing_key is None and forward_secure_key is None:
        return None
    from audit_logging.seals.forward import ForwardKey
    from audit_logging.seals.keys import load_signer

    signer = load_signer(signing_key) if signing_key is not None else None
    forward = ForwardKey(forward_secure_key) if forward_secure_key is not None else None
    return signer, forward


def _unknown_event(value: object, name: str | None) -> UnknownEventError:
    guess = did_you_mean(name) if name else None
    hint = f" (did you mean {guess}?)" if guess else ""
    return UnknownEventError(
        f"unknown journal event {value!r}{hint}: use an audit_logging.Event or register "
        "it with audit_logging.register_event()"
    )


def _digest_record() -> logging.LogRecord:
    return logging.LogRecord("audit_logging", logging.ERROR, "", 0, "digest", None, None)


def read_tail(fd: int, size: int) -> tuple[int, str | None, bool]:
    """``(seq, hash, ends_clean)`` of the last whole line of a journal of ``size`` bytes.

    Reads backwards from the end, never the whole file. A torn last line (no
    newline) or a line that is not a journal line is skipped; ``hash`` is
    ``None`` for an unchained line.
    """
    if size == 0:
        return 0, None, True
    ends_clean = os.pread(fd, 1, size - 1) == b"\n"
    buffer = b""
    for pos, chunk in chunks_backwards(fd, max(0, size - TAIL_LIMIT), size):
        buffer = chunk + buffer
        lines = buffer.split(b"\n")
        # lines[0] may be cut by the chunk boundary unless we reached the start.
        complete = lines if pos == 0 else lines[1:]
        if not ends_clean:
            complete = complete[:-1]
        for line in reversed(complete):
            if not line.strip():
                continue
            try:
                parsed = json.loads(line)
            except ValueError:
                continue
            seq = parsed.get("seq") if isinstance(parsed, dict) else None
            if isinstance(seq, int):
                digest = parsed.get("hash")
                return seq, digest if isinstance(digest, str) else None, ends_clean
    return 0, None, ends_clean


def _file_rank() -> int | None:
    """This process's rank when it is one of several (its journal is its own), else ``None``."""
    ctx = run_context.current()
    return ctx.rank if ctx.world_size is not None and ctx.world_size > 1 else None


class JsonlHandler(AuditWriter):
    """Writes records carrying ``event`` as lines of a daily JSONL journal.

    Every journal field is present on every line (``null`` where the record
    does not carry it), then ``message, exception, level, logger, session_id,
    host, pid, seq`` and, with ``chain=True`` (the default), ``hash``: the
    line's link in a SHA-256 chain (HMAC-SHA256 with ``hmac_key`` or
    ``AUDIT_LOG_HMAC_KEY``), with a digest file beside each journal written at
    rotation, at close and at most every ``digest_interval`` seconds; see
    :mod:`audit_logging.chain`. Secret-looking keys and values are masked
    (``redact=False`` turns it off; ``secret_keys`` changes the key list) and
    a line over ``max_record_bytes`` is cut inside its containers, keeping every
    field's type, and its ``truncated`` member says what was cut and how much.
    An ``event`` that is neither a standard
    :class:`~audit_logging.Event` nor registered with
    :func:`~audit_logging.register_event` is not written to the journal: it
    goes whole into ``{directory}/rejected-YYYY-MM-DD.jsonl``, is counted in
    :attr:`records_rejected` and reported once per name, with the closest
    known name when there is one.
    """

    key = EVENT_KEY

    def __init__(
        self,
        directory: str | os.PathLike[str] = "logs",
        prefix: str = "ml-platform",
        per_session: bool = False,
        level: int | str = logging.NOTSET,
        *,
        chain: bool = True,
        hmac_key: str | bytes | None = None,
        digest_interval: float = 10.0,
        redact: bool = True,
        secret_keys: Iterable[str] | None = None,
        max_record_bytes: int = 1 << 20,
        file_mode: int = 0o600,
        dir_mode: int = 0o700,
        signing_key: str | os.PathLike[str] | None = None,
        forward_secure_key: str | os.PathLike[str] | None = None,
    ) -> None:
        check_writer_options(
            type(self).__name__,
            prefix=prefix,
            per_session=per_session,
            chain=chain,
            hmac_key=hmac_key,
            digest_interval=digest_interval,
            max_record_bytes=max_record_bytes,
        )
        super().__init__(
            level, file_mode=file_mode, dir_mode=dir_mode, redact=redact, secret_keys=secret_keys
        )
        self.directory = os.fspath(directory)
        self.prefix = prefix
        self.per_session = per_session
        #: Whether lines carry the ``hash`` of the chain (see :mod:`audit_logging.chain`).
        self.chain = chain
        self.digest_interval = digest_interval
        self._hasher = hasher_from_env(hmac_key)
        #: A line longer than this is cut inside its containers (see :func:`truncate_fields`).
        self.max_record_bytes = max_record_bytes
        self._journals: dict[str, _Journal] = {}
        self._paths: dict[tuple[str, str, int | None], str] = {}
        self._contexts: dict[tuple[str, str, int | None, str, run_context.RunContext], bytes] = {}
        #: Digest writes that failed (each is tried again at the next batch and at close).
        self.digests_failed = 0
        self._digest_failing = False
        #: Ed25519 and forward-secure keys sealing each journal (see :mod:`audit_logging.seals`).
        self._seal_keys = _seal_keys(signing_key, forward_secure_key)
        #: Seals that could not be written (each is tried again at the next interval and at close).
        self.seals_failed = 0
        self._seal_failing = False

    def path_for(self, day: str, session: str | None = None, rank: int | None = None) -> str:
        """The journal file of UTC ``day`` (``YYYY-MM-DD``); of ``rank`` in a distributed job."""
        name = f"{self.prefix}-{day}"
        if self.per_session:
            name += f"-{session or session_id()}"
        if rank is not None:
            name += f"-{run_context.HOST}-r{rank}"
        return os.path.join(self.directory, name + ".jsonl")

    @property
    def baseFilename(self) -> str:
        """Today's journal path (as ``logging.FileHandler.baseFilename``)."""
        day = time.strftime("%Y-%m-%d", time.gmtime())
        return os.path.abspath(self.path_for(day, rank=_file_rank()))

    def write_records(self, records: Sequence[logging.LogRecord]) -> None:
        session = session_id()
        rank = _file_rank()
        # path -> (lines, their records): a failed file gives back only its
        # records and the later files' ones, not those already on disk.
        by_path: dict[str, tuple[list[bytes], list[logging.LogRecord]]] = {}
        scrub = self.redactor.scrub if self.redactor is not None else None
        limit = self.max_record_bytes
        # Consecutive records mostly share logger, level and day: reuse the
        # encoded context and the target lists instead of looking them up.
        last_key: tuple[str, str, int | None] | None = None
        last_day = ""
        context = b""
        bodies: list[bytes] = []
        owners: list[logging.LogRecord] = []
        known = known_event_names
        for record in records:
            name = record.__dict__[EVENT_KEY]
            if type(name) is not str:
                name = event_name(name)
            if name is None or name not in known:
                self.reject(record, _unknown_event(record.__dict__[EVENT_KEY], name))
                continue
            try:
                fields = journal_fields(record)
                if scrub is not None:
                    scrub(fields, JOURNAL_USER_FIELDS)
                key = (record.levelname, record.name, record.process)
                if key != last_key:
                    context = self._context(record, session)
                    last_key = key
                day = fields["timestamp"][:10]
            except Exception as exc:  # it would fail every retry: refuse it (see render_each)
                self.reject(record, exc)
                continue
            if day != last_day:
                bodies, owners = by_path.setdefault(self._path(day, session, rank), ([], []))
                last_day = day
            cuts = record.__dict__.get(CUTS_KEY)
            if cuts:  # what the caller's snapshot cut
                fields["truncated"] = cuts
            body = dumps_unescaped(fields)
            if len(body) > limit:
                fields.pop("truncated", None)
                noted = dict(cuts) if cuts else {}
                fields = truncate_fields(fields, max(limit // 2, limit - 2048), noted)
                fields["truncated"] = dict(itertools.islice(noted.items(), _MAX_NOTES))
                body = dumps_unescaped(fields)
            if b"\xe2\x80" in body:
                # Escaped per line, before hashing: the chain covers the bytes on disk.
                body = escape_line_separators(body)
            bodies.append(body[:-1] + context)
            owners.append(record)
        targets = list(by_path.items())
        for i, (path, (lines, _)) in enumerate(targets):
            try:
                self._append(path, lines)
            except Exception as exc:
                raise UnwrittenRecords([r for _, (_, rs) in targets[i:] for r in rs]) from exc
            self.records_written += len(lines)

    def _context(self, record: logging.LogRecord, session: str) -> bytes:
        """The encoded context members (level, logger, session, host, pid), the same per logger."""
        # The rank may change while a process runs (Lightning sets it after start-up).
        key = (record.levelname, record.name, record.process, session, run_context.current())
        context = self._contexts.get(key)
        if context is None:
            if len(self._contexts) > 1024:
                self._contexts.clear()
            context = self._contexts[key] = b"," + dumps(journal_context(record, session))[1:-1]
        return context

    def _path(self, day: str, session: str, rank: int | None) -> str:
        path = self._paths.get((day, session, rank))
        if path is None:
            if len(self._paths) > 64:
                self._paths.clear()
            path = self._paths[day, session, rank] = self.path_for(day, session, rank)
        return path

    def _journal(self, path: str) -> _Journal:
        journal = self._journals.get(path)
        if journal is None:
            # A new day: close the previous days' files (a late record reopens one).
            for old in list(self._journals.values()):
                self._finish_journal(old)
            journal = _Journal(path, open_append(path, self.file_mode, self.dir_mode))
            if self._seal_keys is not None:
                from audit_logging.seals.sealer import JournalSealer

                signer, forward_key = self._seal_keys
                journal.sealer = JournalSealer(path, signer=signer, forward_key=forward_key)
            self._journals[path] = journal
        return journal

    def _reopen(self, journal: _Journal) -> int:
        """Start a removed journal again (see :func:`locked_for_writing`)."""
        self._close_journal(journal)
        return self._journal(journal.path).fd

    def _append(self, path: str, bodies: list[bytes]) -> None:
        journal = self._journal(path)
        with locked_for_writing(journal.fd, lambda: self._reopen(journal)) as (_, st):
            journal = self._journals[path]  # a new one if the file was removed
            size = st.st_size
            prefix = b""
            if size != journal.end:
                # Another process (or an earlier run) wrote since our last batch:
                # the lock makes reading its last line and appending one step.
                journal.seq, last_hash, ends_clean = read_tail(journal.fd, size)
                journal.hash = last_hash or self._genesis(path)
                if not ends_clean:
                    prefix = b"\n"  # never glue our line to a torn one
            seq, previous = journal.seq, journal.hash
            if self.chain:
                lines, seq, last = link_lines(
                    bodies, seq, previous.encode("ascii"), self._hasher.link
                )
                previous = last.decode("ascii")
            else:
                lines = []
                for body in bodies:
                    seq += 1
                    lines.append(b'%s,"seq":%d}\n' % (body, seq))
            data = prefix + b"".join(lines)
            append_whole(journal.fd, data, size)
            if size == 0:  # a journal begun: the manifest names it
                directory, name = os.path.split(path)
                self._manifest(manifest.created, directory or ".", name, "journal")
            journal.seq, journal.hash = seq, previous
            journal.end = size + len(data)
            journal.dirty = True
            if journal.sealer is not None:
                # The tree follows the file's bytes (other processes' batches too).
                journal.sealer.after_write(journal.fd, data, journal.end)
            if self.chain and time.monotonic() - journal.digest_at >= self.digest_interval:
                self._try_digest(journal)
            if journal.sealer is not None and (
                time.monotonic() - journal.sealed_at >= self.digest_interval
            ):
                self._try_seal(journal)

    def _try_seal(self, journal: _Journal) -> None:
        """Write this interval's seal of ``journal`` (under its lock); a failure is said once."""
        try:
            journal.sealer.seal()
        except Exception as exc:  # a full disk, a key file gone: the lines are written anyway
            self.seals_failed += 1
            if not self._seal_failing:
                self._seal_failing = True
                self._say(
                    f"{type(self).__name__} could not seal {journal.path} ({exc}); "
                    "it is sealed again at the next interval and at close"
                )
        else:
            self._seal_failing = False
        journal.sealed_at = time.monotonic()

    def _try_digest(self, journal: _Journal) -> None:
        """Write the digest of ``journal``; a failure is reported, and tried again next batch.

        The batch's lines are on disk by now: a digest that cannot be written
        (the disk filled up between the two) must not send them back to be
        retried, which would write them twice.
        """
        try:
            self._write_digest(journal)
        except OSError as exc:
            self.digests_failed += 1
            if not self._digest_failing:  # once per burst, one line (no second traceback)
                self._digest_failing = True
                self._say(
                    f"{type(self).__name__} could not write the digest of {journal.path} "
                    f"({exc}); it is written again with the next batch and at close"
                )
        else:
            self._digest_failing = False

    def _genesis(self, path: str) -> str:
        """What the first line of ``path`` chains to: the last hash of the journal before it."""
        before = predecessor(Path(path))
        if before is None:
            return GENESIS
        try:
            fd = os.open(before, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return GENESIS
        try:
            _, last_hash, _ = read_tail(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)
        return last_hash or GENESIS

    def _write_digest(self, journal: _Journal) -> None:
        """Record how far ``journal`` goes (under its lock), atomically, beside it."""
        document: dict[str, object] = {
            "file": os.path.basename(journal.path),
            "first_seq": 1 if journal.seq else 0,
            "last_seq": journal.seq,
            "last_hash": journal.hash,
            "lines": journal.seq,
            "time": utc_now(),
            "algorithm": self._hasher.algorithm,
        }
        if self._hasher.key is not None:
            document["mac"] = self._hasher.sign(document)
        replace_atomically(str(digest_path(journal.path)), dumps(document) + b"\n", self.file_mode)
        journal.digest_at = time.monotonic()
        journal.dirty = False

    def _finish_journal(self, journal: _Journal) -> None:
        """Write the final digest and seal of ``journal`` (if we wrote to it) and close it."""
        if journal.sealer is not None:  # a no-op when nothing was written since the last seal
            try:
                portalocker.lock(journal.fd, portalocker.LockFlags.EXCLUSIVE)
                try:
                    st = os.fstat(journal.fd)
                    if st.st_nlink:
                        journal.sealer.tree.catch_up(journal.fd, st.st_size)
                        self._try_seal(journal)
                finally:
                    portalocker.unlock(journal.fd)
            except Exception as exc:
                self._report(_digest_record(), exc)
        if self.chain and journal.dirty:
            try:
                portalocker.lock(journal.fd, portalocker.LockFlags.EXCLUSIVE)
                try:
                    st = os.fstat(journal.fd)
                    if st.st_nlink:  # a removed journal has nothing left to digest
                        if st.st_size != journal.end:
                            journal.seq, last_hash, _ = read_tail(journal.fd, st.st_size)
                            journal.hash = last_hash or journal.hash
                        self._write_digest(journal)
                        directory, name = os.path.split(journal.path)
                        self._manifest(
                            manifest.sealed, directory or ".", name, last_seq=journal.seq,
                            last_hash=journal.hash, size=st.st_size,
                        )  # fmt: skip
                finally:
                    portalocker.unlock(journal.fd)
            except Exception as exc:
                self._report(_digest_record(), exc)
        self._close_journal(journal)

    def _close_journal(self, journal: _Journal) -> None:
        self._journals.pop(journal.path, None)
        try:
            os.close(journal.fd)
        except OSError:
            pass

    def close(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            for journal in list(self._journals.values()):
                self._finish_journal(journal)
        super().close()

    def _after_fork_in_child(self) -> None:
        for journal in list(self._journals.values()):
            self._close_journal(journal)

    @property
    def output_directory(self) -> str:
        return self.directory

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.directory}/{self.prefix}-*.jsonl>"
