"""The RFC 6962 Merkle tree of a file's lines, its proofs and their verifiers.

A leaf is one line of a file, its bytes as written without the newline::

    leaf hash  = SHA-256(0x00 || line)
    node hash  = SHA-256(0x01 || left || right)
    empty tree = SHA-256("")

The tree hash MTH(D[0:n]) splits at the largest power of two below ``n``
(RFC 6962 section 2.1, RFC 9162 section 2.1.1). Leaves are lines rather than
the chain's ``hash`` members: a line edited while keeping its old ``hash``
must not pass a proof.

Proofs are built by the recursive definitions of RFC 9162 sections 2.1.3.1
(PATH) and 2.1.4.1 (SUBPROOF) over any function giving MTH of a range, so the
same code proves from a list of leaf hashes in memory or from the tiles a
writer keeps beside a journal (:mod:`audit_logging.seals.tiles`). The
verifiers are the iterative algorithms of RFC 9162 sections 2.1.3.2 and
2.1.4.2; they reject a proof with a node too many or too few, a hash of the
wrong length, and sizes or indexes out of range.

Why written here: no well-kept Python package does this exactly. ``pymerkle``
(the one maintained general library) uses its own proof format (a path with a
combination rule) that other RFC 9162 tools cannot read; ``sigstore`` carries
an inclusion verifier only, private to the package; ``merkletools``,
``merkly`` and ``merkle-py`` hash without the 0x00/0x01 domain separation.
The tests check this module against the published vectors of
transparency-dev/merkle.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleError",
    "TreeState",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_leaves",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_sha256 = hashlib.sha256
_digest = operator.methodcaller("digest")

#: MTH of the leaves ``[start, end)`` (``end > start``).
RangeHash = Callable[[int, int], bytes]


class MerkleError(ValueError):
    """A proof that does not prove what it claims, or a request that cannot be proved."""


def leaf_hash(line: bytes) -> bytes:
    """The RFC 6962 hash of one leaf (a line without its newline)."""
    return _sha256(b"\x00" + line).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 6962 hash of an interior node."""
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaves(hashes: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes (:data:`EMPTY_ROOT` for none)."""
    state = TreeState()
    for h in hashes:
        state.append_hash(h)
    return state.root()


def list_range_hash(hashes: Sequence[bytes]) -> RangeHash:
    """A :data:`RangeHash` over leaf hashes held in memory."""

    def mth(start: int, end: int) -> bytes:
        if end - start == 1:
            return hashes[start]
        k = _split(end - start)
        return node_hash(mth(start, start + k), mth(start + k, end))

    return mth


def inclusion_proof(index: int, size: int, mth: RangeHash | Sequence[bytes]) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 9162 section 2.1.3.1: the audit path of one leaf.

    ``mth`` gives MTH of a range of leaves, or is the list of leaf hashes itself.
    """
    if not callable(mth):
        mth = list_range_hash(mth)
    if not 0 <= index < size:
        raise MerkleError(f"leaf {index} is not in a tree of {size} leaves")
    proof: list[bytes] = []
    start, end = 0, size
    # Walk down from the root, collecting the sibling of each subtree holding the
    # leaf; PATH lists them from the leaf upwards, hence the reversal.
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            proof.append(mth(start + k, end))
            end = start + k
        else:
            proof.append(mth(start, start + k))
            start += k
    proof.reverse()
    return proof


def consistency_proof(size1: int, size2: int, mth: RangeHash | Sequence[bytes]) -> list[bytes]:
    """PROOF(size1, D[0:size2]) of RFC 9162 section 2.1.4.1 (empty for equal sizes or 0)."""
    if not callable(mth):
        mth = list_range_hash(mth)
    if not 0 <= size1 <= size2:
        raise MerkleError(f"no consistency proof from {size1} to {size2} leaves")
    if size1 in (0, size2):
        return []
    proof: list[bytes] = []
    start, end, complete = 0, size2, True
    m = size1
    while True:
        n = end - start
        if m == n:
            if not complete:
                proof.append(mth(start, end))
            break
        k = _split(n)
        if m <= k:
            proof.append(mth(start + k, end))
            end = start + k
        else:
            proof.append(mth(start, start + k))
            start += k
            m -= k
            complete = False
    proof.reverse()
    return proof


def _check_hashes(*hashes: bytes) -> None:
    for h in hashes:
        if len(h) != HASH_SIZE:
            raise MerkleError(f"a hash of {len(h)} bytes where SHA-256 has {HASH_SIZE}")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to (RFC 9162 section 2.1.3.2), or :class:`MerkleError`."""
    if not 0 <= index < size:
        raise MerkleError(f"leaf {index} is not in a tree of {size} leaves")
    _check_hashes(leaf, *proof)
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise MerkleError("the proof has more nodes than the tree has levels")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleError("the proof has fewer nodes than the tree has levels")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise :class:`MerkleError` unless ``proof`` shows leaf hash ``leaf`` at ``index``."""
    _check_hashes(root)
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise MerkleError("the inclusion proof leads to another root")


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """Raise :class:`MerkleError` unless ``proof`` shows tree ``size2`` extends tree ``size1``.

    RFC 9162 section 2.1.4.2, with its edge cases: equal sizes need equal roots
    and an empty proof; from an empty tree any proof but the empty one is refused.
    """
    _check_hashes(root1, root2, *proof)
    if size1 > size2:
        raise MerkleError(f"a tree of {size2} leaves cannot extend one of {size1}")
    if size1 == size2:
        if proof:
            raise MerkleError("equal sizes take an empty proof")
        if root1 != root2:
            raise MerkleError("equal sizes with different roots")
        return
    if size1 == 0:
        if proof:
            raise MerkleError("from an empty tree the proof is empty")
        return
    if not proof:
        raise MerkleError("an empty consistency proof between different sizes")
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise MerkleError("the proof has more nodes than the trees need")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleError("the proof has fewer nodes than the trees need")
    if fr != root1:
        raise MerkleError("the consistency proof does not lead to the first root")
    if sr != root2:
        raise MerkleError("the consistency proof does not lead to the second root")


#: Leaves are hashed and paired a run of ``2**CHUNK_LEVEL`` at a time (one list
#: comprehension per level), which costs a third of merging leaf by leaf in Python.
CHUNK_LEVEL = 8
_CHUNK = 1 << CHUNK_LEVEL


def _complete(hashes: list[bytes]) -> bytes:
    """MTH of a power-of-two run of hashes, one level at a time."""
    sha = _sha256
    while len(hashes) > 1:
        it = iter(hashes)
        hashes = [sha(b"\x01" + a + b).digest() for a, b in zip(it, it, strict=False)]
    return hashes[0]


def _decompose(hashes: list[bytes]) -> list[tuple[int, bytes]]:
    """``(level, hash)`` of the complete subtrees a run of leaves splits into, largest first."""
    out, pos = [], 0
    n = len(hashes)
    for level in range(n.bit_length() - 1, -1, -1):
        if n >> level & 1:
            out.append((level, _complete(hashes[pos : pos + (1 << level)])))
            pos += 1 << level
    return out


class TreeState:
    """The right edge of a growing tree: one hash per complete subtree, largest first.

    This is what a writer keeps as it appends: ``O(log n)`` hashes give the
    root of the tree at its current size. Leaves wait in a run of at most 255
    before they are folded in as one subtree of 256 (a "tile"); with
    ``keep_tiles`` every such tile is added to :attr:`tiles` as ``(index,
    hash)``, which is how :mod:`~audit_logging.seals.tiles` keeps the
    interior hashes a proof needs.
    """

    __slots__ = ("_hashes", "_levels", "_run", "keep_tiles", "size", "tiles")

    def __init__(self, keep_tiles: bool = False) -> None:
        self.size = 0
        self._hashes: list[bytes] = []  # complete subtrees of level >= CHUNK_LEVEL
        self._levels: list[int] = []
        self._run: list[bytes] = []  # leaf hashes after them (fewer than a chunk)
        self.keep_tiles = keep_tiles
        self.tiles: list[tuple[int, bytes]] = []

    @property
    def frontier(self) -> list[bytes]:
        """The hashes of the complete subtrees, largest first (RFC 9162's compact range)."""
        return self._hashes + [h for _, h in _decompose(self._run)]

    def append_line(self, line: bytes) -> None:
        """Append one line (without its newline) as a leaf."""
        self.extend_lines((line,))

    def extend_lines(self, lines: Iterable[bytes]) -> None:
        """Append lines (without their newlines) as leaves: the writer's hot path."""
        run = self._run
        before = len(run)
        # map() keeps the loop in C: a quarter cheaper than a comprehension.
        run.extend(map(_digest, map(_sha256, map(b"\x00".__add__, lines))))
        self.size += len(run) - before
        self._fold()

    def append_hash(self, h: bytes) -> None:
        """Append one leaf by its hash."""
        self._run.append(h)
        self.size += 1
        self._fold()

    def _fold(self) -> None:
        run = self._run
        if len(run) < _CHUNK:
            return
        done = len(run) - len(run) % _CHUNK
        for at in range(0, done, _CHUNK):
            self._push(_complete(run[at : at + _CHUNK]), CHUNK_LEVEL)
        del run[:done]

    def _push(self, h: bytes, level: int) -> None:
        hashes, levels = self._hashes, self._levels
        if self.keep_tiles and level == CHUNK_LEVEL:
            first = sum(1 << lv for lv in levels)  # leaves before this tile
            self.tiles.append((first >> CHUNK_LEVEL, h))
        while levels and levels[-1] == level:
            h = _sha256(b"\x01" + hashes.pop() + h).digest()
            levels.pop()
            level += 1
        hashes.append(h)
        levels.append(level)

    def append_subtree(self, h: bytes, level: int) -> None:
        """Append a complete subtree of ``2**level`` leaves by its hash (``level >= 8``).

        The tree's size must be a multiple of ``2**level`` (as when rebuilding
        the state from stored tiles).
        """
        if level < CHUNK_LEVEL or self._run or self.size & ((1 << level) - 1):
            raise MerkleError(f"a subtree of level {level} cannot start at leaf {self.size}")
        keep, self.keep_tiles = self.keep_tiles, False  # a stored tile is not a new one
        try:
            self._push(h, level)
        finally:
            self.keep_tiles = keep
        self.size += 1 << level

    def root(self) -> bytes:
        """MTH of all leaves appended so far."""
        nodes = self.frontier
        if not nodes:
            return EMPTY_ROOT
        r = nodes[-1]
        for h in reversed(nodes[:-1]):
            r = node_hash(h, r)
        return r

    def copy(self) -> TreeState:
        other = TreeState(self.keep_tiles)
        other.size, other._hashes, other._levels = self.size, self._hashes[:], self._levels[:]
        other._run = self._run[:]
        return other
