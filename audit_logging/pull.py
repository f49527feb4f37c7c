"""Put a mirrored log folder back together from a ``gs://`` prefix: ``audit-logging pull``.

:func:`pull` lists ``gs://bucket/prefix``, groups the pieces the GCS mirror
wrote (:mod:`audit_logging.bucket_layout`) by mirrored folder and file, and
rebuilds each file from the pieces of its newest epoch, in offset order:
journals, ``audit_log.json``, ``audit_log.csv``, warning files and digests
come back byte for byte (the entries of an ``audit_log.json`` written by
``JsonArrayHandler`` go up as JSON Lines and come back as an array of the
same entry bytes, without the writer's reserve of spaces), so the pulled
folder verifies like the original.
A gap (a missing piece), an offset seen twice (a duplicated piece) or a piece
whose length or sha256 differ from its metadata (an altered piece) is named
in the :class:`PullReport`; the file is still written with what was found.
Objects without piece metadata (a bucket written by the older mirror, one
object per file) are copied as they are, to their path under the prefix,
unless pieces of the same file exist (they were written later).

When the prefix holds several mirrored folders (several hosts, ranks or
sessions), each goes to ``DIR/{origin}/``; a single one goes to ``DIR``.
Readers of a ``gs://`` prefix call :func:`pull` into a temporary folder.
Requires the ``gcs`` extra.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit_logging._optional import require
from audit_logging.bucket_layout import (
    ARRAY_LINES,
    OLD_TMP_MARK,
    WARNING_LINE,
    Piece,
    is_partition,
    line_to_warning,
    lines_to_array,
)

__all__ = ["PiecesError", "PullReport", "add_commands", "parse_gcs_url", "pull"]


class PiecesError(ValueError):
    """A prefix whose pieces do not put a file back together: each problem is named."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class PullReport:
    """What :func:`pull` wrote and what it found wrong.

    ``files`` maps each written file (relative to the target folder) to its
    size; ``problems`` names each missing, duplicated or altered piece.
    """

    directory: Path
    files: dict[str, int] = field(default_factory=dict)
    pieces: int = 0
    old_layout_objects: int = 0
    #: Objects in the layout's partitions without piece metadata: not ours, left out.
    foreign: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def parse_gcs_url(url: str) -> tuple[str, str]:
    """``gs://bucket/some/prefix`` -> ``("bucket", "some/prefix")``."""
    if not url.startswith("gs://"):
        raise ValueError(f"not a gs:// URL: {url!r}")
    bucket, _, name = url[5:].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {url!r}")
    return bucket, name.strip("/")


def _client(client: Any) -> Any:
    if client is not None:
        return client
    require(
        "google.cloud.storage",
        extra="gcs",
        package="google-cloud-storage",
        feature="Reading logs from Google Cloud Storage",
    )
    from google.cloud import storage

    return storage.Client()


