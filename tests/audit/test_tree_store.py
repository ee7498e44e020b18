"""The Merkle tree in storage, on SQLite and PostgreSQL: appended with the events, read back as proofs.

Held against ``genesis.audit.merkle.MemoryTree`` (itself held against RFC 9162's recursive definitions in
``test_merkle.py``) over the same rows.
"""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest

from genesis.audit.canonical import canonical_json
from genesis.audit.merkle import (
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from genesis.audit.store import AuditStore
from genesis.storage.audit_sql import open_audit_store
from tests.audit.chainlib import make_event
from tests.audit.conftest import raw_sql


def reference(store: AuditStore) -> MemoryTree:
    tree = MemoryTree()
    for row in store.iter_rows():
        tree.append(leaf_hash(canonical_json(row)))
    return tree


def test_every_past_root_and_proof_matches_the_reference_tree(store: AuditStore) -> None:
    rng = random.Random(5)
    n = 0
    while n < 300:
        k = rng.choice((1, 1, 2, 3, 7, 16, 33))
        store.append([make_event(n + i) for i in range(k)])
        n += k
    tree = reference(store)
    assert store.tree_root() == (n, tree.root())
    for size in [*range(1, 40), *rng.sample(range(40, n + 1), 25)]:
        root = store.tree_root(size)[1]
        assert root == tree.root(size)
        for index in rng.sample(range(size), min(size, 6)):
            proof = inclusion_proof(store, index, size)
            assert proof == tree.inclusion_proof(index, size)
            verify_inclusion(tree.nodes.read_nodes([(0, index)])[0], index, size, proof, root)
        for old in rng.sample(range(1, size + 1), min(size, 4)):
            proof = consistency_proof(store, old, size)
            verify_consistency(old, size, tree.root(old), root, proof)


def test_a_batch_is_one_tree_row_per_run_of_256_leaves(store: AuditStore, store_url: str) -> None:
    store.append([make_event(i) for i in range(100)])
    store.append([make_event(100)])
    store.append([make_event(i) for i in range(101, 700)])
    rows = raw_sql(store_url, "SELECT first_leaf, tree_size, length(nodes) FROM audit_tree ORDER BY first_leaf")
    assert [(r[0], r[1]) for r in rows] == [(0, 100), (100, 101), (101, 256), (256, 512), (512, 700)]
    assert rows[0][2] == 32 * (2 * 100 - bin(100).count("1"))  # every perfect node of 100 leaves, once
    assert sum(int(r[2]) for r in rows) == 32 * (2 * 700 - bin(700).count("1"))


def test_writers_of_several_processes_extend_one_tree(store_url: str) -> None:
    stores = [open_audit_store(store_url) for _ in range(3)]
    try:
        def work(k: int) -> None:
            for i in range(15):
                stores[k].append([make_event(1000 * k + i), make_event(1000 * k + i + 500)])

        threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        tree = reference(stores[0])
        assert tree.size == 90
        for s in stores:  # each store's cached frontier was right, or reloaded when another had appended
            assert s.tree_root() == (90, tree.root())
    finally:
        for s in stores:
            s.close()


class TreeLessStore:
    """A writer of a release without the tree: appends events only (what a rolling upgrade runs beside us)."""

    def __init__(self, url: str) -> None:
        self.inner = open_audit_store(url)

    def append(self, events: list[Any]) -> None:
        from genesis.audit.chain import seal

        store: Any = self.inner
        with store._guard(), store._write() as cur:
            head = store._head_in(cur)
            store._insert_rows(cur, seal(events, head.seq, head.hash, store._hasher))

    def close(self) -> None:
        self.inner.close()


def test_events_appended_without_the_tree_are_caught_up_by_the_next_append(store: AuditStore,
                                                                           store_url: str) -> None:
    store.append([make_event(i) for i in range(5)])
    legacy = TreeLessStore(store_url)
    try:
        legacy.append([make_event(i) for i in range(5, 12)])
    finally:
        legacy.close()
    store.append([make_event(12)])
    tree = reference(store)
    assert tree.size == 13 and store.tree_root() == (13, tree.root())


def test_missing_nodes_and_sizes_beyond_the_tree_are_lookup_errors(store: AuditStore) -> None:
    store.append([make_event(i) for i in range(5)])
    with pytest.raises(LookupError):
        store.read_nodes([(0, 5)])
    with pytest.raises(LookupError):
        store.read_nodes([(3, 0)])  # 8 leaves would be needed
    with pytest.raises(LookupError):
        store.tree_root(6)
    assert store.read_nodes([]) == []
    assert store.read_nodes([(2, 0), (0, 4), (2, 0)]) == [*store.read_nodes([(2, 0), (0, 4)]), store.read_nodes(
        [(2, 0)])[0]]
