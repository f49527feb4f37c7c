"""The catalogue: every audit output under some folders, files or ``gs://`` prefixes.

One rule (:func:`audit_logging.formats.kind_of`) says which file is which; the
catalogue lists them once, grouped by run (session id), for every reader.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit_logging.formats import journal_key, kind_of, kind_of_named

__all__ = ["Catalogue", "LogFile", "Run", "catalogue", "peek_lines"]

_PEEK = 64 * 1024


@dataclass(frozen=True)
class LogFile:
    """One file of audit output: where it is, its kind, its session when known.

    ``remote`` is the ``gs://`` URL when ``path`` is a local copy of an object.
    """

    path: Path
    kind: str
    session: str | None = None
    remote: str | None = None

    @property
    def name(self) -> str:
        """What the user sees: the ``gs://`` URL of a bucket's object, else the local path."""
        return self.remote or str(self.path)


@dataclass
class Run:
    """One run (session id) and its span, from the first and last lines of its journals."""

    session_id: str
    first: str | None = None
    last: str | None = None
    files: list[LogFile] = field(default_factory=list)
    hosts: set[str] = field(default_factory=set)
    ranks: set[int] = field(default_factory=set)


@dataclass
class Catalogue:
    """What :func:`catalogue` found. ``files`` are in path order."""

    roots: list[str]
    files: list[LogFile]
    named: set[Path] = field(default_factory=set)  # files the user named explicitly
    _runs: list[Run] | None = field(default=None, repr=False)

    @property
    def is_empty(self) -> bool:
        """Whether no audit output was found (manifests and digests alone count as none)."""
        return not any(f.kind in _RECORD_KINDS for f in self.files)

    def of(self, *kinds: str) -> list[LogFile]:
        """The files of the given kinds, in path order."""
        return [f for f in self.files if f.kind in kinds]

    @property
    def runs(self) -> list[Run]:
        """The runs found in the journals, oldest first (computed once, from each file's ends)."""
        if self._runs is None:
            self._runs = _runs_of(self.of("journal"))
        return self._runs


_RECORD_KINDS = frozenset(("journal", "array", "csv", "warning", "rejects"))


def peek_lines(path: Path) -> tuple[bytes | None, bytes | None]:
    """The first and last complete lines of a file (``None`` when it has none)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(_PEEK)
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - _PEEK))
            tail = fh.read(_PEEK)
    except OSError:
        return None, None
    first = head.split(b"\n", 1)[0] if b"\n" in head else None
    body = tail[: tail.rfind(b"\n")] if b"\n" in tail else b""
    last = body.rsplit(b"\n", 1)[-1] if body else None
    return first, last


def _load(line: bytes | None) -> dict[str, Any]:
    if not line:
        return {}
    try:
        value = json.loads(line)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _runs_of(journals: Sequence[LogFile]) -> list[Run]:
    runs: dict[str, Run] = {}
    for log in journals:
        for record in map(_load, peek_lines(log.path)):
            session = record.get("session_id") or log.session
            if not isinstance(session, str):
                continue
            run = runs.setdefault(session, Run(session))
            if log not in run.files:
                run.files.append(log)
            stamp = record.get("timestamp")
            if isinstance(stamp, str):
                run.first = stamp if run.first is None else min(run.first, stamp)
                run.last = stamp if run.last is None else max(run.last, stamp)
            if isinstance(record.get("host"), str):
                run.hosts.add(record["host"])
            if isinstance(record.get("rank"), int):
                run.ranks.add(record["rank"])
    return sorted(runs.values(), key=lambda r: (r.first or "", r.session_id))


def _session_of(path: Path, kind: str) -> str | None:
    if kind != "journal":
        return None
    key = journal_key(path.name)
    return key[1] if key else None


def _walk(folder: Path) -> Iterator[Path]:
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            yield Path(root, name)


def catalogue(paths: Iterable[str | os.PathLike[str]], *, cache: Path | None = None) -> Catalogue:
    """Every audit output under ``paths``: folders (recursively), files, ``gs://`` prefixes.

    Raises ``FileNotFoundError`` for a local path that does not exist. A
    bucket's objects are copied to ``cache`` (a temporary folder removed at
    exit by default) and read there, so every reader serves both.
    """
    roots = [os.fspath(p) for p in paths]
    files: list[LogFile] = []
    named: set[Path] = set()
    for item in roots:
        if item.startswith("gs://"):
            files.extend(_remote(item, cache))
            continue
        path = Path(item)
        if path.is_dir():
            for child in _walk(path):
                kind = kind_of(child)
                if kind is not None and child.is_file():
                    files.append(LogFile(child, kind, _session_of(child, kind)))
        elif path.is_file():
            kind = kind_of_named(path)
            named.add(path)
            files.append(LogFile(path, kind, _session_of(path, kind)))
        else:
            raise FileNotFoundError(2, "No such file or directory", item)
    return Catalogue(roots, files, named)


def _remote(url: str, cache: Path | None) -> list[LogFile]:
    """The files mirrored under ``url``, put back together in ``cache`` (:mod:`audit_logging.pull`).

    A bucket of the older layout (one object per file) is copied as it is.
    """
    from audit_logging.pull import PiecesError, parse_gcs_url, pull

    if cache is None:
        cache = Path(os.environ.get("AUDIT_LOG_CACHE") or _temp_dir())
    bucket, prefix = parse_gcs_url(url)
    target = cache / bucket / prefix
    report = pull(url, target)
    if report.problems:
        raise PiecesError(report.problems)
    base = url.rstrip("/")
    found = []
    for local in _walk(target):
        kind = kind_of(local)
        if kind is not None and local.is_file():
            rel = local.relative_to(target).as_posix()
            found.append(LogFile(local, kind, _session_of(local, kind), f"{base}/{rel}"))
    return found


def _temp_dir() -> str:
    path = tempfile.mkdtemp(prefix="audit-logging-gcs-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