def _safe_target(root: Path, rel: str) -> Path:
    """``root/rel``, refusing a path that would leave ``root`` (``..``, absolute)."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"unsafe file name in the bucket: {rel!r}")
    return root.joinpath(*parts)


def pull(url: str, directory: str | os.PathLike[str], *, client: Any = None) -> PullReport:
    """Rebuild under ``directory`` the files mirrored under ``url`` (see the module docstring)."""
    bucket_name, prefix = parse_gcs_url(url)
    client = _client(client)
    root = Path(directory)
    report = PullReport(root)
    pieces: dict[tuple[str, str], list[tuple[Piece, Any]]] = defaultdict(list)
    old: list[Any] = []
    for blob in client.list_blobs(bucket_name, prefix=f"{prefix}/" if prefix else None):
        if blob.name.endswith("/") or OLD_TMP_MARK in blob.name:
            continue
        piece = Piece.from_metadata(blob.metadata)
        if piece is None:
            rel = blob.name[len(prefix) + 1 :] if prefix else blob.name
            if is_partition(rel):
                report.foreign.append(f"gs://{bucket_name}/{blob.name}")
            else:
                old.append(blob)
        else:
            pieces[(piece.origin, piece.source)].append((piece, blob))
    origins = {origin for origin, _ in pieces}
    for (origin, source), found in sorted(pieces.items(), key=lambda kv: kv[0]):
        rel = f"{origin}/{source}" if len(origins) > 1 else source
        _rebuild(client, bucket_name, _safe_target(root, rel), rel, found, report)
    for blob in old:
        rel = blob.name[len(prefix) + 1 :] if prefix else blob.name
        if rel in report.files:
            continue  # sent again as pieces after an upgrade: the pieces are newer
        target = _safe_target(root, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as fh:
            blob.download_to_file(fh)
        report.files[rel] = target.stat().st_size
        report.old_layout_objects += 1
    return report


def _rebuild(
    client: Any,
    bucket_name: str,
    target: Path,
    rel: str,
    found: list[tuple[Piece, Any]],
    report: PullReport,
) -> None:
    """Write ``target`` from the pieces of the newest epoch of one file."""
    epoch = max(piece.epoch for piece, _ in found)
    chosen = sorted(
        ((p, b) for p, b in found if p.epoch == epoch), key=lambda pb: (pb[0].offset, pb[1].name)
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    bucket = client.bucket(bucket_name)
    end = 0
    previous = ""
    with target.open("wb") as fh:
        for piece, blob in chosen:
            url = f"gs://{bucket_name}/{blob.name}"
            if piece.offset < end:
                report.problems.append(
                    f"{rel}: duplicated piece {url} (bytes from {piece.offset} "
                    f"already come from gs://{bucket_name}/{previous})"
                )
                continue
            if piece.offset > end:
                report.problems.append(
                    f"{rel}: missing piece: bytes {end}..{piece.offset} (epoch {epoch}) "
                    f"between {'gs://' + bucket_name + '/' + previous if previous else 'the start'}"
                    f" and {url}"
                )
            # Pinned to the listed generation: the bytes checked are the bytes written.
            data = bucket.blob(blob.name, generation=blob.generation).download_as_bytes()
            if len(data) != piece.length or hashlib.sha256(data).hexdigest() != piece.sha256:
                report.problems.append(
                    f"{rel}: altered piece {url} ({len(data)} bytes, metadata says "
                    f"{piece.length} bytes with sha256 {piece.sha256[:12]}...)"
                )
            fh.seek(piece.offset)
            fh.write(data[: piece.length])
            report.pieces += 1
            end = piece.offset + piece.length
            previous = blob.name
    if chosen[0][0].format == ARRAY_LINES:
        # The entries of an audit_log.json went up one a line: the array again.
        target.write_bytes(lines_to_array(target.read_bytes()))
    elif chosen[0][0].format == WARNING_LINE:
        target.write_bytes(line_to_warning(target.read_bytes()))
    report.files[rel] = target.stat().st_size


# --------------------------------------------------------------------------- command


def _cmd_pull(args: argparse.Namespace) -> int:
    try:
        report = pull(args.url, args.directory)
    except ImportError as exc:
        print(f"audit-logging: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(
            f"audit-logging: cannot pull {args.url}: {type(exc).__name__}: {exc}", file=sys.stderr
        )
        return 2
    print(
        f"{len(report.files)} files rebuilt in {report.directory} from {report.pieces} pieces"
        + (f" and {report.old_layout_objects} whole objects" if report.old_layout_objects else "")
    )
    for problem in report.problems:
        print(f"audit-logging: {problem}", file=sys.stderr)
    return 0 if report.ok else 1


def add_commands(subparsers: Any) -> None:
    """Add ``pull`` to the ``audit-logging`` command's subparsers."""
    p = subparsers.add_parser("pull", help="rebuild a mirrored log folder from a gs:// prefix")
    p.add_argument("url", metavar="gs://BUCKET/PREFIX")
    p.add_argument("directory", metavar="DIR")
    p.set_defaults(func=_cmd_pull)
