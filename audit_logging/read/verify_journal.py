"""Verification of one journal: its chain, its first line's anchor, its digest.

Two passes, the second only when the first finds anything wrong:

* the fast pass checks that every line links to the line before it in the
  file (``hash(n) = H(hash(n-1) + line(n) without its hash)``), in 4 MiB
  blocks, with no JSON parse; a big file is split at line ends between
  processes (each piece starts from the stored hash of the line before it,
  so the pieces are independent). The hash is the bound: about 1 us per
  400-byte line for SHA-256 on one core;
* the careful pass (:func:`_careful`) places every line by its ``seq``, so a
  swap is one ``reordered``, a gap one ``missing``, an edit one ``edited``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from audit_logging._files import between_batches, iter_lines
from audit_logging.chain import GENESIS, Hasher, digest_path, seq_of, split_hash
from audit_logging.read._pieces import in_pieces
from audit_logging.read.catalogue import peek_lines
from audit_logging.read.report import Problem, VerifyReport

__all__ = ["JournalEnd", "verify_journal"]

_BLOCK = 4 << 20
_MEMBER = b',"hash":"'
_SUFFIX = len(_MEMBER) + 64 + 2  # ,"hash":"<64 hex>"}


@dataclass
class JournalEnd:
    """How far a journal's chain goes: its last ``seq`` and hash, lines, bytes read, and the
    ``seq`` its digest records (``None`` without a digest)."""

    last_seq: int
    last_hash: str | None
    lines: int
    size: int
    digest_seq: int | None


def _read_digest(path: Path) -> bytes | None:
    try:
        return digest_path(path).read_bytes()
    except FileNotFoundError:
        return None
    except OSError:
        return b""  # reported as an unreadable digest


def _link_function(key: bytes | None) -> Callable[[bytes], bytes]:
    if key is None:
        sha = hashlib.sha256
        return lambda data: sha(data).hexdigest().encode("ascii")
    return lambda data: hmac.digest(key, data, "sha256").hex().encode("ascii")


def _links_hold(parts: list[bytes], previous: bytes, key: bytes | None) -> bool:
    """Whether each line of ``parts`` links to the one before (the first to ``previous``).

    The hot loop of ``verify``: one slice, one concatenation and one hash per
    line, nothing parsed. A line without the hash member fails the check.
    """
    if key is None:
        sha = hashlib.sha256
        for line in parts:
            stored = line[-66:-2]
            if line[-_SUFFIX:-66] != _MEMBER:
                return False
            if sha(previous + line[:-_SUFFIX] + b"}").hexdigest().encode() != stored:
                return False
            previous = stored
        return True
    for line in parts:
        stored = line[-66:-2]
        if line[-_SUFFIX:-66] != _MEMBER:
            return False
        if hmac.digest(key, previous + line[:-_SUFFIX] + b"}", "sha256").hex().encode() != stored:
            return False
        previous = stored
    return True


def _piece(path: str, start: int, end: int, key: bytes | None) -> tuple[bool, int, bytes, bytes]:
    """Check the links of the lines in ``[start, end)`` (whole lines); ``(ok, lines, first
    line, last line)``. The first line's own link is not checked (the caller does)."""
    lines = 0
    first = last = b""
    with open(path, "rb") as fh:
        fh.seek(start)
        pos, rest = start, b""
        while pos < end:
            data = fh.read(min(_BLOCK, end - pos))
            if not data:
                return False, lines, first, last
            pos += len(data)
            parts = (rest + data).split(b"\n")
            rest = parts.pop()
            if not parts:
                continue
            if not lines:
                first = parts[0]
                if first[-_SUFFIX:-66] != _MEMBER:
                    return False, lines, first, last
                previous, parts = first[-66:-2], parts[1:]
                lines = 1
            if not _links_hold(parts, previous, key):
                return False, lines, first, last
            if parts:
                last = parts[-1]
                previous = last[-66:-2]
                lines += len(parts)
        if rest:
            return False, lines, first, last  # a cut last line: the careful pass names it
    return True, lines, first, last or first


def _fast(path: Path, end: int, hasher: Hasher) -> tuple[int, bytes, bytes] | None:
    """``(lines, first line, last line)`` when every line links to the one before, else None."""
    results = in_pieces(functools.partial(_piece, key=hasher.key), path, end)
    if not all(ok for ok, *_ in results):
        return None
    link = _link_function(hasher.key)
    # Each piece's first line links to the previous piece's last line.
    for (_, _, _, last), (_, _, first, _) in itertools.pairwise(results):
        if link(last[-66:-2] + first[:-_SUFFIX] + b"}") != first[-66:-2]:
            return None
    lines = sum(r[1] for r in results)
    return lines, results[0][2], results[-1][3]


def verify_journal(
    path: Path, name: str, hasher: Hasher, report: VerifyReport, before: Path | None
) -> JournalEnd:
    """Check one journal (``before``: the journal it chains to), adding problems to ``report``."""
    with between_batches(path) as end:
        digest = _read_digest(path)
    fast = _fast(path, end, hasher) if end else (0, b"", b"")
    if fast is None:
        return _careful(path, name, hasher, report, before)
    lines, first_line, last_line = fast
    problems = report.problems
    last_seq, last_hash = 0, None
    if lines:
        first = split_hash(first_line)
        last = split_hash(last_line)
        if first is None or last is None or seq_of(first[0]) != 1:
            return _careful(path, name, hasher, report, before)
        _check_genesis(name, hasher, (1, first[0], first[1]), problems, before)
        last_seq, last_hash = seq_of(last[0]) or 0, last[1]
    result = JournalEnd(last_seq, last_hash, lines, end, None)
    if digest is not None:
        result.digest_seq = _check_digest(path, name, digest, hasher, last_seq, last_hash, problems)
    return result


