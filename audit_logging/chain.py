"""The hash chain's writer-side primitives: hasher, genesis, digest paths, predecessor naming.

Every journal line ends with ``"seq":N,"hash":"H"``. ``H`` is SHA-256 (or
HMAC-SHA256 with a key) over the previous line's hash (64 hex digits)
followed by the line's own bytes without the ``,"hash":"..."`` member::

    hash(n) = SHA256( hash(n-1) + line(n) without its hash member )

The first line of a file chains to the last hash of the file before it (same
directory, prefix and session naming, the latest earlier day), or to 64 zeros
when there is none. Editing, deleting, reordering or inserting a line breaks
the chain at that line; removing a whole file breaks it at the first line of
the next file. A truncated tail leaves a valid chain, so a digest file beside
each journal (``{journal}.digest.json``: first and last seq, last hash, line
count, time) records how far the file went; a verifier compares the two.

Why the exact bytes rather than a re-encoding with sorted keys: hashing what
is on disk needs no JSON parse or re-encode on either side (the writer hashes
the bytes it writes, the verifier the bytes it reads), detects any change to
a line, whitespace and key order included, and does not depend on how one
JSON library or another formats a float (``1e16`` against ``1e+16``).

With ``AUDIT_LOG_HMAC_KEY`` set (or ``hmac_key=``), lines and digests carry
HMAC-SHA256: whoever can edit the files but does not hold the key cannot
forge a consistent chain.

The action logs carry the same links: each entry of the ``audit_log.json``
array ends with ``"seq":N,"hash":"H"`` over its compact line without the hash
member, and a chained ``audit_log.csv`` (``CsvHandler(chain=True)``) ends each
row with ``seq`` and ``hash`` cells, ``H`` over the row's bytes up to and
including the ``seq`` cell (see the two writers). ``seq`` counts entries in
the order they were written, which in the array, kept sorted by timestamp,
is not always their position, so both are checked in ``seq`` order: an
edited entry (by its position and ``seq``), a missing ``seq`` and a
duplicated ``seq`` are reported. An array has no digest file; the hidden lock
file's state (last ``seq`` written) catches removed newest entries unless it
was edited too. Entries without ``seq``/``hash`` older than the chain's first
entry are taken as history from before chaining began; newer ones are
reported.

Verification lives in :mod:`audit_logging.read.verify`; this module holds only
what writers need, so that it imports nothing above ``schema`` and ``formats``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from audit_logging.formats import journal_key as _journal_key
from audit_logging.schema import ACTION_FIELDS

__all__ = [
    "CSV_CHAINED_HEADER",
    "GENESIS",
    "Hasher",
    "digest_path",
    "hasher_from_env",
    "journal_key",
    "link_lines",
    "predecessor",
    "seq_of",
    "split_hash",
]

GENESIS = "0" * 64
_HASH_MEMBER = b',"hash":"'
#: The header of a chained action CSV (what ``CsvHandler(chain=True)`` writes).
CSV_CHAINED_HEADER = (",".join((*ACTION_FIELDS, "seq", "hash")) + "\r\n").encode("ascii")


class Hasher:
    """Computes chain hashes: SHA-256, or HMAC-SHA256 when given a key."""

    def __init__(self, key: bytes | str | None = None) -> None:
        if isinstance(key, str):
            key = key.encode("utf-8")
        self.key = key or None
        self.algorithm = "hmac-sha256" if self.key else "sha256"

    def __call__(self, previous: str, data: bytes) -> str:
        return self.link(previous.encode("ascii"), data).decode("ascii")

    def link(self, previous: bytes, data: bytes) -> bytes:
        """The hash (hex, as bytes) of the line ``data`` following the line hashed ``previous``."""
        if self.key is not None:
            return hmac.digest(self.key, previous + data, "sha256").hex().encode("ascii")
        return hashlib.sha256(previous + data).hexdigest().encode("ascii")

    def sign(self, document: dict[str, object]) -> str:
        """A MAC (or plain hash) of a digest document, over its sorted-key compact JSON."""
        canonical = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
        return self(GENESIS, canonical)


def hasher_from_env(key: bytes | str | None = None) -> Hasher:
    """A :class:`Hasher` with ``key``, else ``AUDIT_LOG_HMAC_KEY``, else plain SHA-256."""
    return Hasher(key if key is not None else os.environ.get("AUDIT_LOG_HMAC_KEY"))


def link_lines(
    bodies: Iterable[bytes],
    seq: int,
    last: bytes,
    link: Callable[[bytes, bytes], bytes],
    *,
    csv: bool = False,
    end: bytes = b"\n",
) -> tuple[list[bytes], int, bytes]:
    """Number and chain ``bodies``: the one linking loop of the three chained writers.

    Returns ``(lines, last seq, last hash)``. ``seq`` and ``last`` are those
    of the line before the first body (``0`` and :data:`GENESIS` for a new
    file); ``link`` is a :meth:`Hasher.link`. Each line is hashed as written
    up to its ``seq``, then ends with the hash and ``end``:

    * JSON (bodies are objects without their closing ``}``):
      ``{...,"seq":N,"hash":"H"}``, ``H = link(previous, '{...,"seq":N}')``;
    * CSV (``csv=True``, bodies are rows without their line end):
      ``cells,N,H``, ``H = link(previous, 'cells,N')``.
    """
    lines: list[bytes] = []
    append = lines.append
    if csv:
        for body in bodies:
            seq += 1
            unhashed = b"%s,%d" % (body, seq)
            last = link(last, unhashed)
            append(b"%s,%s%s" % (unhashed, last, end))
        return lines, seq, last
    owner = getattr(link, "__self__", None)
    if type(owner) is Hasher and owner.key is None and link == owner.link:
        # Plain SHA-256 inlined (Hasher.link's own formula): a method call per
        # line is a tenth of the linking cost.
        sha256 = hashlib.sha256
        for body in bodies:
            seq += 1
            head = b'%s,"seq":%d' % (body, seq)
            last = sha256(last + head + b"}").hexdigest().encode("ascii")
            append(b'%s,"hash":"%s"}%s' % (head, last, end))
        return lines, seq, last
    for body in bodies:
        seq += 1
        head = b'%s,"seq":%d' % (body, seq)
        last = link(last, head + b"}")
        append(b'%s,"hash":"%s"}%s' % (head, last, end))
    return lines, seq, last


def split_hash(line: bytes) -> tuple[bytes, str] | None:
    """``(hashed bytes, hash)`` of a chained line (without its newline), or ``None``."""
    at = line.rfind(_HASH_MEMBER)
    if at < 0 or len(line) - at != len(_HASH_MEMBER) + 64 + 2 or not line.endswith(b'"}'):
        return None
    return line[:at] + b"}", line[at + len(_HASH_MEMBER) : -2].decode("ascii", "replace")


def seq_of(hashed: bytes) -> int | None:
    """The ``seq`` closing a hashed line (``...,"seq":N}``), or ``None``."""
    at = hashed.rfind(b',"seq":')
    if at < 0:
        return None
    digits = hashed[at + 7 : -1]
    return int(digits) if digits.isdigit() else None


def digest_path(journal: str | os.PathLike[str]) -> Path:
    """The digest file beside ``journal`` (:func:`audit_logging.formats.digest_name`)."""
    return Path(os.fspath(journal) + ".digest.json")


def journal_key(path: Path) -> tuple[str, str | None, str] | None:
    """``(prefix, session or None, day)`` from a journal file name, or ``None``."""
    return _journal_key(path.name)


def predecessor(path: Path, names: Iterable[str] | None = None) -> Path | None:
    """The journal this one chains to: same folder, prefix and session, latest earlier day.

    ``names`` is the folder's listing when the caller already has it.
    """
    key = journal_key(path)
    if key is None:
        return None
    prefix, session, day = key
    if names is None:
        try:
            names = os.listdir(path.parent)
        except OSError:
            return None
    start = prefix + "-"
    best: str | None = None
    best_day = ""
    for name in names:
        if not (name.startswith(start) and name.endswith(".jsonl")):
            continue
        other = _journal_key(name)
        if other is None or other[0] != prefix or other[1] != session:
            continue
        other_day = other[2]
        if other_day < day and other_day > best_day:
            best, best_day = name, other_day
    return path.parent / best if best else None
