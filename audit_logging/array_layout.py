"""The page layout of ``audit_log.json``: where a batch of entries goes, as pure functions.

No I/O here: :class:`~audit_logging.writers.json_array.JsonArrayHandler`
reads and writes the file, these functions decide the bytes and offsets. The
layout and why it is crash-safe are in the writer's module docstring; the
rules that make it so live here:

* :func:`pack` places entries (newest first) in the reserve so that each
  write lies inside one 4 KiB page: Linux cuts a ``write()`` short on
  ``SIGKILL`` only between pages, so each write is done or not done;
* :func:`displaced` and :func:`split_merge` merge a batch older than the
  entries at the front (another process wrote meanwhile) within one page;
* :func:`layout_ok` tells our layout from another valid array;
* the lock file's state lines (:func:`state_bytes`, :func:`parse_chain_state`)
  record the first entry's offset and the chain's last ``seq`` and ``hash``.

On-disk layout, and why
=======================

The naive way (read the array, prepend, rewrite) costs O(file) per entry, and
writing in place leaves an unreadable file when the writer dies mid-write. JSON
allows any amount of whitespace between tokens, so the file is::

    [<reserve: spaces>{newest},
    {older},
    {oldest}
    ]

one compact entry per line. A new entry is written with one ``pwrite`` into the
reserve, immediately in front of the current first entry: a few syscalls per
batch, whatever the size of the file. When the reserve is too small, the file
is rewritten once (temp file, ``fsync``, ``os.replace``) with a new reserve as
large as the entries, so the reserve doubles and the copying cost is O(1) per
entry amortised (the price: the file is up to about twice the size of its
entries). Entries of over 4 KiB are also written by a rewrite (see below).

Crash safety: every state of the file is valid JSON
---------------------------------------------------

* Each in-place ``pwrite`` covers only whitespace of the reserve plus, at most,
  entries it rewrites, and never crosses a 4 KiB page boundary (an entry that
  would is moved down to end at the boundary; the gap stays whitespace).
  Linux can cut a ``write()`` short on ``SIGKILL`` only between pages, so a
  writer killed at any instant leaves each write done or not done.
* Between two writes the file is valid: a batch is written oldest entry first,
  each write adding whole entries in front of the array.
* A batch whose entries are older than entries already at the front (another
  process wrote in between) is merged: the overlapping front entries and the
  batch's older entries are rewritten by one ``pwrite`` inside one page, so no
  entry is ever duplicated or lost, even transiently; if they do not fit in
  one page the file is rewritten instead.
* Rewrites go through a temp file, ``fsync`` and ``os.replace``; readers that
  opened the old file keep reading the old, complete file.
* An entry larger than 4 KiB cannot be written in one page, so it is written
  by a rewrite: O(file) for that entry. UI action entries are a few hundred
  bytes; keep large payloads (thousands of sample ids) for the JSONL journal.

Readers: every state of the file between two writes is a whole array, but a
read that races a write within the same page can see that page half copied
(Linux does not make buffered reads atomic against writes). The library's
readers (:func:`read_entries`, the ``audit-logging`` command, ``verify``, the
GCS mirror) therefore take the writers' lock shared while they read
(:func:`reading_lock`); another reader (``jq``, ``json.load``) that gets a
parse error while a writer is busy should read again.

Not guaranteed: a power loss or kernel crash may lose the last entries (no
``fsync`` per entry) and, on filesystems that reorder sector writes, may leave
a page half written. The next writer then finds the file damaged and sets it
aside (below) instead of writing into it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

__all__ = [
    "CHAIN_STATE_SIZE",
    "CHAIN_TAIL",
    "PAGE",
    "STATE_SIZE",
    "WS",
    "Entry",
    "Front",
    "displaced",
    "entry_ts",
    "layout_ok",
    "merge",
    "newest_first",
    "pack",
    "parse_chain_state",
    "parse_front_state",
    "split_merge",
    "state_bytes",
]

#: The page size the layout keeps every write inside of.
PAGE: Final = 4096
#: JSON whitespace.
WS: Final = b" \t\r\n"
#: Size of the lock file's first state line (``inode front``), as earlier versions wrote it.
STATE_SIZE: Final = 64
#: Size of the second state line (``inode front seq hash``), right after the first.
CHAIN_STATE_SIZE: Final = 128
#: The chain members closing an entry line (anchored at its end: a nested
#: ``details`` object can hold the same text, never at the end of the line).
CHAIN_TAIL: Final = re.compile(rb',"seq":(\d+),"hash":"([0-9a-f]{64})"\},?[ \t\r]*$', re.MULTILINE)
TS_PREFIX: Final = b'{"timestamp":"'


class Entry(NamedTuple):
    ts: str
    body: bytes  # one compact JSON object, no separator


def entry_ts(body: bytes) -> str:
    """The timestamp of an entry line, read from its prefix ("" if it has none: sorts oldest)."""
    if body.startswith(TS_PREFIX):
        end = body.find(b'"', len(TS_PREFIX))
        if end > 0:
            return body[len(TS_PREFIX) : end].decode("ascii", "replace")
    return ""


def merge(ordered: Sequence[Entry], older: Sequence[Entry] = ()) -> list[Entry]:
    """``ordered`` (newest first) merged with entries already written, newest first.

    ``sort(reverse=True)`` is stable: on equal timestamps the new entries come
    before the ones already written.
    """
    merged = [*ordered, *older]
    merged.sort(key=lambda e: e.ts, reverse=True)
    return merged


def newest_first(batch: Sequence[Entry]) -> list[Entry]:
    # Reversed first, so that records of equal timestamp are newest (last logged) first.
    return merge(batch[::-1])


@dataclass
class Front:
    """The entries at the front of the array that a batch displaces (newer than its oldest)."""

    entries: list[Entry]
    end: int  # offset just after the last displaced line
    comma: bool  # whether the last displaced entry is followed by another entry


def layout_ok(data: bytes) -> bool:
    """Whether a parsed-valid array is in our layout: ``[``, whitespace, one entry per line."""
    if not data.startswith(b"["):
        return False
    body = data[1:].lstrip(WS)
    if body.startswith(b"]"):
        return not body[1:].strip(WS)
    lines = body.rstrip(WS).split(b"\n")
    if lines[-1].strip(WS) != b"]":
        return False
    items = [line.strip(WS) for line in lines[:-1]]
    if not items or any(not item for item in items):
        return False
    if not all(item.startswith(b"{") and item.endswith(b"},") for item in items[:-1]):
        return False
    return items[-1].startswith(b"{") and items[-1].endswith(b"}")


def pack(entries: Sequence[Entry], end: int, last_comma: bool) -> list[tuple[int, bytes]] | None:
    """Place ``entries`` (newest first) so that the oldest ends at ``end``; writes, lowest first.

    Each write lies inside one page (no entry crosses a page boundary, and
    entries of two pages are never one write, even when one ends exactly on
    the boundary), so each write is done or not done after a kill. ``None``
    when an entry is over a page or the reserve is too small.
    """
    writes: list[tuple[int, bytes]] = []
    group: list[bytes] = []
    group_page = -1
    group_start = end
    comma = last_comma
    for entry in reversed(entries):
        chunk = entry.body + (b",\n" if comma else b"\n")
        comma = True
        size = len(chunk)
        if size > PAGE:
            return None
        start = end - size
        if start // PAGE != (end - 1) // PAGE:
            end = (end - 1) // PAGE * PAGE  # the spaces left behind stay whitespace
            start = end - size
        if start < 1:
            return None
        page = start // PAGE
        if group and page != group_page:
            # Another page: another write. One write over two pages can be cut
            # between them by a kill, keeping newer entries and losing older ones.
            writes.append((group_start, b"".join(reversed(group))))
            group = []
        group.append(chunk)
        group_page = page
        group_start = end = start
    if group:
        writes.append((group_start, b"".join(reversed(group))))
    writes.reverse()
    return writes


def displaced(window: bytes, front: int, oldest: str, complete: bool) -> Front | None:
    """The entries at the front newer than ``oldest``; ``None`` if they may run past ``window``."""
    entries: list[Entry] = []
    end, comma, pos = front, True, 0
    while True:
        newline = window.find(b"\n", pos)
        item = window[pos : newline if newline >= 0 else len(window)].strip(WS)
        if not item:
            if newline < 0 and not complete:
                return None
            break
        if item.startswith(b"]"):
            break
        ts = entry_ts(item)
        if ts <= oldest:
            break
        if newline < 0:
            return None
        comma = item.endswith(b",")
        entries.append(Entry(ts, item[:-1] if comma else item))
        end = front + newline + 1
        pos = newline + 1
        if not comma:
            break
    return Front(entries, end, comma)


def split_merge(batch: list[Entry], old: list[Entry]) -> tuple[list[Entry], list[Entry]]:
    """Merge ``batch`` (newest first) with displaced ``old`` entries; split before the first old."""
    tagged = [(e, False) for e in batch] + [(e, True) for e in old]
    tagged.sort(key=lambda pair: pair[0].ts, reverse=True)
    first_old = next(i for i, (_, is_old) in enumerate(tagged) if is_old)
    return [e for e, _ in tagged[:first_old]], [e for e, _ in tagged[first_old:]]


def parse_chain_state(line: bytes, ino: int, front: int) -> tuple[int, bytes] | None:
    """``(seq, hash)`` from the lock file's chain line, if it is about this file and front."""
    state = line.split()
    if (
        len(state) == 4
        and state[0] == b"%d" % ino
        and state[1] == b"%d" % front
        and state[2].isdigit()
        and len(state[3]) == 64
    ):
        return int(state[2]), state[3]
    return None


def parse_front_state(raw: bytes) -> tuple[int, int] | None:
    """``(inode, front)`` from the lock file's first state line, if well formed."""
    state = raw[:STATE_SIZE].split()
    if len(state) == 2 and state[0].isdigit() and state[1].isdigit():
        return int(state[0]), int(state[1])
    return None


def state_bytes(ino: int, front: int, tail: tuple[int, bytes] | None) -> bytes:
    """Both state lines: the first keeps the format of earlier versions (64 bytes)."""
    state = b"%d %d\n" % (ino, front)
    chain = b"%d %d %d %s\n" % (ino, front, tail[0], tail[1]) if tail else b"\n"
    chain = chain.ljust(CHAIN_STATE_SIZE - 1) + b"\n"
    return state.ljust(STATE_SIZE - 1) + b"\n" + chain
