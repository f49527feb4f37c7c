"""The RFC 6962 tree, proofs and verifiers against transparency-dev/merkle's published vectors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audit_logging.seals.merkle import (
    EMPTY_ROOT,
    MerkleError,
    TreeState,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaves,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads((Path(__file__).parent / "data" / "rfc6962_vectors.json").read_text())
LEAVES = [leaf_hash(bytes.fromhex(x)) for x in VECTORS["leaf_inputs"]]
ROOTS = [bytes.fromhex(x) for x in VECTORS["root_hashes"]]
NODES = [[bytes.fromhex(x) for x in level] for level in VECTORS["node_hashes"]]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def node(ref: list) -> bytes:  # [level, index], or a pair hashed as Go's Rehash does
    if isinstance(ref[0], list):
        return node_hash(node(ref[1]), node(ref[0]))
    return NODES[ref[0]][ref[1]]


def test_roots_of_trees_of_0_to_8_leaves() -> None:
    assert ROOTS[0] == EMPTY_ROOT
    for size in range(9):
        assert root_from_leaves(LEAVES[:size]) == ROOTS[size], size


def test_every_complete_subtree_and_the_tree_state_frontier() -> None:
    for level, hashes in enumerate(NODES):
        for index, want in enumerate(hashes):
            lo = index << level
            assert root_from_leaves(LEAVES[lo : lo + (1 << level)]) == want
    state = TreeState()
    for size in range(9):
        assert state.frontier == [node(ref) for ref in VECTORS["compact_trees"][size]]
        assert state.root() == ROOTS[size]
        if size < 8:
            state.append_line(bytes.fromhex(VECTORS["leaf_inputs"][size]))


@pytest.mark.parametrize(
    "case", VECTORS["inclusion_proofs"], ids=lambda c: f"{c['index']}of{c['size']}"
)
def test_published_inclusion_proofs(case: dict) -> None:
    index, size = case["index"], case["size"]
    want = [bytes.fromhex(x) for x in case["proof"]]
    assert inclusion_proof(index, size, LEAVES[:size]) == want
    verify_inclusion(index, size, LEAVES[index], want, ROOTS[size])


@pytest.mark.parametrize(
    "case", VECTORS["consistency_proofs"], ids=lambda c: f"{c['size1']}to{c['size2']}"
)
def test_published_consistency_proofs(case: dict) -> None:
    m, n = case["size1"], case["size2"]
    want = [bytes.fromhex(x) for x in case["proof"]]
    assert consistency_proof(m, n, LEAVES[:n]) == want
    verify_consistency(m, n, ROOTS[m], ROOTS[n], want)


def test_published_proof_shapes() -> None:
    for case in VECTORS["inclusion_nodes"]:
        want = [node(ref) for ref in case["nodes"]]
        assert inclusion_proof(case["index"], case["size"], LEAVES) == want, case
    for case in VECTORS["consistency_nodes"]:
        want = [node(ref) for ref in case["nodes"]]
        assert consistency_proof(case["size1"], case["size2"], LEAVES) == want, case


def corrupted_inclusion(index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes):
    """The probes of transparency-dev/merkle's corruptInclusionProof: each must fail."""
    yield index - 1, size, root, leaf, proof
    yield index + 1, size, root, leaf, proof
    yield index ^ 2, size, root, leaf, proof
    yield index, size * 2, root, leaf, proof
    yield index, size // 2, root, leaf, proof
    yield index, size, root, b"WrongLeaf", proof
    yield index, size, EMPTY_ROOT, leaf, proof
    yield index, size, SOME_HASH, leaf, proof
    yield index, size, root, leaf, [*proof, b""]
    yield index, size, root, leaf, [*proof, root]
    yield index, size, root, leaf, [b"", *proof]
    yield index, size, root, leaf, [root, *proof]
    for i in range(len(proof)):
        wrong = list(proof)
        wrong[i] = bytes([wrong[i][0] ^ 8]) + wrong[i][1:]
        yield index, size, root, leaf, wrong
    if proof:
        yield index, size, root, leaf, proof[:-1]  # a missing node
    if len(proof) > 1:
        yield index, size, root, leaf, [proof[0], SOME_HASH, *proof[1:]]  # a spare node


def test_inclusion_proof_of_every_leaf_of_every_tree_up_to_8() -> None:
    for size in range(1, 9):
        for index in range(size):
            proof = inclusion_proof(index, size, LEAVES[:size])
            verify_inclusion(index, size, LEAVES[index], proof, ROOTS[size])
            for probe in corrupted_inclusion(index, size, proof, ROOTS[size], LEAVES[index]):
                with pytest.raises(MerkleError):
                    verify_inclusion(probe[0], probe[1], probe[3], probe[4], probe[2])


