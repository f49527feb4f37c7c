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
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import itertools
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from audit_logging._files import between_batches, iter_lines, size_between_batches
from audit_logging.schema import ACTION_FIELDS, dumps

__all__ = [
    "GENESIS",
    "ChainProblem",
    "Hasher",
    "VerifyReport",
    "digest_path",
    "hasher_from_env",
    "is_chained_csv",
    "iter_logs",
    "split_hash",
    "verify_paths",
]

GENESIS = "0" * 64
_HASH_MEMBER = b',"hash":"'
#: The header of a chained action CSV (what ``CsvHandler(chain=True)`` writes).
CSV_CHAINED_HEADER = (",".join((*ACTION_FIELDS, "seq", "hash")) + "\r\n").encode("ascii")
_CSV_CHAIN_CELLS = re.compile(rb",(\d+),([0-9a-f]{64})\r?$")
_JSON_WS = b" \t\r\n"
#: A writer's rejects file (records it refused, unchained): not a journal.
_REJECTS = re.compile(r"^rejected-\d{4}-\d{2}-\d{2}\.jsonl$")
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
    lines = []
    if csv:
        for body in bodies:
            seq += 1
            unhashed = b"%s,%d" % (body, seq)
            last = link(last, unhashed)
            lines.append(b"%s,%s%s" % (unhashed, last, end))
    else:
        for body in bodies:
            seq += 1
            unhashed = b'%s,"seq":%d}' % (body, seq)
            last = link(last, unhashed)
            lines.append(b'%s,"hash":"%s"}%s' % (unhashed[:-1], last, end))
    return lines, seq, last


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
    # edited | missing | duplicated | reordered | truncated | digest | chain-break |
    # malformed | unchained
    kind: str
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


def _hashes_of(path: Path) -> set[str]:
    """Every line hash of a journal (any of them may be a successor's anchor)."""
    hashes: set[str] = set()
    for _, raw in iter_lines(path):
        parts = split_hash(raw.rstrip(b"\n"))
        if parts is not None:
            hashes.add(parts[1])
    return hashes


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
    with between_batches(path) as end:
        try:
            digest: bytes | None = digest_path(path).read_bytes()
        except FileNotFoundError:
            digest = None
        except OSError:
            digest = b""  # reported as an unreadable digest
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

    for number, raw in iter_lines(path, end):
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
    if digest is not None:
        _check_digest(path, digest, hasher, max_seq, last_hash, problems)


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
        hashes = _hashes_of(before)
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
    path: Path,
    data: bytes,
    hasher: Hasher,
    last_seq: int,
    last_hash: str | None,
    problems: list[ChainProblem],
) -> None:
    """Compare the end of the chain with the digest file's ``data``."""
    digest_file = digest_path(path)
    try:
        digest = json.loads(data)
        recorded_seq = int(digest["last_seq"])
        recorded_hash = str(digest["last_hash"])
    except (ValueError, KeyError, TypeError):
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
            yield from sorted(
                p for p in path.rglob("*.jsonl") if p.is_file() and not _REJECTS.match(p.name)
            )
        elif path.exists():
            yield path
        else:
            raise FileNotFoundError(2, "No such file or directory", str(path))


def is_chained_csv(path: Path) -> bool:
    """Whether the CSV at ``path`` has the ``seq,hash`` columns (``CsvHandler(chain=True)``)."""
    try:
        with path.open("rb") as fh:
            return fh.read(len(CSV_CHAINED_HEADER)) == CSV_CHAINED_HEADER
    except OSError:
        return False


def log_kind(path: Path) -> str | None:
    """What ``verify`` takes a file found in a folder for: ``"journal"``, ``"array"``, ``"csv"``.

    ``*.jsonl`` journals, ``audit_log*.json`` arrays (not digest files) and
    ``*.csv`` files whose header has the ``seq,hash`` columns; ``None`` for
    anything else.
    """
    name = path.name
    if name.endswith(".jsonl"):
        return None if _REJECTS.match(name) else "journal"
    if name.startswith("audit_log") and name.endswith(".json"):
        return None if name.endswith(".digest.json") else "array"
    if name.endswith(".csv") and is_chained_csv(path):
        return "csv"
    return None


def iter_logs(paths: Iterable[str | os.PathLike[str]]) -> Iterator[tuple[str, Path]]:
    """``(kind, path)`` of every log to verify under ``paths``: journal, array or csv.

    In a folder (recursively), the files :func:`log_kind` recognises. A file
    named explicitly is taken by its suffix (``.json``: array, ``.csv``: CSV,
    else journal), chained or not.
    """
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found = [(kind, p) for p in path.rglob("*") if p.is_file() and (kind := log_kind(p))]
            found.sort(key=lambda pair: pair[1])
            yield from found
        elif path.exists():
            suffix = path.suffix.lower()
            yield {".json": "array", ".csv": "csv"}.get(suffix, "journal"), path
        else:
            raise FileNotFoundError(2, "No such file or directory", str(path))


