"""The tree kept beside a journal (tiles), rebuilt after a restart, and proofs read from it."""

from __future__ import annotations

import os
from pathlib import Path

from audit_logging.seals.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_leaves,
    verify_consistency,
    verify_inclusion,
)
from audit_logging.seals.tiles import TILE_LEAVES, JournalTree, TreeReader, tiles_path


def write_lines(path: Path, lines: list[bytes]) -> int:
    with open(path, "ab") as f:
        f.write(b"".join(line + b"\n" for line in lines))
    return path.stat().st_size


def make_lines(start: int, count: int) -> list[bytes]:
    return [
        b'{"seq":%d,"event":"step","pad":"%s"}' % (i, b"x" * (i % 7))
        for i in range(start, start + count)
    ]


def test_a_writer_s_tree_matches_the_lines_and_survives_a_restart(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    journal.touch()
    tree = JournalTree(journal)
    lines: list[bytes] = []
    for batch in (3, 250, 1, 300, 17, 200):
        new = make_lines(len(lines), batch)
        lines += new
        tree.append(new, write_lines(journal, new))
        tree.flush()
        assert tree.root() == root_from_leaves([leaf_hash(x) for x in lines])
    assert tiles_path(journal).stat().st_size == (len(lines) // TILE_LEAVES) * 40
    again = JournalTree.open(journal)  # a restarted writer: tiles plus the lines after them
    assert (again.size, again.root(), again.offset) == (
        len(lines),
        tree.root(),
        journal.stat().st_size,
    )
    new = make_lines(len(lines), 600)
    again.append(new, write_lines(journal, new))
    again.flush()
    lines += new
    assert again.root() == root_from_leaves([leaf_hash(x) for x in lines])


def test_two_writers_of_one_file_keep_one_tree(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    journal.touch()
    a, b = JournalTree(journal), JournalTree(journal)
    lines: list[bytes] = []
    for i in range(12):
        tree = a if i % 2 else b
        new = make_lines(len(lines), 97)
        start = journal.stat().st_size
        fd = os.open(journal, os.O_RDONLY)
        try:
            tree.catch_up(fd, start)  # the other process's batches first, as under the lock
        finally:
            os.close(fd)
        lines += new
        tree.append(new, write_lines(journal, new))
        tree.flush()
    b_fd = os.open(journal, os.O_RDONLY)
    b.catch_up(b_fd, journal.stat().st_size)
    os.close(b_fd)
    want = root_from_leaves([leaf_hash(x) for x in lines])
    assert a.root() == b.root() == want
    assert JournalTree.open(journal).root() == want


def test_proofs_from_tiles_equal_proofs_from_all_leaves(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    lines = make_lines(0, 1500)
    write_lines(journal, lines[:1000])
    JournalTree.open(journal)  # writes tiles for the first 1000 lines
    write_lines(journal, lines[1000:])  # lines no tile record covers yet
    leaves = [leaf_hash(x) for x in lines]
    with TreeReader(journal) as reader:
        assert reader.size == 1500
        for size in (1, 255, 256, 257, 999, 1000, 1500):
            root = root_from_leaves(leaves[:size])
            assert reader.root(size) == root
            for index in {0, size // 2, size - 1, min(size - 1, 256)}:
                proof = reader.inclusion(index, size)
                assert proof == inclusion_proof(index, size, leaves[:size])
                assert reader.line(index) == lines[index]
                verify_inclusion(index, size, leaves[index], proof, root)
        proof = reader.consistency(300, 1500)
        assert proof == consistency_proof(300, 1500, leaves)
        verify_consistency(
            300, 1500, root_from_leaves(leaves[:300]), root_from_leaves(leaves), proof
        )


def test_a_tiles_file_ahead_of_its_journal_is_not_trusted(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    lines = make_lines(0, 600)
    write_lines(journal, lines)
    JournalTree.open(journal)
    with open(journal, "r+b") as f:  # the journal cut back to 300 lines
        f.truncate(sum(len(x) + 1 for x in lines[:300]))
    tree = JournalTree.open(journal)
    assert tree.size == 300 and tree.root() == root_from_leaves([leaf_hash(x) for x in lines[:300]])


def test_a_torn_last_tile_record_is_rebuilt_from_the_lines(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    lines = make_lines(0, 700)
    write_lines(journal, lines)
    JournalTree.open(journal)
    tiles = tiles_path(journal)
    data = bytearray(tiles.read_bytes())
    data[-5] ^= 0xFF  # a crash tore the hash of the last record
    tiles.write_bytes(bytes(data))
    tree = JournalTree.open(journal)
    assert tree.root() == root_from_leaves([leaf_hash(x) for x in lines])
    assert tiles.read_bytes() != bytes(data)  # and the index was written again