def corrupted_consistency(m: int, n: int, r1: bytes, r2: bytes, proof: list[bytes]):
    """The probes of transparency-dev/merkle's corruptConsistencyProof: each must fail."""
    yield m - 1, n, r1, r2, proof
    yield m + 1, n, r1, r2, proof
    yield m ^ 2, n, r1, r2, proof
    yield m, n * 2, r1, r2, proof
    yield m, n // 2, r1, r2, proof
    yield m, n, b"WrongRoot", r2, proof
    yield m, n, r1, b"WrongRoot", proof
    yield m, n, r2, r1, proof
    yield m, n, r1, r2, []
    yield m, n, r1, r2, [*proof, b""]
    yield m, n, r1, r2, [*proof, r1]
    yield m, n, r1, r2, [*proof, r2]
    yield m, n, r1, r2, [b"", *proof]
    yield m, n, r1, r2, [r1, *proof]
    yield m, n, r1, r2, [r2, *proof]
    yield m, n, r1, r2, [proof[0], *proof]
    yield m, n, r1, r2, proof[:-1]
    for i in range(len(proof)):
        wrong = list(proof)
        wrong[i] = bytes([wrong[i][0] ^ 16]) + wrong[i][1:]
        yield m, n, r1, r2, wrong


def test_consistency_proof_between_every_pair_of_sizes_up_to_8() -> None:
    for n in range(1, 9):
        for m in range(1, n + 1):
            proof = consistency_proof(m, n, LEAVES[:n])
            verify_consistency(m, n, ROOTS[m], ROOTS[n], proof)
            if not proof:
                assert m == n
                continue
            for probe in corrupted_consistency(m, n, ROOTS[m], ROOTS[n], proof):
                with pytest.raises(MerkleError):
                    verify_consistency(probe[0], probe[1], probe[2], probe[3], probe[4])


def test_consistency_edge_cases_of_the_published_verifier_tests() -> None:
    r1, r2 = SOME_HASH, bytes(32)
    verify_consistency(0, 0, r1, r1, [])
    verify_consistency(0, 1, r1, r2, [])
    verify_consistency(1, 1, r2, r2, [])
    for m, n, a, b, proof in [
        (0, 0, r1, r2, []),
        (1, 1, r1, r2, []),
        (1, 0, r1, r2, []),
        (2, 1, r1, r2, []),
        (1, 2, r1, r2, []),
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
        (0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
        (1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
    ]:
        with pytest.raises(MerkleError):
            verify_consistency(m, n, a, b, proof)


def test_inclusion_edge_cases_of_the_published_verifier_tests() -> None:
    h = leaf_hash(b"data")
    verify_inclusion(0, 1, h, [], h)
    for leaf, root in [(h, b""), (b"", h), (b"", b"")]:
        with pytest.raises(MerkleError):
            verify_inclusion(0, 1, leaf, [], root)
    for index, size in [(0, 0), (0, 1), (1, 0), (2, 1)]:
        for leaf, root in [(SOME_HASH, b""), (b"", EMPTY_ROOT), (SOME_HASH, EMPTY_ROOT)]:
            with pytest.raises(MerkleError):
                verify_inclusion(index, size, leaf, [], root)


def test_proofs_over_a_larger_tree_match_a_tree_built_by_appending() -> None:
    lines = [f'{{"seq":{i}}}'.encode() for i in range(300)]
    leaves = [leaf_hash(line) for line in lines]
    state = TreeState(keep_tiles=True)
    state.extend_lines(lines[:123])
    root123 = state.root()
    state.extend_lines(lines[123:])
    root300 = state.root()
    assert root_from_leaves(leaves) == root300
    assert state.tiles == [(0, root_from_leaves(leaves[:256]))]
    one_by_one = TreeState()
    for line in lines:
        one_by_one.append_line(line)
    assert one_by_one.root() == root300 and one_by_one.frontier == state.frontier
    for index in (0, 1, 122, 255, 256, 299):
        verify_inclusion(index, 300, leaves[index], inclusion_proof(index, 300, leaves), root300)
    verify_consistency(123, 300, root123, root300, consistency_proof(123, 300, leaves))
    with pytest.raises(MerkleError):
        inclusion_proof(300, 300, leaves)


def test_without_cryptography_the_tree_works_and_signing_names_the_extra(monkeypatch) -> None:
    import sys

    from audit_logging.seals._ed25519 import MissingSignExtra
    from audit_logging.seals.note import Signer

    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.asymmetric.ed25519", None)
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.asymmetric", None)
    assert root_from_leaves(LEAVES) == ROOTS[8]
    with pytest.raises(MissingSignExtra, match=r'pip install "audit-logging\[sign\]"') as err:
        Signer.from_seed("audit-logging", bytes(32))
    assert isinstance(err.value, ImportError)
