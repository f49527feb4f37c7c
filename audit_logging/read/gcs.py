"""Reading audit logs back from a ``gs://`` bucket: list, open, stream.

Moved here from the GCS mirror writer: readers never import a writer. Needs
the ``gcs`` extra (``pip install "audit-logging[gcs]"``), imported lazily.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, cast

from audit_logging._optional import require
from audit_logging.bucket_layout import OLD_TMP_MARK

__all__ = [
    "GcsObject",
    "iter_gcs_lines",
    "list_gcs_objects",
    "open_gcs_object",
    "parse_gcs_url",
]


def _require_gcs() -> None:
    require(
        "google.cloud.storage",
        extra="gcs",
        package="google-cloud-storage",
        feature="Reading logs from gs://",
    )


@dataclass(frozen=True)
class GcsObject:
    """One object of a listing: ``url`` is ``gs://bucket/name``."""

    bucket: str
    name: str
    size: int
    generation: int

    @property
    def url(self) -> str:
        return f"gs://{self.bucket}/{self.name}"


def parse_gcs_url(url: str) -> tuple[str, str]:
    """``gs://bucket/some/prefix`` -> ``("bucket", "some/prefix")``."""
    if not url.startswith("gs://"):
        raise ValueError(f"not a gs:// URL: {url!r}")
    bucket, _, name = url[5:].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {url!r}")
    return bucket, name


def _default_client(client: Any) -> Any:
    _require_gcs()
    if client is not None:
        return client
    from google.cloud import storage

    return storage.Client()


def list_gcs_objects(
    url: str, *, client: Any = None, suffixes: Iterable[str] | None = None, timeout: float = 60.0
) -> list[GcsObject]:
    """The objects under ``url`` (an object name or a prefix), sorted by name.

    A prefix matches whole path components (``gs://b/run`` lists ``run/...``,
    not ``run2/...``), unless it is the exact name of an object. Temporary
    objects of an append in progress are skipped. ``suffixes`` keeps names
    ending with one of them (e.g. ``(".jsonl",)``).
    """
    bucket, prefix = parse_gcs_url(url)
    client = _default_client(client)
    ends = tuple(suffixes) if suffixes is not None else None
    found = []
    for blob in client.list_blobs(bucket, prefix=prefix or None, timeout=timeout):
        name = blob.name
        if OLD_TMP_MARK in name or name.endswith("/"):
            continue
        whole_components = prefix and name != prefix and not prefix.endswith("/")
        if whole_components and not name.startswith(prefix + "/"):
            continue
        if ends is not None and not name.endswith(ends):
            continue
        found.append(GcsObject(bucket, name, int(blob.size or 0), int(blob.generation or 0)))
    return sorted(found, key=lambda o: o.name)


def open_gcs_object(obj: GcsObject | str, *, client: Any = None) -> IO[bytes]:
    """A binary stream of one object (read in chunks, pinned to its listed generation)."""
    client = _default_client(client)
    if isinstance(obj, str):
        bucket, name = parse_gcs_url(obj)
        blob = client.bucket(bucket).blob(name)
    else:
        blob = client.bucket(obj.bucket).blob(obj.name, generation=obj.generation or None)
    stream: IO[bytes] = blob.open("rb", chunk_size=1024 * 1024)
    return stream


def iter_gcs_lines(
    url: str,
    *,
    client: Any = None,
    suffixes: Iterable[str] | None = None,
    encoding: str = "utf-8",
) -> Iterator[str]:
    """Lines (with their ``\\n``) of every object under ``url``, in name order, streamed.

    Memory stays bounded by the longest line plus one chunk (1 MiB) whatever the
    object sizes. For per-file positions, combine :func:`list_gcs_objects` and
    :func:`open_gcs_object`.
    """
    client = _default_client(client)
    for obj in list_gcs_objects(url, client=client, suffixes=suffixes):
        with contextlib.closing(open_gcs_object(obj, client=client)) as raw:
            yield from io.TextIOWrapper(cast(Any, raw), encoding, newline="\n")