def _hashes_of(path: Path) -> set[str]:
    """Every line hash of a journal (any of them may be a successor's anchor)."""
    hashes: set[str] = set()
    for _, raw in iter_lines(path):
        parts = split_hash(raw.rstrip(b"\n"))
        if parts is not None:
            hashes.add(parts[1])
    return hashes


_WINDOW = 4096  # recent (seq -> hash) pairs kept to place reordered lines


def _careful(
    path: Path, name: str, hasher: Hasher, report: VerifyReport, before: Path | None
) -> JournalEnd:
    """Check one journal's chain and digest, adding what is wrong to ``report``.

    Each line is checked against the hash of the line whose ``seq`` precedes
    its own, wherever that line is, so that a swap is reported once as
    ``reordered`` rather than as a cascade. Memory stays bounded: only a
    window of recent hashes is kept (the file is streamed).
    """
    problems = report.problems
    with between_batches(path) as end:
        digest = _read_digest(path)
    recent: dict[int, str] = {}  # seq -> hash
    waiting: dict[int, tuple[int, int, bytes, str]] = {}  # missing seq -> (line, seq, data, hash)
    max_seq = 0
    last_hash: str | None = None
    first: tuple[int, bytes, str] | None = None

    def check(line_no: int, seq: int, hashed: bytes, stored: str, previous: str) -> None:
        if hasher(previous, hashed) != stored:
            problems.append(Problem(name, line_no, "edited", f"seq {seq} does not match its hash"))

    lines = 0
    for number, raw in iter_lines(path, end):
        lines += 1
        if not raw.endswith(b"\n"):
            problems.append(Problem(name, number, "truncated", "last line is cut off"))
            break
        line = raw[:-1]
        parts = split_hash(line)
        seq = seq_of(parts[0]) if parts is not None else None
        if parts is None or seq is None:
            try:
                json.loads(line)
            except ValueError:
                problems.append(Problem(name, number, "malformed", "not a JSON line"))
            else:
                problems.append(Problem(name, number, "edited", "line has no chain hash"))
            continue
        hashed, stored = parts
        if seq in recent:
            kind = "duplicated" if recent[seq] == stored else "edited"
            problems.append(Problem(name, number, kind, f"seq {seq} appears again"))
            continue
        if seq == 1:
            first = (number, hashed, stored)
        elif seq - 1 in recent:
            check(number, seq, hashed, stored, recent[seq - 1])
        else:
            waiting[seq - 1] = (number, seq, hashed, stored)
        if seq < max_seq:
            problems.append(
                Problem(name, number, "reordered", f"seq {seq} comes after seq {max_seq}")
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
            Problem(
                name, line_no, "missing", f"the line with seq {missing} before seq {seq} is gone"
            )
        )
    if first is not None:
        _check_genesis(name, hasher, first, problems, before)
    result = JournalEnd(max_seq, last_hash, lines, end, None)
    if digest is not None:
        result.digest_seq = _check_digest(path, name, digest, hasher, max_seq, last_hash, problems)
    return result


def _check_genesis(
    name: str,
    hasher: Hasher,
    first: tuple[int, bytes, str],
    problems: list[Problem],
    before: Path | None,
) -> None:
    number, hashed, stored = first
    if hasher(GENESIS, hashed) == stored:
        return
    if before is not None:
        last = peek_lines(before)[1]
        parts = split_hash(last) if last else None
        if parts is not None and hasher(parts[1], hashed) == stored:
            return  # the usual case: it follows the predecessor's last line
        hashes = _hashes_of(before)
        # A late record of an earlier day can follow the moment this file
        # chained to it, so any line of the predecessor is a valid anchor.
        if any(hasher(h, hashed) == stored for h in hashes):
            return
        problems.append(
            Problem(
                name,
                number,
                "chain-break",
                f"first line does not chain to {before.name}: a journal between them was "
                "removed, or this line was edited",
            )
        )
        return
    hint = "" if hasher.key else " (written with an HMAC key? set AUDIT_LOG_HMAC_KEY)"
    problems.append(Problem(name, number, "edited", f"first line does not match its hash{hint}"))


def _check_digest(
    path: Path,
    name: str,
    data: bytes,
    hasher: Hasher,
    last_seq: int,
    last_hash: str | None,
    problems: list[Problem],
) -> int | None:
    """Compare the end of the chain with the digest file's ``data``."""
    digest_file = digest_path(path)
    try:
        digest = json.loads(data)
        recorded_seq = int(digest["last_seq"])
        recorded_hash = str(digest["last_hash"])
    except (ValueError, KeyError, TypeError):
        problems.append(Problem(str(digest_file), None, "digest", "unreadable digest file"))
        return None
    mac = digest.pop("mac", None)
    if hasher.key is not None and mac != hasher.sign(digest):
        problems.append(
            Problem(str(digest_file), None, "digest", "digest MAC does not match its content")
        )
    if recorded_seq > last_seq:
        problems.append(
            Problem(
                name,
                None,
                "truncated",
                f"digest records seq {recorded_seq} but the file ends at seq {last_seq}",
            )
        )
    elif recorded_seq > 0 and recorded_seq == last_seq and recorded_hash != last_hash:
        problems.append(
            Problem(name, None, "digest", f"last hash differs from the digest at seq {last_seq}")
        )
    return recorded_seq
