"""The Merkle tree of a journal, kept beside it as the writer appends.

``<journal>.seals/tree.tiles`` holds one 40-byte record per complete run of
256 lines (a "tile", as in C2SP tlog-tiles, here of height 8): the byte
offset just past the tile's last line (8 bytes, big-endian) and the hash of
its subtree (32 bytes). Record ``i`` sits at byte ``40 * i`` and is written
with ``pwrite``, so two processes that both complete a tile write the same
bytes at the same place.

The writer keeps a :class:`~audit_logging.seals.merkle.TreeState` (the right
edge of the tree) and adds a record each time 256 lines complete; a restarted
writer rebuilds the state from the records and the lines after the last one.
A proof of one line of a 10 M-line journal then reads the tile records
(1.6 MB) and at most two runs of 256 lines, never the journal itself.

The tile file is an index, not evidence: a verifier recomputes the tree from
the lines, and a proof is checked against a signed checkpoint, so an edited
tile file makes proofs fail, never pass.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from itertools import accumulate
from pathlib import Path

from audit_logging.seals.merkle import (
    CHUNK_LEVEL,
    EMPTY_ROOT,
    MerkleError,
    TreeState,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    list_range_hash,
    node_hash,
)

__all__ = ["TILE_LEAVES", "JournalTree", "TreeReader", "seals_dir", "tiles_path"]

TILE_HEIGHT = CHUNK_LEVEL  # the tree state folds leaves in runs of this height
TILE_LEAVES = 1 << TILE_HEIGHT
_RECORD = struct.Struct(">Q32s")
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def seals_dir(journal: str | os.PathLike[str]) -> Path:
    """The folder of a journal's seals and tree: ``<journal>.seals``."""
    return Path(os.fspath(journal) + ".seals")


def tiles_path(journal: str | os.PathLike[str]) -> Path:
    return seals_dir(journal) / "tree.tiles"


