"""``verify``: prove every byte of a catalogue intact, or name what is wrong or unproven.

What is checked, file by file (see the README's tamper-evidence section):

* journals: the hash chain, the first line's anchor (genesis or the previous
  day's journal), the digest (:mod:`audit_logging.read.verify_journal`);
* ``audit_log.json`` and chained CSVs: their chains in ``seq`` order
  (:mod:`audit_logging.read.verify_actions`);
* every folder's ``.audit-manifest.jsonl``: its own chain, then every file it
  names (missing, retired, edited warning files, the default CSV's batches,
  journals' final digests: :mod:`audit_logging.read.verify_manifest`);
* seals and signatures: :func:`_check_seals`, the one place where the seal
  verifier (``audit_logging.seals``) plugs in;
* with ``against``: the bucket's copy (:func:`compare_with_bucket`).

Exit status (the command's): 1 when anything is edited, missing, forged or
out of order; 0 when all it could prove is intact, with what it could not
prove listed in ``report.unproven`` (``--strict`` makes those exit 1 too).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from audit_logging.bucket_layout import array_to_lines
from audit_logging.chain import Hasher, hasher_from_env, predecessor
from audit_logging.formats import journal_key
from audit_logging.read.catalogue import Catalogue, LogFile, catalogue
from audit_logging.read.report import Problem, Unproven, VerifyReport
from audit_logging.read.verify_actions import is_chained_csv, verify_array, verify_csv
from audit_logging.read.verify_journal import JournalEnd, verify_journal
from audit_logging.read.verify_manifest import check_manifest

__all__ = ["Problem", "Unproven", "VerifyReport", "compare_with_bucket", "verify", "verify_paths"]


def _predecessors(journals: list[LogFile]) -> dict[Path, Path]:
    """Each journal's predecessor: the one before it in its series (folder, prefix, session)."""
    series: dict[tuple[Path, str, str | None], list[tuple[str, Path]]] = {}
    for log in journals:
        key = journal_key(log.path.name)
        if key is not None:
            series.setdefault((log.path.parent, key[0], key[1]), []).append((key[2], log.path))
    before: dict[Path, Path] = {}
    for members in series.values():
        members.sort()
        for (_, earlier), (_, later) in itertools.pairwise(members):
            before[later] = earlier
    return before


def _check_seals(
    cat: Catalogue,
    ends: dict[Path, JournalEnd],
    report: VerifyReport,
    *,
    public_key: Any = None,
    verification_key: Any = None,
    since: Any = None,
) -> None:
    """Seals and signatures: where ``audit_logging.seals`` plugs in.

    The seal verifier is ``audit_logging.seals.verify_seals(seals, journals,
    report, public_key=..., verification_key=..., since=...)``: ``seals`` the
    catalogue's ``seal`` files, ``journals`` the journals read (a dict of each
    one's :class:`JournalEnd` by path; iterating it gives the paths). It adds
    :class:`Problem` (kind ``seal``) for a forged or broken seal and
    :class:`Unproven` for lines after the last seal. Without it, seal files
    are listed as unproven and a key given is refused.
    """
    seals = cat.of("seal")
    try:
        from audit_logging.seals import verify_seals  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        if public_key is not None or verification_key is not None or since is not None:
            raise ValueError(
                "checking seals and signatures needs audit_logging.seals (not installed)"
            ) from None
        for seal in seals:
            size = seal.path.stat().st_size if seal.path.exists() else 0
            report.unproven.append(Unproven(seal.name, size, None, "seal not checked"))
        return
    keys = {"public_key": public_key, "verification_key": verification_key}
    if since is not None:
        keys["since"] = since
    verify_seals(seals, ends, report, **keys)  # pragma: no cover - the seals part


def verify(
    cat: Catalogue,
    *,
    hasher: Hasher | None = None,
    public_key: Any = None,
    verification_key: Any = None,
    since: Any = None,
    on_file: Callable[[LogFile], None] | None = None,
) -> VerifyReport:
    """Verify every journal, action log, warning file and manifest of ``cat``.

    ``hasher`` defaults to SHA-256, or HMAC-SHA256 with ``AUDIT_LOG_HMAC_KEY``;
    ``public_key``, ``verification_key`` and ``since`` go to the seal
    verifier (:func:`_check_seals`).
    ``on_file`` is called before each file is read (for a progress bar).
    """
    hasher = hasher or hasher_from_env()
    report = VerifyReport()
    before = _predecessors(cat.of("journal"))
    ends: dict[Path, JournalEnd] = {}
    for log in cat.files:
        if on_file is not None:
            on_file(log)
        if log.kind == "journal":
            # A journal named alone still chains to the day before it in its folder.
            anchor = before.get(log.path) or predecessor(log.path)
            end = verify_journal(log.path, log.name, hasher, report, anchor)
            report.files += 1
            report.lines += end.lines
            ends[log.path] = end
        elif log.kind == "array":
            verify_array(log.path, hasher, report, named=log.path in cat.named, name=log.name)
        elif log.kind == "csv" and (log.path in cat.named or is_chained_csv(log.path)):
            verify_csv(log.path, hasher, report, name=log.name)
    proven: set[Path] = set()
    for manifest in cat.of("manifest"):
        folder = manifest.path.parent
        present = {f.path.name: f for f in cat.files if f.path.parent == folder}
        proven |= {folder / n for n in check_manifest(manifest, present, ends, hasher, report)}
    _unproven(cat, ends, proven, report)
    _check_seals(
        cat, ends, report, public_key=public_key, verification_key=verification_key, since=since
    )
    return report