# ---------------------------------------------------------------------- action logs


@dataclass
class _Link:
    where: int  # 1-based line of the file (for the array: also the entry's position)
    seq: int
    hashed: bytes
    stored: str
    repeated: bool  # an earlier entry has the same seq


def _check_links(
    name: str, links: Iterable[_Link], hasher: Hasher, problems: list[ChainProblem], unit: str
) -> int:
    """Check entries in ``seq`` order, wherever they are; returns the highest ``seq``.

    Each entry is checked against the stored hash of the entry with the
    previous ``seq`` (64 zeros for ``seq`` 1), so one edited entry is reported
    once, not as a cascade. Entries whose predecessor is not seen yet wait.
    """
    hashes: dict[int, list[str]] = {}
    waiting: dict[int, list[_Link]] = {}

    def judge(link: _Link, previous: list[str]) -> None:
        what = f"{unit} {link.where} (seq {link.seq})"
        if not any(hasher(p, link.hashed) == link.stored for p in previous):
            hint = ""
            if link.seq == 1 and not hasher.key:
                hint = " (written with an HMAC key? set AUDIT_LOG_HMAC_KEY)"
            again = ", and its seq appears again" if link.repeated else ""
            problems.append(
                ChainProblem(
                    name, link.where, "edited", f"{what} does not match its hash{again}{hint}"
                )
            )
        elif link.repeated:
            problems.append(
                ChainProblem(name, link.where, "duplicated", f"{what}: its seq appears again")
            )

    for link in links:
        if link.seq == 1:
            judge(link, [GENESIS])
        elif link.seq - 1 in hashes:
            judge(link, hashes[link.seq - 1])
        else:
            waiting.setdefault(link.seq - 1, []).append(link)
        hashes.setdefault(link.seq, []).append(link.stored)
        for pending in waiting.pop(link.seq, ()):
            judge(pending, hashes[link.seq])
    present = sorted(hashes)
    for missing, pending_links in sorted(waiting.items()):
        below = bisect.bisect_left(present, missing)
        low = present[below - 1] + 1 if below else 1
        if low == missing:
            gone = f"the {unit} with seq {missing} is gone"
        else:
            gone = f"the {unit}s with seq {low} to {missing} are gone"
        for link in pending_links:
            problems.append(
                ChainProblem(
                    name, link.where, "missing", f"{unit} {link.where} (seq {link.seq}): {gone}"
                )
            )
    return present[-1] if present else 0


def _array_items(data: bytes, entries: list[object]) -> list[bytes]:
    """The entries' bytes as on disk: one per line in the writer's layout.

    An array in another layout (pretty-printed by an editor, say) gives the
    entries re-encoded compactly, as the writer itself converts such a file.
    """
    items = []
    for line in data.split(b"\n"):
        item = line.strip(_JSON_WS).lstrip(b"[").strip(_JSON_WS)
        if item.endswith(b","):
            item = item[:-1]
        if item.startswith(b"{") and item.endswith(b"}"):
            items.append(item)
    if len(items) == len(entries):
        return items
    return [dumps(entry) for entry in entries]


def verify_array(path: Path, hasher: Hasher, report: VerifyReport, named: bool = False) -> None:
    """Check the chain of an ``audit_log.json`` array (see the module docstring)."""
    from audit_logging.array_file import reading_lock, recorded_seq

    name = str(path)
    problems = report.problems
    # The file and the writers' record of its last seq, both as of one instant
    # between two batches: read apart, a batch written in between would look
    # like a truncated file.
    with reading_lock(path):
        data = path.read_bytes()
        recorded = recorded_seq(path)
    try:
        entries = json.loads(data) if data.strip(_JSON_WS) else []
    except ValueError:
        entries = None
    if not isinstance(entries, list):
        report.files += 1
        problems.append(ChainProblem(name, None, "malformed", "not a JSON array"))
        return
    links: list[_Link] = []
    plain: list[tuple[int, str]] = []  # (position, timestamp) of entries without a hash
    by_seq: dict[int, list[_Link]] = {}
    for position, item in enumerate(_array_items(data, entries), 1):
        parts = split_hash(item)
        seq = _seq_of(parts[0]) if parts is not None else None
        if parts is None or seq is None:
            plain.append((position, _entry_stamp(entries[position - 1])))
            continue
        link = _Link(position, seq, parts[0], parts[1], False)
        links.append(link)
        by_seq.setdefault(seq, []).append(link)
    for group in by_seq.values():
        if len(group) > 1:
            _mark_copies(group, entries)
    if not links:
        if named and entries:
            report.files += 1
            problems.append(
                ChainProblem(name, None, "unchained", "no entry has seq/hash (chain=False?)")
            )
        elif named:
            report.files += 1
        return
    report.files += 1
    report.lines += len(entries)
    # Oldest first: entries mostly follow their predecessor, so few wait.
    last_seq = _check_links(name, reversed(links), hasher, problems, "entry")
    first = min(links, key=lambda link: link.seq)
    since = _entry_stamp(entries[first.where - 1])
    for position, stamp in plain:
        if stamp > since:
            problems.append(
                ChainProblem(
                    name,
                    position,
                    "unchained",
                    f"entry {position} has no seq/hash but is newer than the chain's first entry",
                )
            )
    if recorded is not None and recorded > last_seq:
        problems.append(
            ChainProblem(
                name,
                None,
                "truncated",
                f"the writer recorded seq {recorded} but the array ends at seq {last_seq}",
            )
        )


