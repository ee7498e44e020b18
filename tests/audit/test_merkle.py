"""The Merkle tree: every vector of the reference, proofs from stored nodes, and what must be refused."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genesis.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    MemoryNodes,
    MemoryTree,
    ProofError,
    consistency_proof,
    consistency_proof_length,
    inclusion_proof,
    inclusion_proof_length,
    leaf_hash,
    node_hash,
    perfect_cover,
    root_at,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from tests.audit.treelib import LEAF_INPUTS, mth, named_nodes, path, proof, ref_leaf, vector_leaves

DETERMINISTIC = settings(derandomize=True, database=None, deadline=None, max_examples=60)

ROOTS = {
    0: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
NODE_PREFIXES = {
    "a": "6e340b9c", "b": "96a296d2", "c": "0298d122", "d": "07506a85", "e": "bc1a0643", "f": "4271a26b",
    "j": "b08693ec", "p": "46f6ffad", "g": "fac54203", "h": "5f083f0a", "i": "0ebc5d34", "k": "d37ee418",
    "l": "837dbb15", "n": "ca854ea1", "o": "6b47aaf2",
}  # fmt: skip
INCLUSION = {(0, 7): "bhl", (3, 7): "cgl", (4, 7): "fjk", (6, 7): "ik", (0, 8): "bho", (6, 8): "pik"}
CONSISTENCY = {(3, 7): "cdgl", (4, 7): "l", (6, 7): "ijk", (1, 8): "bho", (6, 8): "ink", (7, 8): "jpik"}


def tree_of(leaves: list[bytes]) -> MemoryTree:
    tree = MemoryTree()
    for leaf in leaves:
        tree.append(leaf)
    return tree


def numbered_leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


VECTOR_TREE = tree_of(vector_leaves())
NAMES = named_nodes()


# --- the reference's vectors ----------------------------------------------------------------------


@pytest.mark.parametrize("size", sorted(ROOTS))
def test_roots_of_the_transparency_dev_leaves(size: int) -> None:
    assert root_at(VECTOR_TREE.nodes, size).hex() == ROOTS[size]
    frontier = Frontier()
    for data in LEAF_INPUTS[:size]:
        frontier.append(leaf_hash(data))
    assert frontier.root().hex() == ROOTS[size]


def test_the_named_nodes_have_the_published_prefixes() -> None:
    assert {name: h.hex()[:8] for name, h in NAMES.items()} == NODE_PREFIXES
    assert [leaf_hash(d) for d in LEAF_INPUTS] == [NAMES[x] for x in "abcdefjp"]
    assert node_hash(NAMES["g"], NAMES["h"]) == NAMES["k"] == root_at(VECTOR_TREE.nodes, 4)


@pytest.mark.parametrize(("index", "size"), sorted(INCLUSION))
def test_inclusion_vectors(index: int, size: int) -> None:
    expected = [NAMES[x] for x in INCLUSION[(index, size)]]
    assert VECTOR_TREE.inclusion_proof(index, size) == expected
    verify_inclusion(leaf_hash(LEAF_INPUTS[index]), index, size, expected, bytes.fromhex(ROOTS[size]))


@pytest.mark.parametrize(("old", "new"), sorted(CONSISTENCY))
def test_consistency_vectors(old: int, new: int) -> None:
    expected = [NAMES[x] for x in CONSISTENCY[(old, new)]]
    assert VECTOR_TREE.consistency_proof(old, new) == expected
    verify_consistency(old, new, VECTOR_TREE.root(old), VECTOR_TREE.root(new), expected)


def test_the_empty_proof_from_1_to_8_is_refused() -> None:
    """transparency-dev consistency/1: the happy path's proof with its nodes removed must fail."""
    with pytest.raises(ProofError, match="need exactly 3"):
        verify_consistency(1, 8, VECTOR_TREE.root(1), VECTOR_TREE.root(8), [])


# --- against the RFC's recursive definitions --------------------------------------------------------


