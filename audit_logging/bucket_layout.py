"""The bucket layout of the GCS mirror: object names and piece metadata, for writer and reader.

The mirror never replaces an object: every sync writes new objects only,
*pieces*. A piece holds ``length`` bytes of one local file (``source``, its
path relative to the mirrored folder) from byte ``offset``; the bytes it was
written with hash to ``sha256``. Appended bytes of a journal or CSV, and new
entries of ``audit_log.json`` (sent as JSON Lines, see :func:`array_to_lines`),
are a new piece in the same *epoch*; a file rewritten in place (a digest, a
warning file) or replaced (a new inode, a truncation) starts a new epoch at
offset 0.
A reader puts a file back together from the pieces of its newest epoch, in
offset order, and can name a missing (a gap), duplicated (the same offset
twice) or altered (length or sha256 differ) piece.

Names are partitions that DuckDB and BigQuery read as they are::

    {prefix}/{kind}/dt=YYYY-MM-DD/{host}-r{rank}-{session}-{n}{ext}

``kind`` is ``journal``, ``actions`` (the entries of ``audit_log.json``, one
a line), ``warnings`` (one warning file a line), ``seals`` (digests, seals, the manifest), ``csv``
(``audit_log.csv``) or ``files`` (anything else; see :func:`kind_of`); ``dt``
is the UTC date the piece was written; ``rank`` is the global rank, ``-``
when not distributed (``host-r--session-7``); ``n`` counts the pieces of one
mirrored folder (six digits at least, so that names sort in the order
written); ``ext`` is the source's extension, ``.jsonl`` for journals,
actions and warnings. Nothing here touches the network.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from audit_logging import context
from audit_logging.formats import MANIFEST_NAME

KINDS: Final = ("journal", "actions", "warnings", "seals", "csv", "files")
#: Metadata keys every piece carries (values are strings, as GCS metadata is).
SOURCE_KEY: Final = "audit-logging-source"
OFFSET_KEY: Final = "audit-logging-offset"
LENGTH_KEY: Final = "audit-logging-length"
SHA256_KEY: Final = "audit-logging-sha256"
EPOCH_KEY: Final = "audit-logging-epoch"
#: ``array-lines``: the piece holds entries of an ``audit_log.json`` array, one a line,
#: oldest first (JSON Lines); absent: the file's own bytes.
FORMAT_KEY: Final = "audit-logging-format"
ARRAY_LINES: Final = "array-lines"
#: ``warning-line``: the piece holds one warning file as one JSON line.
WARNING_LINE: Final = "warning-line"
#: Names the mirrored folder (``{host}-r{rank}-{session}`` of its first mirror run).
ORIGIN_KEY: Final = "audit-logging-origin"
#: Marked the temporary tail objects of the older (compose) mirror: never a file's bytes.
OLD_TMP_MARK: Final = ".gcs-sync-tmp."
#: Rank written in names when the process is not part of a distributed job.
NO_RANK: Final = "-"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def kind_of(source: str, format: str = "") -> str:
    """The partition a local file's pieces go to, from its relative path and the pieces' format.

    ``actions/`` and ``warnings/`` hold JSON Lines only (what query engines read
    there): a file that cannot go up as lines goes to ``files/``.
    """
    parts = source.split("/")
    name = parts[-1]
    if name == MANIFEST_NAME or name.endswith((".digest.json", ".seal", ".seal.json")):
        return "seals"  # the evidence of what was written: digests, seals, the manifest
    if "seals" in parts[:-1] or any(p.endswith(".seals") for p in parts[:-1]):
        return "seals"
    if format == WARNING_LINE:
        return "warnings"
    if format == ARRAY_LINES:
        return "actions"
    if name.startswith("audit_log") and name.endswith(".csv"):
        return "csv"
    if name.endswith(".jsonl"):
        return "journal"
    return "files"


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text) or "_"


def origin(ctx: context.RunContext | None = None) -> str:
    """``{host}-r{rank}-{session}`` of ``ctx`` (default: this process now)."""
    ctx = ctx or context.current()
    rank = NO_RANK if ctx.rank is None else str(ctx.rank)
    return f"{_safe(ctx.host)}-r{rank}-{_safe(ctx.session_id)}"


def extension(source: str, format: str = "") -> str:
    if format in (ARRAY_LINES, WARNING_LINE):
        return ".jsonl"
    name = source.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    return name[dot:] if dot > 0 else ""


def piece_name(
    prefix: str, source: str, n: int, when: _dt.datetime | None = None, format: str = ""
) -> str:
    """The object name of piece ``n`` of ``source``, written by this process at ``when``."""
    day = (when or _dt.datetime.now(_dt.timezone.utc)).strftime("%Y-%m-%d")
    name = f"{kind_of(source, format)}/dt={day}/{origin()}-{n:06d}{extension(source, format)}"
    return f"{prefix}/{name}" if prefix else name


@dataclass(frozen=True)
class Piece:
    """What a piece's metadata says: ``length`` bytes of ``source`` from ``offset``."""

    source: str
    origin: str
    epoch: int
    offset: int
    length: int
    sha256: str
    format: str = ""

    def metadata(self) -> dict[str, str]:
        extra = {FORMAT_KEY: self.format} if self.format else {}
        return {
            **extra,
            SOURCE_KEY: self.source,
            ORIGIN_KEY: self.origin,
            EPOCH_KEY: str(self.epoch),
            OFFSET_KEY: str(self.offset),
            LENGTH_KEY: str(self.length),
            SHA256_KEY: self.sha256,
        }

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str] | None) -> Piece | None:
        """The piece an object's metadata describes; None for an object of the old layout."""
        if not meta or SOURCE_KEY not in meta:
            return None
        try:
            return cls(
                source=meta[SOURCE_KEY],
                origin=meta.get(ORIGIN_KEY, ""),
                epoch=int(meta[EPOCH_KEY]),
                offset=int(meta[OFFSET_KEY]),
                length=int(meta[LENGTH_KEY]),
                sha256=meta[SHA256_KEY],
                format=meta.get(FORMAT_KEY, ""),
            )
        except (KeyError, ValueError):
            return None