def _mark_copies(group: list[_Link], entries: list[object]) -> None:
    """Of entries sharing a ``seq``, mark all but one as repeated.

    The one kept is the first that sits in timestamp order among its
    neighbours (where the writer put it), else the lowest in the array.
    """

    def in_place(link: _Link) -> bool:
        at = link.where - 1
        stamp = _entry_stamp(entries[at])
        newer = _entry_stamp(entries[at - 1]) if at > 0 else stamp
        older = _entry_stamp(entries[at + 1]) if at + 1 < len(entries) else stamp
        return newer >= stamp >= older

    kept = next((link for link in group if in_place(link)), group[-1])
    for link in group:
        link.repeated = link is not kept


def _entry_stamp(entry: object) -> str:
    stamp = entry.get("timestamp") if isinstance(entry, dict) else None
    return stamp if isinstance(stamp, str) else ""


def _csv_rows(path: Path, end: int | None = None) -> Iterator[tuple[int, bytes]]:
    """``(line number, row bytes with line end)`` of a CSV file; quoted newlines stay inside."""
    start, quotes = 0, 0
    parts: list[bytes] = []
    for number, line in iter_lines(path, end):
        if not parts:
            start = number
        parts.append(line)
        quotes += line.count(b'"')
        if quotes % 2 == 0:
            yield start, b"".join(parts)
            parts, quotes = [], 0
    if parts:
        yield start, b"".join(parts)


def verify_csv(path: Path, hasher: Hasher, report: VerifyReport) -> None:
    """Check the chain of an action CSV written with ``chain=True``."""
    name = str(path)
    problems = report.problems
    report.files += 1
    rows = _csv_rows(path, size_between_batches(path))
    header = next(rows, None)
    if header is None or header[1] != CSV_CHAINED_HEADER:
        problems.append(ChainProblem(name, None, "unchained", "the header has no seq,hash columns"))
        return
    links: list[_Link] = []
    seen: set[int] = set()
    for number, raw in rows:
        report.lines += 1
        if not raw.endswith(b"\n"):
            problems.append(ChainProblem(name, number, "truncated", "last row is cut off"))
            break
        row = raw[:-1]
        match = _CSV_CHAIN_CELLS.search(row)
        if match is None:
            problems.append(
                ChainProblem(name, number, "malformed", "row has no seq,hash cells (cut off?)")
            )
            continue
        seq = int(match[1])
        links.append(_Link(number, seq, row[: match.start(2) - 1], match[2].decode(), seq in seen))
        seen.add(seq)
    _check_links(name, links, hasher, problems, "row")


def verify_paths(
    paths: Iterable[str | os.PathLike[str]],
    hasher: Hasher | None = None,
    on_file: Callable[[int, int, Path], None] | None = None,
) -> VerifyReport:
    """Verify every journal and action log under ``paths``; an intact set gives ``report.ok``.

    ``on_file(n, total, path)`` is called before each file (for a progress bar).
    """
    hasher = hasher or hasher_from_env()
    report = VerifyReport()
    given = [Path(p) for p in paths]
    logs = list(iter_logs(given))
    named = {p for p in given if not p.is_dir()}
    journals = [path for kind, path in logs if kind == "journal"]
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
    for n, (kind, path) in enumerate(logs, 1):
        if on_file is not None:
            on_file(n, len(logs), path)
        if kind == "journal":
            verify_file(path, hasher, report)
        elif kind == "array":
            verify_array(path, hasher, report, named=path in named)
        else:
            verify_csv(path, hasher, report)
    return report