def test_every_proof_of_trees_up_to_40_leaves_equals_the_rfc_definition() -> None:
    leaves = numbered_leaves(40)
    tree = tree_of(leaves)
    for size in range(41):
        root = mth(leaves[:size])
        assert tree.root(size) == root
        for index in range(size):
            built = tree.inclusion_proof(index, size)
            assert built == path(index, leaves[:size])
            assert len(built) == inclusion_proof_length(index, size)
            verify_inclusion(leaves[index], index, size, built, root)
        for old in range(1, size):
            built = tree.consistency_proof(old, size)
            assert built == proof(old, leaves[:size])
            assert len(built) == consistency_proof_length(old, size)
            verify_consistency(old, size, mth(leaves[:old]), root, built)


@DETERMINISTIC
@given(st.integers(1, 3000), st.data())
def test_proofs_from_stored_nodes_verify_against_the_root_from_scratch(n: int, data: st.DataObject) -> None:
    leaves = numbered_leaves(n)
    tree = tree_of(leaves)
    size = data.draw(st.integers(1, n), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    old = data.draw(st.integers(0, size), label="old")
    root = mth(leaves[:size])
    assert tree.root(size) == root
    verify_inclusion(leaves[index], index, size, tree.inclusion_proof(index, size), root)
    verify_consistency(old, size, mth(leaves[:old]), root, tree.consistency_proof(old, size))


@DETERMINISTIC
@given(st.integers(1, 5000))
def test_a_proof_reads_o_log_n_nodes(n: int) -> None:
    class Counting(MemoryNodes):
        reads = 0

        def read_nodes(self, ids):  # type: ignore[no-untyped-def]
            Counting.reads += len(ids)
            return super().read_nodes(ids)

    nodes = Counting()
    frontier = Frontier()
    for leaf in numbered_leaves(n):
        nodes.store(frontier.append(leaf))
    bound = 2 * n.bit_length() + 2
    for index in {0, n // 2, n - 1}:
        Counting.reads = 0
        inclusion_proof(nodes, index, n)
        assert Counting.reads <= bound
    Counting.reads = 0
    consistency_proof(nodes, max(1, n // 3), n)
    assert Counting.reads <= bound


# --- the frontier and its nodes ---------------------------------------------------------------------


def test_append_reports_each_perfect_subtree_once_and_they_are_the_tree_nodes() -> None:
    leaves = numbered_leaves(37)
    frontier = Frontier()
    reported = []
    for leaf in leaves:
        reported += frontier.append(leaf)
    ids = [(level, index) for level, index, _ in reported]
    assert len(ids) == len(set(ids)) == sum(37 >> level for level in range(6))
    for level, index, h in reported:
        width = 1 << level
        assert h == mth(leaves[index * width : (index + 1) * width])


def test_a_resumed_frontier_continues_the_same_tree() -> None:
    leaves = numbered_leaves(100)
    whole = Frontier()
    whole.extend(leaves)
    for cut in (0, 1, 31, 32, 33, 64, 99):
        first = Frontier()
        first.extend(leaves[:cut])
        resumed = Frontier(first.size, first.hashes)
        resumed.extend(leaves[cut:])
        assert resumed.root() == whole.root() == mth(leaves)


def test_the_frontier_is_rebuilt_from_stored_nodes_for_any_size() -> None:
    tree = tree_of(numbered_leaves(70))
    for size in range(71):
        rebuilt = Frontier.from_reader(tree.nodes, size)
        assert rebuilt.size == size and rebuilt.root() == tree.root(size)
    assert Frontier().root() == EMPTY_ROOT == hashlib.sha256(b"").digest()


def test_a_frontier_with_the_wrong_number_of_hashes_is_refused() -> None:
    h = leaf_hash(b"x")
    with pytest.raises(ValueError, match="has 2 hashes"):
        Frontier(5, [h])
    with pytest.raises(ValueError, match="32 bytes"):
        Frontier(1, [b"short"])
    with pytest.raises(ValueError):
        Frontier(-1, [])
    with pytest.raises(ValueError, match="32 bytes"):
        Frontier().append(b"short")


def test_memory_nodes_refuse_gaps_and_conflicts_and_report_missing_nodes() -> None:
    nodes = MemoryNodes()
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    nodes.store([(0, 0, a)])
    nodes.store([(0, 0, a)])  # idempotent
    with pytest.raises(ValueError, match="another hash"):
        nodes.store([(0, 0, b)])
    with pytest.raises(ValueError, match="gap"):
        nodes.store([(0, 2, b)])
    with pytest.raises(LookupError):
        nodes.read_nodes([(0, 1)])
    tree = tree_of(numbered_leaves(5))
    with pytest.raises(LookupError):
        tree.inclusion_proof(0, 6)
    with pytest.raises(LookupError):
        tree.consistency_proof(3, 9)


def test_perfect_cover_splits_a_range_into_aligned_subtrees() -> None:
    assert perfect_cover(0, 7) == [(2, 0), (1, 2), (0, 6)]
    assert perfect_cover(4, 7) == [(1, 2), (0, 6)]
    assert perfect_cover(3, 8) == [(0, 3), (2, 1)]
    assert perfect_cover(5, 5) == []


# --- what must be refused ----------------------------------------------------------------------------


LEAVES_23 = numbered_leaves(23)
TREE_23 = tree_of(LEAVES_23)


def test_inclusion_refuses_index_at_or_beyond_size_and_bad_arguments() -> None:
    leaf, root = LEAVES_23[0], TREE_23.root(1)
    with pytest.raises(ProofError, match="not in a tree of size 0"):
        verify_inclusion(leaf, 0, 0, [], EMPTY_ROOT)
    with pytest.raises(ProofError, match="not in a tree of size 5"):
        verify_inclusion(leaf, 5, 5, TREE_23.inclusion_proof(4, 5), TREE_23.root(5))
    for bad in (-1, True, 1.0):
        with pytest.raises(ProofError, match="non-negative integer"):
            verify_inclusion(leaf, bad, 1, [], root)  # type: ignore[arg-type]
    with pytest.raises(ProofError, match="leaf hash must be 32 bytes"):
        verify_inclusion(leaf[:31], 0, 1, [], root)
    with pytest.raises(ProofError, match="root must be 32 bytes"):
        verify_inclusion(leaf, 0, 1, [], root + b"\x00")
    with pytest.raises(ProofError):
        inclusion_proof(TREE_23.nodes, 23, 23)


@pytest.mark.parametrize(("index", "size"), [(0, 23), (5, 23), (22, 23), (16, 17), (8, 16)])
def test_tampered_inclusion_proofs_fail(index: int, size: int) -> None:
    leaf, root = LEAVES_23[index], TREE_23.root(size)
    good = TREE_23.inclusion_proof(index, size)
    verify_inclusion(leaf, index, size, good, root)
    bad: list[list[bytes]] = [good[:-1], [*good, good[-1]], [EMPTY_ROOT, *good]]
    for i in range(len(good)):
        for bit in (0, 7, 255):
            flipped = bytearray(good[i])
            flipped[bit // 8] ^= 1 << (bit % 8)
            bad.append([*good[:i], bytes(flipped), *good[i + 1 :]])
        bad.append([*good[:i], good[i][:31], *good[i + 1 :]])
    for i, j in itertools.combinations(range(len(good)), 2):
        if good[i] != good[j]:
            swapped = list(good)
            swapped[i], swapped[j] = swapped[j], swapped[i]
            bad.append(swapped)
    for forged in bad:
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, size, forged, root)
    other = (index + 1) % size
    with pytest.raises(ProofError):  # another leaf at this index
        verify_inclusion(LEAVES_23[other], index, size, good, root)
    with pytest.raises(ProofError):  # this leaf claimed at another index
        verify_inclusion(leaf, other, size, good, root)
    with pytest.raises(ProofError):  # this proof against another tree
        verify_inclusion(leaf, index, size, good, TREE_23.root(size - 1) if size > index + 1 else EMPTY_ROOT)


def test_a_proof_of_another_tree_size_fails_unless_the_paths_coincide() -> None:
    for size in range(2, 24):
        for index in range(size - 1):
            good = TREE_23.inclusion_proof(index, size)
            smaller = size - 1
            if inclusion_proof_length(index, smaller) != len(good):
                with pytest.raises(ProofError, match="need exactly"):
                    verify_inclusion(LEAVES_23[index], index, smaller, good, TREE_23.root(smaller))


def test_the_size_3_proof_of_leaf_0_also_verifies_as_size_4_against_the_same_root() -> None:
    """Reference section 7 item 3: why a (size, root) pair must come from one signed checkpoint.

    The raw function cannot tell; ``verifier.check_inclusion`` takes both from a verified
    ``SignedCheckpoint`` (tests/audit/test_verifier.py shows a forged size fails its signature).
    """
    tree = tree_of(vector_leaves())
    p3 = tree.inclusion_proof(0, 3)
    verify_inclusion(NAMES["a"], 0, 3, p3, tree.root(3))
    verify_inclusion(NAMES["a"], 0, 4, p3, tree.root(3))  # the trap: no error
    with pytest.raises(ProofError):
        verify_inclusion(NAMES["a"], 0, 4, p3, tree.root(4))


def test_consistency_refuses_every_must_reject_case() -> None:
    r5, r9 = TREE_23.root(5), TREE_23.root(9)
    good = TREE_23.consistency_proof(5, 9)
    verify_consistency(5, 9, r5, r9, good)
    cases = [
        ((9, 5, r9, r5, good), "larger than"),
        ((5, 9, r5, r9, []), "need exactly"),
        ((5, 5, r5, r5, [r5]), "need exactly 0"),
        ((5, 5, r5, r9, []), "different roots"),
        ((0, 9, r5, r9, []), "empty tree"),
        ((0, 9, EMPTY_ROOT, r9, [r5]), "need exactly 0"),
        ((5, 9, r5, r9, good[:-1]), "need exactly"),
        ((5, 9, r5, r9, [*good, r5]), "need exactly"),
        ((5, 9, r5, r9, [good[0][:16], *good[1:]]), "not 32 bytes"),
        ((5, 9, r5[:31], r9, good), "old root must be 32 bytes"),
        ((-1, 9, r5, r9, good), "non-negative"),
        ((5, 9, r9, r9, good), "root of size 5"),
        ((5, 9, r5, r5, good), "root of size 9"),
    ]
    for args, message in cases:
        with pytest.raises(ProofError, match=message):
            verify_consistency(*args)  # type: ignore[arg-type]
    verify_consistency(0, 9, EMPTY_ROOT, r9, [])
    verify_consistency(9, 9, r9, r9, [])
    with pytest.raises(ProofError):
        consistency_proof(TREE_23.nodes, 9, 5)


@DETERMINISTIC
@given(st.integers(2, 23), st.data())
def test_tampered_consistency_proofs_fail(new: int, data: st.DataObject) -> None:
    old = data.draw(st.integers(1, new - 1), label="old")
    good = TREE_23.consistency_proof(old, new)
    r_old, r_new = TREE_23.root(old), TREE_23.root(new)
    verify_consistency(old, new, r_old, r_new, good)
    i = data.draw(st.integers(0, len(good) - 1), label="node")
    bit = data.draw(st.integers(0, 255), label="bit")
    flipped = bytearray(good[i])
    flipped[bit // 8] ^= 1 << (bit % 8)
    forged = [*good[:i], bytes(flipped), *good[i + 1 :]]
    with pytest.raises(ProofError):
        verify_consistency(old, new, r_old, r_new, forged)
    if len(good) > 1:
        j = data.draw(st.integers(0, len(good) - 1).filter(lambda x: x != i), label="other")
        swapped = list(good)
        swapped[i], swapped[j] = swapped[j], swapped[i]
        if swapped != good:
            with pytest.raises(ProofError):
                verify_consistency(old, new, r_old, r_new, swapped)
    others = [size for size in range(old + 1, 24) if size != new]
    if others:  # the proof for another pair of sizes
        other = TREE_23.consistency_proof(old, data.draw(st.sampled_from(others), label="other size"))
        if other != good:
            with pytest.raises(ProofError):
                verify_consistency(old, new, r_old, r_new, other)
    with pytest.raises(ProofError):  # a tree that does not extend the old one
        verify_consistency(old, new, r_old, tree_of(numbered_leaves(new)[::-1]).root(), good)


def test_root_from_inclusion_proof_is_the_root_for_the_right_leaf() -> None:
    for index in range(23):
        proof_ = TREE_23.inclusion_proof(index, 23)
        assert root_from_inclusion_proof(LEAVES_23[index], index, 23, proof_) == TREE_23.root()
    assert ref_leaf(b"") == leaf_hash(b"") == NAMES["a"]