def _read_tiles(path: Path) -> tuple[list[int], list[bytes]]:
    """Tile end offsets and hashes, up to the first record that is not one."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], []
    ends: list[int] = []
    hashes: list[bytes] = []
    last = 0
    for end, h in _RECORD.iter_unpack(data[: len(data) - len(data) % _RECORD.size]):
        if end <= last:  # a hole left by a crash, or garbage: the index stops here
            break
        ends.append(end)
        hashes.append(h)
        last = end
    return ends, hashes


def _lines(fd: int, start: int, stop: int, limit: int | None = None) -> Iterator[bytes]:
    """Whole lines (without newline) of ``fd`` in ``[start, stop)``; a cut last line is left out."""
    pos, rest, count = start, b"", 0
    while pos < stop:
        data = os.pread(fd, min(1 << 20, stop - pos), pos)
        if not data:
            break
        pos += len(data)
        parts = (rest + data).split(b"\n")
        rest = parts.pop()
        for line in parts:
            yield line
            count += 1
            if limit is not None and count >= limit:
                return


def _tile_holds(fd: int, ends: list[int], hashes: list[bytes]) -> bool:
    """Whether the last tile record is the hash of its 256 lines (a cheap check at start-up)."""
    start = ends[-2] if len(ends) > 1 else 0
    lines = list(_lines(fd, start, ends[-1]))
    return (
        len(lines) == TILE_LEAVES
        and list_range_hash([leaf_hash(x) for x in lines])(0, TILE_LEAVES) == hashes[-1]
    )


class JournalTree:
    """The tree of one journal: its state as the writer appends, and proofs from its tiles."""

    def __init__(self, journal: str | os.PathLike[str]) -> None:
        self.journal = Path(journal)
        self.tiles_file = tiles_path(journal)
        self.state = TreeState(keep_tiles=True)
        #: Bytes of the journal the state covers (always at a line end).
        self.offset = 0
        self._tile_ends: list[int] = []
        self._pending: list[tuple[int, bytes]] = []  # tiles not yet written

    @classmethod
    def open(cls, journal: str | os.PathLike[str], size: int | None = None) -> JournalTree:
        """The tree of the journal's first ``size`` bytes (all of it by default), from its tiles.

        Lines after the last tile record are read from the journal; missing
        records (a writer that crashed, or a journal sealed for the first
        time) are written back.
        """
        tree = cls(journal)
        ends, hashes = _read_tiles(tree.tiles_file)
        fd = os.open(tree.journal, os.O_RDONLY | _O_CLOEXEC)
        try:
            stop = os.fstat(fd).st_size if size is None else size
            kept = len(ends)
            while ends and ends[-1] > stop:  # a tiles file ahead of the journal is not trusted
                ends.pop()
                hashes.pop()
            if ends and not _tile_holds(fd, ends, hashes):
                ends, hashes = [], []  # the last record was torn by a crash: rebuild the index
            if len(ends) < kept and size is None:
                os.truncate(tree.tiles_file, len(ends) * _RECORD.size)
            for h in hashes:
                tree.state.append_subtree(h, TILE_HEIGHT)
            tree._tile_ends = ends
            tree.offset = ends[-1] if ends else 0
            tree.catch_up(fd, stop)
        finally:
            os.close(fd)
        tree.flush()
        return tree

    @property
    def size(self) -> int:
        return self.state.size

    def root(self) -> bytes:
        return self.state.root()

    def append(self, lines: list[bytes], end_offset: int) -> None:
        """Add lines the writer appended; ``end_offset`` is the file's size after them.

        ``lines`` are without their newlines, in file order, and end at ``end_offset``.
        """
        sums = list(accumulate(map(len, lines)))  # C loops: this is the writer's hot path
        start = end_offset - (sums[-1] + len(lines) if lines else 0)
        if start != self.offset:
            raise MerkleError(
                f"lines at byte {start} do not follow the tree's end at {self.offset}"
            )
        state = self.state
        first = state.size
        state.extend_lines(lines)
        for index, h in state.tiles:
            last = (index + 1) * TILE_LEAVES - 1 - first  # the tile's last line, in this batch
            self._tile_ends.append(start + sums[last] + last + 1)
            self._pending.append((index, h))
        state.tiles.clear()
        self.offset = end_offset

    def catch_up(self, fd: int, stop: int) -> None:
        """Add the lines of ``fd`` from the tree's end to ``stop`` (other processes' batches)."""
        if stop <= self.offset:
            return
        batch: list[bytes] = []
        pos = self.offset
        for line in _lines(fd, self.offset, stop):
            batch.append(line)
            pos += len(line) + 1
            if len(batch) >= 65536:
                self.append(batch, pos)
                batch = []
        if batch:
            self.append(batch, pos)

    def flush(self) -> None:
        """Write the tile records completed since the last flush (idempotent, any order)."""
        pending = self._pending
        if not pending:
            return
        self.tiles_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.tiles_file, os.O_WRONLY | os.O_CREAT | _O_CLOEXEC, 0o644)
        try:
            for index, h in pending:
                os.pwrite(fd, _RECORD.pack(self._tile_ends[index], h), index * _RECORD.size)
        finally:
            os.close(fd)
        self._pending = []


class TreeReader:
    """Proofs from a journal's tiles and at most a few runs of its lines."""

    def __init__(self, journal: str | os.PathLike[str], trust_tiles: bool = True) -> None:
        """``trust_tiles=False`` recomputes every tile from the lines (a verifier's choice)."""
        self.journal = Path(journal)
        self.tile_ends, self.tile_hashes = (
            _read_tiles(tiles_path(journal)) if trust_tiles else ([], [])
        )
        self._fd = os.open(self.journal, os.O_RDONLY | _O_CLOEXEC)
        self._leaves: dict[int, list[bytes]] = {}
        self._lines: dict[int, list[bytes]] = {}
        size = os.fstat(self._fd).st_size
        while self.tile_ends and self.tile_ends[-1] > size:
            self.tile_ends.pop()
            self.tile_hashes.pop()
        # Tiles the writer has not recorded (it crashed, or never kept them):
        # computed here in memory from the lines after the last record.
        pos = self.tile_ends[-1] if self.tile_ends else 0
        run: list[bytes] = []
        for line in _lines(self._fd, pos, size):
            pos += len(line) + 1
            run.append(leaf_hash(line))
            if len(run) == TILE_LEAVES:
                self.tile_ends.append(pos)
                self.tile_hashes.append(list_range_hash(run)(0, TILE_LEAVES))
                run = []
        #: Lines of the journal (whole ones) the reader can prove.
        self.size = len(self.tile_ends) * TILE_LEAVES + len(run)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> TreeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def tile_lines(self, tile: int) -> list[bytes]:
        """The lines of tile ``tile`` (fewer than 256 for the last, partial one)."""
        if tile not in self._lines:
            if tile > len(self.tile_ends):
                raise MerkleError(f"tile {tile} is past the tiles kept ({len(self.tile_ends)})")
            start = self.tile_ends[tile - 1] if tile else 0
            stop = (
                self.tile_ends[tile] if tile < len(self.tile_ends) else os.fstat(self._fd).st_size
            )
            self._lines[tile] = list(_lines(self._fd, start, stop, TILE_LEAVES))
        return self._lines[tile]

    def line(self, index: int) -> bytes:
        lines = self.tile_lines(index >> TILE_HEIGHT)
        try:
            return lines[index & (TILE_LEAVES - 1)]
        except IndexError:
            raise MerkleError(f"the journal has no line {index + 1}") from None

    def _tile_leaves(self, tile: int) -> list[bytes]:
        if tile not in self._leaves:
            self._leaves[tile] = [leaf_hash(line) for line in self.tile_lines(tile)]
        return self._leaves[tile]

    def range_hash(self) -> Callable[[int, int], bytes]:
        """MTH of any range of the journal's leaves, from tiles where whole ones cover it."""
        complete = len(self.tile_hashes)
        tile_hashes = self.tile_hashes

        def mth(start: int, end: int) -> bytes:
            first, last = start >> TILE_HEIGHT, (end - 1) >> TILE_HEIGHT
            if first == last:
                lo, hi = start - (first << TILE_HEIGHT), end - (first << TILE_HEIGHT)
                if lo == 0 and hi == TILE_LEAVES and first < complete:
                    return tile_hashes[first]
                leaves = self._tile_leaves(first)
                if hi > len(leaves):
                    raise MerkleError(f"the journal has fewer than {end} lines")
                return list_range_hash(leaves[lo:hi])(0, hi - lo)
            k = 1 << ((end - start - 1).bit_length() - 1)
            return node_hash(mth(start, start + k), mth(start + k, end))

        return mth

    def inclusion(self, index: int, size: int) -> list[bytes]:
        return inclusion_proof(index, size, self.range_hash())

    def consistency(self, size1: int, size2: int) -> list[bytes]:
        return consistency_proof(size1, size2, self.range_hash())

    def root(self, size: int) -> bytes:
        return self.range_hash()(0, size) if size else EMPTY_ROOT
