"""The hash chain of the journal and its verification.

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
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "GENESIS",
    "ChainProblem",
    "Hasher",
    "VerifyReport",
    "digest_path",
    "hasher_from_env",
    "split_hash",
    "verify_paths",
]

GENESIS = "0" * 64
_HASH_MEMBER = b',"hash":"'
_JOURNAL_NAME = re.compile(
    r"^(?P<prefix>.+?)-(?P<day>\d{4}-\d{2}-\d{2})(?:-(?P<session>.+))?\.jsonl$"
)


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


def split_hash(line: bytes) -> tuple[bytes, str] | None:
    """``(hashed bytes, hash)`` of a chained line (without its newline), or ``None``."""
    at = line.rfind(_HASH_MEMBER)
    if at < 0 or len(line) - at != len(_HASH_MEMBER) + 64 + 2 or not line.endswith(b'"}'):
        return None
    return line[:at] + b"}", line[at + len(_HASH_MEMBER) : -2].decode("ascii", "replace")


def _seq_of(hashed: bytes) -> int | None:
    """The ``seq`` closing a hashed line (``...,"seq":N}``), or ``None``."""
    at = hashed.rfind(b',"seq":')
    if at < 0:
        return None
    digits = hashed[at + 7 : -1]
    return int(digits) if digits.isdigit() else None


def digest_path(journal: str | os.PathLike[str]) -> Path:
    return Path(os.fspath(journal) + ".digest.json")


def journal_key(path: Path) -> tuple[str, str | None, str] | None:
    """``(prefix, session or None, day)`` from a journal file name, or ``None``."""
    m = _JOURNAL_NAME.match(path.name)
    if m is None:
        return None
    return m["prefix"], m["session"], m["day"]


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
        m = _JOURNAL_NAME.match(name)
        if m is None or m["prefix"] != prefix or m["session"] != session:
            continue
        other_day = m["day"]
        if other_day < day and other_day > best_day:
            best, best_day = name, other_day
    return path.parent / best if best else None


# ---------------------------------------------------------------------- verification


@dataclass(frozen=True)
class ChainProblem:
    """One thing wrong with a journal: where and what."""

    path: str
    line: int | None  # 1-based line number in the file, None for the whole file
    kind: str  # edited | missing | reordered | truncated | digest | chain-break | malformed
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.kind}: {self.message}"


@dataclass
class VerifyReport:
    files: int = 0
    lines: int = 0
    problems: list[ChainProblem] = field(default_factory=list)
    _listings: dict[Path, list[str]] = field(default_factory=dict, repr=False)
    _predecessors: dict[Path, Path | None] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return not self.problems

    def listing(self, directory: Path) -> list[str] | None:
        """The names in ``directory``, read once per verification."""
        if directory not in self._listings:
            try:
                self._listings[directory] = os.listdir(directory)
            except OSError:
                return None
        return self._listings[directory]


def _iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as fh:
        yield from enumerate(fh, 1)


def _hashes_of(path: Path) -> tuple[set[str], str | None]:
    """Every line hash of a journal, and its last one (to check a successor's genesis)."""
    hashes: set[str] = set()
    last = None
    for _, raw in _iter_lines(path):
        parts = split_hash(raw.rstrip(b"\n"))
        if parts is not None:
            hashes.add(parts[1])
            last = parts[1]
    return hashes, last


_WINDOW = 4096  # recent (seq -> hash) pairs kept to place reordered lines


def verify_file(path: Path, hasher: Hasher, report: VerifyReport) -> None:
    """Check one journal's chain and digest, adding what is wrong to ``report``.

    Each line is checked against the hash of the line whose ``seq`` precedes
    its own, wherever that line is, so that a swap is reported once as
    ``reordered`` rather than as a cascade. Memory stays bounded: only a
    window of recent hashes is kept (the file is streamed).
    """
    name = str(path)
    problems = report.problems
    report.files += 1
    recent: dict[int, str] = {}  # seq -> hash
    waiting: dict[int, tuple[int, int, bytes, str]] = {}  # missing seq -> (line, seq, data, hash)
    max_seq = 0
    last_hash: str | None = None
    first: tuple[int, bytes, str] | None = None

    def check(line_no: int, seq: int, hashed: bytes, stored: str, previous: str) -> None:
        if hasher(previous, hashed) != stored:
            problems.append(
                ChainProblem(name, line_no, "edited", f"seq {seq} does not match its hash")
            )

    for number, raw in _iter_lines(path):
        report.lines += 1
        if not raw.endswith(b"\n"):
            problems.append(ChainProblem(name, number, "truncated", "last line is cut off"))
            break
        line = raw[:-1]
        parts = split_hash(line)
        seq = _seq_of(parts[0]) if parts is not None else None
        if parts is None or seq is None:
            try:
                json.loads(line)
            except ValueError:
                problems.append(ChainProblem(name, number, "malformed", "not a JSON line"))
            else:
                problems.append(ChainProblem(name, number, "edited", "line has no chain hash"))
            continue
        hashed, stored = parts
        if seq in recent:
            kind = "duplicated" if recent[seq] == stored else "edited"
            problems.append(ChainProblem(name, number, kind, f"seq {seq} appears again"))
            continue
        if seq == 1:
            first = (number, hashed, stored)
        elif seq - 1 in recent:
            check(number, seq, hashed, stored, recent[seq - 1])
        else:
            waiting[seq - 1] = (number, seq, hashed, stored)
        if seq < max_seq:
            problems.append(
                ChainProblem(name, number, "reordered", f"seq {seq} comes after seq {max_seq}")
            )
        pending = waiting.pop(seq, None)
        if pending is not None:
            check(pending[0], pending[1], pending[2], pending[3], stored)
        recent[seq] = stored
        if seq > max_seq:
            max_seq, last_hash = seq, stored
        recent.pop(seq - _WINDOW, None)  # keep a sliding window, O(1) per line
    for missing, (line_no, seq, _, _) in sorted(waiting.items()):
        problems.append(
            ChainProblem(
                name, line_no, "missing", f"the line with seq {missing} before seq {seq} is gone"
            )
        )
    if first is not None:
        if path in report._predecessors:
            before = report._predecessors[path]
        else:
            before = predecessor(path, report.listing(path.parent))
        _check_genesis(path, hasher, first, problems, before)
    _check_digest(path, hasher, max_seq, last_hash, problems)


def _check_genesis(
    path: Path,
    hasher: Hasher,
    first: tuple[int, bytes, str],
    problems: list[ChainProblem],
    before: Path | None,
) -> None:
    number, hashed, stored = first
    if hasher(GENESIS, hashed) == stored:
        return
    if before is not None:
        hashes, _ = _hashes_of(before)
        # A late record of an earlier day can follow the moment this file
        # chained to it, so any line of the predecessor is a valid anchor.
        if any(hasher(h, hashed) == stored for h in hashes):
            return
        problems.append(
            ChainProblem(
                str(path),
                number,
                "chain-break",
                f"first line does not chain to {before.name}: a journal between them was "
                "removed, or this line was edited",
            )
        )
        return
    hint = "" if hasher.key else " (written with an HMAC key? set AUDIT_LOG_HMAC_KEY)"
    problems.append(
        ChainProblem(str(path), number, "edited", f"first line does not match its hash{hint}")
    )


def _check_digest(
    path: Path, hasher: Hasher, last_seq: int, last_hash: str | None, problems: list[ChainProblem]
) -> None:
    digest_file = digest_path(path)
    if not digest_file.exists():
        return
    try:
        digest = json.loads(digest_file.read_bytes())
        recorded_seq = int(digest["last_seq"])
        recorded_hash = str(digest["last_hash"])
    except (ValueError, KeyError, TypeError, OSError):
        problems.append(ChainProblem(str(digest_file), None, "digest", "unreadable digest file"))
        return
    mac = digest.pop("mac", None)
    if hasher.key is not None and mac != hasher.sign(digest):
        problems.append(
            ChainProblem(str(digest_file), None, "digest", "digest MAC does not match its content")
        )
    if recorded_seq > last_seq:
        problems.append(
            ChainProblem(
                str(path),
                None,
                "truncated",
                f"digest records seq {recorded_seq} but the file ends at seq {last_seq}",
            )
        )
    elif recorded_seq > 0 and recorded_seq == last_seq and recorded_hash != last_hash:
        problems.append(
            ChainProblem(
                str(path), None, "digest", f"last hash differs from the digest at seq {last_seq}"
            )
        )


def iter_journals(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """The ``*.jsonl`` files named or found (recursively) under ``paths``, in name order."""
    for item in paths:
        path = Path(item)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*.jsonl") if p.is_file())
        elif path.exists():
            yield path
        else:
            raise FileNotFoundError(2, "No such file or directory", str(path))


def verify_paths(
    paths: Iterable[str | os.PathLike[str]],
    hasher: Hasher | None = None,
    on_file: Callable[[int, int, Path], None] | None = None,
) -> VerifyReport:
    """Verify every journal under ``paths``; an intact set gives ``report.ok``.

    ``on_file(n, total, path)`` is called before each file (for a progress bar).
    """
    hasher = hasher or hasher_from_env()
    report = VerifyReport()
    journals = list(iter_journals(paths))
    # Whole folders: each journal's predecessor is the one before it in its
    # series (same folder, prefix, session), without listing the folder per file.
    series: dict[tuple[Path, str, str | None], list[tuple[str, Path]]] = {}
    for journal in journals:
        key = journal_key(journal)
        if key is not None:
            series.setdefault((journal.parent, key[0], key[1]), []).append((key[2], journal))
    for members in series.values():
        members.sort()
        for (_, before), (_, after) in itertools.pairwise(members):
            report._predecessors[after] = before
    for n, journal in enumerate(journals, 1):
        if on_file is not None:
            on_file(n, len(journals), journal)
        verify_file(journal, hasher, report)
    return report
