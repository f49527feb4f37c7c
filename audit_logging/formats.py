"""Which file is which kind of audit output, and its name: the one rule every reader uses.

Kinds (what :func:`kind_of` returns):

``journal``   ``{prefix}-YYYY-MM-DD[-{session}].jsonl``, the ML event journal
``rejects``   ``rejected-YYYY-MM-DD.jsonl`` (UTC day): records a writer refused, each
              line the whole record plus ``reason`` and ``writer``
``manifest``  ``.audit-manifest.jsonl``, one per output folder (see :mod:`audit_logging.manifest`)
``digest``    ``{journal}.digest.json`` beside its journal
``seal``      ``{journal}.seal-{epoch}.note`` or any file under ``{journal}.seals/``
``array``     ``audit_log*.json``, the action audit as a JSON array
``csv``       ``*.csv`` whose header starts ``timestamp,action_type``: the action audit
``warning``   ``{YYYY-MM-DD_HH-MM-SS}_{type}_{fp8}[...].json``, one persistent warning each

Anything else is ``None``: hidden files (the writers' lock and state files),
files set aside as damaged (``*.corrupt-*``), and other JSON or CSV files
(a data set, a model's config) that merely share a suffix. A file a user names
explicitly is read by its suffix (:func:`kind_of_named`), so that an array or a
CSV with another name can still be read.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

__all__ = [
    "ACTION_KINDS",
    "DIGEST_SUFFIX",
    "KINDS",
    "MANIFEST_NAME",
    "REJECTS_PREFIX",
    "digest_name",
    "journal_key",
    "kind_of",
    "kind_of_named",
    "rejects_name",
]

#: Every kind :func:`kind_of` can return.
KINDS: Final = ("journal", "array", "csv", "warning", "digest", "manifest", "rejects", "seal")
#: The kinds holding action entries.
ACTION_KINDS: Final = ("array", "csv")
MANIFEST_NAME: Final = ".audit-manifest.jsonl"
DIGEST_SUFFIX: Final = ".digest.json"
REJECTS_PREFIX: Final = "rejected-"

_JOURNAL: Final = re.compile(
    r"^(?P<prefix>.+?)-(?P<day>\d{4}-\d{2}-\d{2})(?:-(?P<session>.+))?\.jsonl$"
)
_REJECTS: Final = re.compile(r"^rejected-\d{4}-\d{2}-\d{2}\.jsonl$")
_WARNING: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}_[a-z0-9_]+_[0-9a-f]{8}.*\.json$"
)
_SEAL_NOTE: Final = re.compile(r"\.jsonl\.seal-\d+\.note$")
_CSV_HEADER: Final = b"timestamp,action_type"


def journal_key(name: str) -> tuple[str, str | None, str] | None:
    """``(prefix, session or None, day)`` of a journal's file name, or ``None``."""
    if _REJECTS.match(name):
        return None
    m = _JOURNAL.match(name)
    if m is None:
        return None
    return m["prefix"], m["session"], m["day"]


def digest_name(journal_name: str) -> str:
    """The digest file's name of a journal (beside it)."""
    return journal_name + DIGEST_SUFFIX


def rejects_name(day: str) -> str:
    """The rejects file of a UTC day ``YYYY-MM-DD``."""
    return f"{REJECTS_PREFIX}{day}.jsonl"


def _csv_header_ok(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            head = fh.read(len(_CSV_HEADER) + 3)
    except OSError:
        return False
    return head.lstrip(b"\xef\xbb\xbf").startswith(_CSV_HEADER)


def kind_of(path: Path, *, peek: bool = True) -> str | None:
    """The kind of the file at ``path`` found in an output folder (see the module docstring).

    ``peek`` reads a CSV's first bytes to tell an action log from another
    table; without it every ``*.csv`` counts as one.
    """
    name = path.name
    if name == MANIFEST_NAME:
        return "manifest"
    if name.startswith(".") or ".corrupt-" in name:
        return None
    if any(part.endswith(".jsonl.seals") for part in path.parts[:-1]):
        return "seal"
    if _SEAL_NOTE.search(name):
        return "seal"
    if name.endswith(DIGEST_SUFFIX):
        return "digest"
    if name.endswith(".jsonl"):
        return "rejects" if _REJECTS.match(name) else "journal"
    if _WARNING.match(name):
        return "warning"
    if name.endswith(".json"):
        return "array" if name.startswith("audit_log") else None
    if name.endswith(".csv"):
        return "csv" if not peek or _csv_header_ok(path) else None
    return None


def kind_of_named(path: Path) -> str:
    """The kind of a file the user named explicitly: by its name, else by its suffix."""
    kind = kind_of(path, peek=False)
    if kind is not None:
        return kind
    suffix = path.suffix.lower()
    return {".json": "array", ".csv": "csv"}.get(suffix, "journal")