def _unproven(
    cat: Catalogue, ends: dict[Path, JournalEnd], proven: set[Path], report: VerifyReport
) -> None:
    """Name what neither a chain, a digest nor the manifest proves."""
    for log in cat.files:
        if log.path in proven:
            continue
        if log.kind == "journal":
            end = ends[log.path]
            if end.digest_seq is None and end.lines:
                report.unproven.append(
                    Unproven(log.name, end.size, end.lines, "no digest: a cut tail would not show")
                )
            elif end.digest_seq is not None and end.last_seq > end.digest_seq:
                report.unproven.append(
                    Unproven(
                        log.name,
                        0,
                        end.last_seq - end.digest_seq,
                        "lines after the digest (a writer still open?)",
                    )
                )
        elif log.kind in ("warning", "rejects") or (
            log.kind == "csv" and not is_chained_csv(log.path)
        ):
            size = log.path.stat().st_size
            report.unproven.append(
                Unproven(log.name, size, None, "no chain and no manifest line covers it")
            )


def verify_paths(
    paths: Iterable[str | os.PathLike[str]], hasher: Hasher | None = None
) -> VerifyReport:
    """:func:`verify` of :func:`catalogue` ``(paths)``: the one-call form."""
    return verify(catalogue(paths), hasher=hasher)


def compare_with_bucket(local: Catalogue, remote: Catalogue, report: VerifyReport) -> None:
    """Name what is missing or different between a local folder and the bucket's copy.

    Files are matched by their path relative to each root. Append-only files
    (journals, CSVs, the manifest, rejects) may lag in the bucket: a bucket
    copy that is a prefix of the local file is unproven, not different.
    """
    mine = _relative(local)
    theirs = _relative(remote)
    for rel in sorted(mine.keys() | theirs.keys()):
        a, b = mine.get(rel), theirs.get(rel)
        if b is None:
            assert a is not None
            report.problems.append(Problem(a.name, None, "missing", "not in the bucket"))
        elif a is None:
            report.problems.append(Problem(b.name, None, "missing", "in the bucket, not here"))
        else:
            _compare(a, b, report)


def _relative(cat: Catalogue) -> dict[str, LogFile]:
    found: dict[str, LogFile] = {}
    for log in cat.files:
        if log.kind == "digest":  # rewritten in place: its journal's chain is compared
            continue
        rel = None
        for root in cat.roots:
            base = root.rstrip("/") + "/"
            if log.remote is not None and log.remote.startswith(base):
                rel = log.remote[len(base) :]
            elif log.remote is None and str(log.path).startswith(base):
                rel = str(log.path)[len(base) :]
        found[rel or log.path.name] = log
    return found


_APPEND_ONLY = ("journal", "csv", "manifest", "rejects")


def _same_entries(mine: bytes, theirs: bytes) -> bool:
    """Whether two ``audit_log.json`` hold the same entries, byte for byte, in the same order."""
    lines = array_to_lines(mine)
    return lines is not None and lines == array_to_lines(theirs)


def _compare(a: LogFile, b: LogFile, report: VerifyReport) -> None:
    mine, theirs = a.path.read_bytes(), b.path.read_bytes()
    if mine == theirs:
        return
    if a.kind == "array" and _same_entries(mine, theirs):
        return  # the mirror sends the entries, not the writer's reserve of spaces
    if a.kind in _APPEND_ONLY and mine.startswith(theirs):
        report.unproven.append(
            Unproven(a.name, len(mine) - len(theirs), None, "not yet in the bucket")
        )
    elif a.kind in _APPEND_ONLY and theirs.startswith(mine):
        report.problems.append(
            Problem(a.name, None, "truncated", f"the bucket's copy has {len(theirs) - len(mine)} "
                    "more byte(s): the local file was cut")
        )  # fmt: skip
    elif a.kind == "array":
        report.unproven.append(Unproven(a.name, len(mine), None, "differs from the bucket's copy"))
    else:
        report.problems.append(Problem(a.name, None, "differs", f"differs from {b.name}"))
