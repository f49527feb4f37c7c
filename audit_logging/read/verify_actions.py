"""Verification of the action logs' chains: ``audit_log.json`` arrays and chained CSVs.

See :mod:`audit_logging.chain` for the links. Both are checked in ``seq``
order wherever an entry sits: an edited entry (by its position and ``seq``),
a missing ``seq`` and a duplicated ``seq`` are reported. An array has no
digest file; its writers' lock file records the last ``seq`` written, which
catches removed newest entries unless it was edited too. Entries without
``seq``/``hash`` older than the chain's first entry are taken as history from
before chaining began; newer ones are reported.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from audit_logging._files import iter_lines, size_between_batches
from audit_logging.array_file import reading_lock, recorded_seq
from audit_logging.chain import CSV_CHAINED_HEADER, GENESIS, Hasher, seq_of, split_hash
from audit_logging.read.report import Problem, VerifyReport
from audit_logging.schema import dumps

__all__ = ["is_chained_csv", "verify_array", "verify_csv"]

_CSV_CHAIN_CELLS = re.compile(rb",(\d+),([0-9a-f]{64})\r?$")
_JSON_WS = b" \t\r\n"


def is_chained_csv(path: Path) -> bool:
    """Whether the CSV at ``path`` has the ``seq,hash`` columns (``CsvHandler(chain=True)``)."""
    try:
        with path.open("rb") as fh:
            return fh.read(len(CSV_CHAINED_HEADER)) == CSV_CHAINED_HEADER
    except OSError:
        return False


@dataclass
class _Link:
    where: int  # 1-based line of the file (for the array: also the entry's position)
    seq: int
    hashed: bytes
    stored: str
    repeated: bool  # an earlier entry has the same seq


def _check_links(
    name: str, links: Iterable[_Link], hasher: Hasher, problems: list[Problem], unit: str
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
                Problem(name, link.where, "edited", f"{what} does not match its hash{again}{hint}")
            )
        elif link.repeated:
            problems.append(
                Problem(name, link.where, "duplicated", f"{what}: its seq appears again")
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
                Problem(
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


def verify_array(
    path: Path, hasher: Hasher, report: VerifyReport, named: bool = False, name: str | None = None
) -> None:
    """Check the chain of an ``audit_log.json`` array (see the module docstring)."""
    name = name or str(path)
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
        problems.append(Problem(name, None, "malformed", "not a JSON array"))
        return
    links: list[_Link] = []
    plain: list[tuple[int, str]] = []  # (position, timestamp) of entries without a hash
    by_seq: dict[int, list[_Link]] = {}
    for position, item in enumerate(_array_items(data, entries), 1):
        parts = split_hash(item)
        seq = seq_of(parts[0]) if parts is not None else None
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
                Problem(name, None, "unchained", "no entry has seq/hash (chain=False?)")
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
                Problem(
                    name,
                    position,
                    "unchained",
                    f"entry {position} has no seq/hash but is newer than the chain's first entry",
                )
            )
    if recorded is not None and recorded > last_seq:
        problems.append(
            Problem(
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


def verify_csv(path: Path, hasher: Hasher, report: VerifyReport, name: str | None = None) -> None:
    """Check the chain of an action CSV written with ``chain=True``."""
    name = name or str(path)
    problems = report.problems
    report.files += 1
    rows = _csv_rows(path, size_between_batches(path))
    header = next(rows, None)
    if header is None or header[1] != CSV_CHAINED_HEADER:
        problems.append(Problem(name, None, "unchained", "the header has no seq,hash columns"))
        return
    links: list[_Link] = []
    seen: set[int] = set()
    for number, raw in rows:
        report.lines += 1
        if not raw.endswith(b"\n"):
            problems.append(Problem(name, number, "truncated", "last row is cut off"))
            break
        row = raw[:-1]
        match = _CSV_CHAIN_CELLS.search(row)
        if match is None:
            problems.append(
                Problem(name, number, "malformed", "row has no seq,hash cells (cut off?)")
            )
            continue
        seq = int(match[1])
        links.append(_Link(number, seq, row[: match.start(2) - 1], match[2].decode(), seq in seen))
        seen.add(seq)
    _check_links(name, links, hasher, problems, "row")
