"""Verification through the per-folder manifest (see :mod:`audit_logging.manifest`).

The manifest's own chain is checked first (an edited, inserted or deleted
manifest line is named by line), then every file it names: a file gone is
``missing`` unless the manifest says it was retired (then it is listed as
retired), a journal must still have its digest and reach the final digest
the manifest sealed, a warning file must hash to what it was when written,
and a file without a chain of its own (the default five-column CSV) must
match the manifest's per-batch hashes, bytes after the last batch being
named as unproven.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit_logging._files import iter_lines
from audit_logging.chain import GENESIS, Hasher, digest_path, seq_of, split_hash
from audit_logging.read.catalogue import LogFile
from audit_logging.read.records import loads
from audit_logging.read.report import Problem, Unproven, VerifyReport
from audit_logging.read.verify_journal import JournalEnd

__all__ = ["check_manifest"]


@dataclass
class _Entry:
    """What the manifest says of one file."""

    kind: str | None = None
    line: int = 0  # the manifest line that first names it
    whole: dict[str, Any] | None = None  # sha256 and size of a file written once
    batches: list[tuple[int, int, str, int]] = field(default_factory=list)
    sealed: dict[str, Any] | None = None
    sealed_line: int = 0
    retired: str | None = None


def _read(manifest: LogFile, hasher: Hasher, report: VerifyReport) -> dict[str, _Entry]:
    """The manifest's lines by file, checking its chain as it goes."""
    name = manifest.name
    entries: dict[str, _Entry] = {}
    previous = GENESIS
    expected = 1
    for number, raw in iter_lines(manifest.path):
        if not raw.endswith(b"\n"):
            report.problems.append(Problem(name, number, "truncated", "last line is cut off"))
            break
        line = raw[:-1]
        parts = split_hash(line)
        seq = seq_of(parts[0]) if parts is not None else None
        try:
            data = loads(line)
        except ValueError:
            data = None
        if parts is None or seq is None or not isinstance(data, dict):
            report.problems.append(Problem(name, number, "manifest", "not a manifest line"))
            continue
        if seq != expected:
            what = "missing" if seq > expected else "duplicated"
            report.problems.append(
                Problem(name, number, what, f"manifest seq {seq} where {expected} was due")
            )
        elif hasher(previous, parts[0]) != parts[1]:
            report.problems.append(
                Problem(name, number, "edited", f"manifest seq {seq} does not match its hash")
            )
        previous, expected = parts[1], seq + 1
        _note(entries, data, number)
    return entries


def _note(entries: dict[str, _Entry], data: dict[str, Any], number: int) -> None:
    file, op = data.get("file"), data.get("op")
    if not isinstance(file, str):
        return
    entry = entries.get(file)
    if entry is None:
        entry = entries[file] = _Entry(line=number)
    if op == "created":
        entry.kind = data.get("kind") if isinstance(data.get("kind"), str) else entry.kind
        if isinstance(data.get("sha256"), str):
            entry.whole = data
        entry.retired = None  # a file begun again under the same name
    elif op == "batch":
        try:
            entry.batches.append(
                (int(data["start"]), int(data["end"]), str(data["sha256"]), number)
            )
        except (KeyError, TypeError, ValueError):
            pass
    elif op in ("sealed", "rotated"):
        entry.sealed, entry.sealed_line = data, number
    elif op == "retired":
        entry.retired = str(data.get("reason") or "retention")


def _check_whole(path: Path, shown: str, entry: _Entry, report: VerifyReport) -> None:
    assert entry.whole is not None
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != entry.whole.get("sha256"):
        report.problems.append(
            Problem(
                shown,
                None,
                "edited",
                f"differs from what was written (manifest line {entry.line})",
            )
        )


def _check_batches(path: Path, shown: str, entry: _Entry, report: VerifyReport) -> None:
    size = path.stat().st_size
    covered = 0
    with path.open("rb") as fh:
        for start, end, digest, number in sorted(entry.batches):
            if end > size:
                report.problems.append(
                    Problem(
                        shown,
                        None,
                        "truncated",
                        f"the manifest (line {number}) records bytes up to {end}, "
                        f"the file has {size}",
                    )
                )
                return
            fh.seek(start)
            chunk = fh.read(end - start)
            if hashlib.sha256(chunk).hexdigest() != digest:
                fh.seek(0)
                row = fh.read(start).count(b"\n") + 1
                report.problems.append(
                    Problem(
                        shown,
                        row,
                        "edited",
                        f"bytes {start}-{end} (from line {row}) differ from the batch "
                        f"the manifest recorded (line {number})",
                    )
                )
            if start > covered:
                report.unproven.append(
                    Unproven(shown, start - covered, None, "bytes no manifest batch covers")
                )
            covered = max(covered, end)
    if size > covered:
        report.unproven.append(
            Unproven(shown, size - covered, None, "bytes after the manifest's last batch")
        )


def _check_journal(
    path: Path, shown: str, entry: _Entry, end: JournalEnd | None, report: VerifyReport
) -> bool:
    """Digest present and sealed end reached; ``True`` when the seal proves the whole tail."""
    if not digest_path(path).exists() and end is not None and end.lines:
        report.problems.append(
            Problem(
                str(digest_path(path)) if shown == str(path) else shown + ".digest.json",
                None,
                "missing",
                f"the journal's digest file is gone (manifest line {entry.line})",
            )
        )
    if entry.sealed is None or end is None:
        return False
    try:
        sealed_seq = int(entry.sealed["last_seq"])
        sealed_hash = str(entry.sealed["last_hash"])
    except (KeyError, TypeError, ValueError):
        return False
    if end.last_seq < sealed_seq:
        if end.digest_seq is not None and end.digest_seq >= sealed_seq:
            return True  # the digest, still there, already named the cut tail
        report.problems.append(
            Problem(
                shown,
                None,
                "truncated",
                f"the manifest sealed seq {sealed_seq} (line {entry.sealed_line}) but the file "
                f"ends at seq {end.last_seq}",
            )
        )
        return True
    if end.last_seq == sealed_seq and end.last_hash != sealed_hash:
        report.problems.append(
            Problem(
                shown,
                None,
                "edited",
                f"last hash differs from the manifest's seal (line {entry.sealed_line})",
            )
        )
    return end.last_seq == sealed_seq


def check_manifest(
    manifest: LogFile,
    present: dict[str, LogFile],
    ends: dict[Path, JournalEnd],
    hasher: Hasher,
    report: VerifyReport,
) -> set[str]:
    """Check ``manifest`` and the files it names (``present``: the folder's files by name).

    Returns the names whose bytes the manifest proved (whole files and sealed
    journals), so the caller does not list them as unproven.
    """
    folder = manifest.path.parent
    shown_folder = manifest.name[: -len(manifest.path.name)]
    proven: set[str] = set()
    for name, entry in _read(manifest, hasher, report).items():
        path = folder / name
        shown = present[name].name if name in present else shown_folder + name
        if entry.retired is not None:
            report.retired.append(f"{shown} ({entry.retired})")
            continue
        if not path.is_file():
            report.problems.append(
                Problem(
                    shown, None, "missing", f"named by the manifest (line {entry.line}) but gone"
                )
            )
            continue
        if entry.whole is not None:
            _check_whole(path, shown, entry, report)
            proven.add(name)
        if entry.batches:
            _check_batches(path, shown, entry, report)
            proven.add(name)
        if entry.kind == "journal" and _check_journal(path, shown, entry, ends.get(path), report):
            proven.add(name)
    return proven