def is_partition(name: str) -> bool:
    """Whether ``name`` (relative to the prefix) lies in one of the layout's partitions."""
    kind, _, rest = name.partition("/")
    return kind in KINDS and rest.startswith("dt=")


_WS = b" \t\r\n"


def array_to_lines(data: bytes) -> bytes | None:
    """The entries of an ``audit_log.json`` in the writer's layout as JSON Lines, oldest first.

    Each line holds an entry's bytes exactly as in the array (its hash covers
    them). None when ``data`` is not one compact entry a line (then the file
    is mirrored whole).
    """
    try:
        entries = json.loads(data) if data.strip(_WS) else []
    except ValueError:
        return None
    if not isinstance(entries, list):
        return None
    items = []
    for line in data.split(b"\n"):
        item = line.strip(_WS).lstrip(b"[").strip(_WS).removesuffix(b"]").strip(_WS)
        item = item.removesuffix(b",")
        if item.startswith(b"{") and item.endswith(b"}"):
            items.append(item)
    if len(items) != len(entries):
        return None
    return b"".join(item + b"\n" for item in reversed(items))


def lines_to_array(lines: bytes) -> bytes:
    """An ``audit_log.json`` (newest first, one entry a line) from :func:`array_to_lines`."""
    items = [line for line in lines.split(b"\n") if line.strip(_WS)]
    if not items:
        return b"[]\n"
    return b"[" + b",\n".join(reversed(items)) + b"\n]\n"


def warning_to_line(data: bytes) -> bytes | None:
    """A warning file (``json.dumps(body, indent=2, ensure_ascii=False)``) as one JSON line.

    None unless :func:`line_to_warning` gives ``data`` back byte for byte.
    """
    try:
        body = json.loads(data)
    except ValueError:
        return None
    line = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
    return line if line_to_warning(line) == data else None


def line_to_warning(line: bytes) -> bytes:
    """The warning file a line of :func:`warning_to_line` came from."""
    return (json.dumps(json.loads(line), indent=2, ensure_ascii=False) + "\n").encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
