"""The Merkle tree's tables in SQL: rows of runs of leaves, node reads, and building the tree from events.

Layout (``genesis.storage.models.audit_tree``): a row holds a run of at most 256 leaves of one
batch (runs end at multiples of 256): its first leaf index, the tree size after it, ``first_node``
(how many perfect nodes all earlier appends reported, see ``merkle.emitted_before``), the perfect
nodes its appends reported (32 bytes each, in order) and the frontier after it. Perfect node
``(level, index)`` is completed by the append of leaf ``L = (index + 1) * 2**level - 1``, so it
lives in the row whose leaves include ``L``, at byte ``32 * (emission_index - first_node)``. A
proof's O(log n) nodes come from one indexed query.

Why rows of runs rather than one per node: a node row costs ~1.2 us to insert in SQLite, and an
append reports two nodes per event on average, which alone would spend the 2 us per event the
tree may add to ingestion; a run's row costs one insert per 256 events at most and ~64 bytes per
event (``bench/tree.py`` measures it).

The SQL is written once for both dialects (``?`` placeholders; the caller's ``execute`` adapts
them). Every value travels as a bound parameter (hence the ``noqa: S608`` marks).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from genesis.audit.events import EventRow, canonical_bytes
from genesis.audit.merkle import HASH_SIZE, Frontier, NodeId, completing_leaf, emission_index, emitted_before

Execute = Callable[[str, Sequence[Any]], list[Any]]
"""Run one statement in the caller's transaction and return the rows it fetched (``[]`` for none)."""

INSERT: Final = "INSERT INTO audit_tree (first_leaf, tree_size, first_node, nodes, frontier) VALUES (?, ?, ?, ?, ?)"
LATEST: Final = "SELECT tree_size, frontier FROM audit_tree ORDER BY first_leaf DESC LIMIT 1"
BUILD_CHUNK: Final = 4096
ROW_LEAVES: Final = 256
_QUERY_CHUNK: Final = 200  # 400 bound values per statement, far below either database's limit


def unpack_frontier(size: int, packed: bytes) -> Frontier:
    """The frontier stored as ``size`` and its hashes concatenated.

    Raises:
        ValueError: not one 32-byte hash per set bit of ``size``.
    """
    packed = bytes(packed)
    return Frontier(size, [packed[i : i + HASH_SIZE] for i in range(0, len(packed), HASH_SIZE)])


def latest_frontier(execute: Execute) -> Frontier:
    """The frontier after the last stored batch (empty when the tree is)."""
    rows = execute(LATEST, ())
    return unpack_frontier(int(rows[0][0]), rows[0][1]) if rows else Frontier()


def append_leaves(execute: Execute, frontier: Frontier, leaves: Sequence[bytes]) -> None:
    """Append ``leaves`` to ``frontier`` (in place) and store them: one row per run of at most 256 leaves.

    Runs end at multiples of 256 leaves, so a row's nodes take at most ~16 KiB: reading one node
    out of a blob walks its overflow pages in SQLite, which made proofs from 2,000-event rows cost
    milliseconds (bench/audit_reads.py); a batch of 1,000 events is still only 4 or 5 rows.
    """
    start = 0
    while start < len(leaves):
        first = frontier.size
        run = leaves[start : start + ROW_LEAVES - first % ROW_LEAVES]
        nodes = frontier.extend_packed(run)
        execute(INSERT, (first, frontier.size, emitted_before(first), nodes, b"".join(frontier.hashes)))
        start += len(run)


def leaf_of(row: EventRow) -> bytes:
    """``SHA-256(0x00 || canonical bytes)`` of a stored row."""
    return hashlib.sha256(b"\x00" + canonical_bytes(row)).digest()


def build(execute: Execute, frontier: Frontier, rows: Iterable[EventRow], *, chunk: int = BUILD_CHUNK) -> Frontier:
    """Append stored rows (ascending, continuing ``frontier``) to the tree, ``chunk`` leaves per row.

    Raises:
        ValueError: a row's seq is not the next leaf (a gap: the events are not all there).
    """
    leaves: list[bytes] = []
    expected = frontier.size + 1
    for row in rows:
        if row[0] != expected:
            raise ValueError(f"the tree needs the event with seq {expected}, found {row[0]}")
        leaves.append(leaf_of(row))
        expected += 1
        if len(leaves) >= chunk:
            append_leaves(execute, frontier, leaves)
            leaves = []
    append_leaves(execute, frontier, leaves)
    return frontier


@functools.lru_cache(maxsize=32)
def _node_query(count: int) -> str:
    values = ", ".join(["(CAST(? AS BIGINT), CAST(? AS BIGINT))"] * count)
    return (
        f"WITH q(leaf, pos) AS (VALUES {values}) "  # noqa: S608 - placeholders only
        "SELECT q.pos, substr(t.nodes, CAST((q.pos - t.first_node) * 32 + 1 AS INTEGER), 32) "
        "FROM q JOIN audit_tree t ON t.first_leaf = "
        "(SELECT s.first_leaf FROM audit_tree s WHERE s.first_leaf <= q.leaf ORDER BY s.first_leaf DESC LIMIT 1) "
        "AND q.leaf < t.tree_size"
    )


def read_nodes(execute: Execute, ids: Sequence[NodeId]) -> list[bytes]:
    """The hashes of perfect nodes ``ids``, in order, in one query per 200 distinct nodes.

    Raises:
        LookupError: a node is not stored.
    """
    if not ids:
        return []
    keys = [(completing_leaf(level, index), emission_index(level, index)) for level, index in ids]
    distinct = sorted(set(keys))
    found: dict[int, bytes] = {}
    for start in range(0, len(distinct), _QUERY_CHUNK):
        part = distinct[start : start + _QUERY_CHUNK]
        for pos, value in execute(_node_query(len(part)), [v for key in part for v in key]):
            if value is not None:
                found[int(pos)] = bytes(value)
    out = []
    for (level, index), (_, pos) in zip(ids, keys, strict=True):
        value = found.get(pos)
        if value is None or len(value) != HASH_SIZE:
            raise LookupError(f"node ({level}, {index}) is not stored")
        out.append(value)
    return out
