"""The RFC 6962 / RFC 9162 Merkle tree over the audit trail: append, proofs, verification.

Leaf ``i`` of the tree is the event with ``seq = i + 1``; its data are the event's
canonical bytes (``docs/audit-format.md``, "Merkle tree"), which include ``seq``
and ``prev_hash``, so the tree commits to the hash chain as well.

* :class:`Frontier` is the compact range ``[0, n)``: one hash per set bit of ``n``.
  An append costs O(log n) hashing amortised to one node hash, and reports the
  perfect subtrees it completed so that storage can keep each of them once
  (Trillian's "stored subtree hashes"; they never change once complete).
* Proofs for *any* past tree size are built from those perfect nodes alone, with
  O(log n) reads in one batch (:class:`NodeReader`); the at most one right-edge
  subtree of a proof that is not perfect is recomputed from its perfect parts.
* :func:`verify_inclusion` and :func:`verify_consistency` follow RFC 9162
  2.1.3.2 and 2.1.4.2, after checking that the proof has exactly the length its
  sizes fix, so a malformed proof is refused before any hashing.

A ``(size, root)`` pair given to a verification function must come from **one**
verified signed checkpoint (``genesis.audit.note``): an inclusion proof for leaf 0
of a 3-leaf tree also verifies as "size 4" against the 3-leaf root (the paths
have the same shape), so a size taken from anywhere else proves nothing.

Standard library only: the offline verifier is built on this module.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Final, Protocol

HASH_SIZE: Final = 32
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
"""Root of the empty tree: SHA-256 of the empty string."""

NodeId = tuple[int, int]
"""``(level, index)``: the perfect subtree of the ``2**level`` leaves from ``index * 2**level``."""

Node = tuple[int, int, bytes]
"""A perfect subtree and its hash: ``(level, index, hash)``."""

_sha256: Final = hashlib.sha256


class ProofError(ValueError):
    """A proof, size or hash that does not verify or is malformed (the message says which)."""


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``: the hash of one leaf."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: the hash of an inner node."""
    return _sha256(b"\x01" + left + right).digest()


def _check_size(name: str, value: int) -> None:
    if type(value) is not int or value < 0:
        raise ProofError(f"{name} must be a non-negative integer, got {value!r}")


def _check_hash(name: str, value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ProofError(f"{name} must be {HASH_SIZE} bytes")


def _largest_power_below(n: int) -> int:
    """Largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


# --- the frontier ---------------------------------------------------------------------


class Frontier:
    """The compact range ``[0, size)``: the roots of its perfect subtrees, largest first.

    Persist ``(size, hashes)`` with the events it covers (same transaction);
    :meth:`from_reader` rebuilds it from stored perfect nodes.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        """Resume a frontier from its persisted state.

        Raises:
            ValueError: not one 32-byte hash per set bit of ``size``.
        """
        _check_size("size", size)
        self._size = size
        self._hashes = list(hashes)
        if len(self._hashes) != size.bit_count():
            raise ValueError(f"a frontier of size {size} has {size.bit_count()} hashes, not {len(self._hashes)}")
        for h in self._hashes:
            _check_hash("a frontier hash", h)

    @classmethod
    def from_reader(cls, reader: NodeReader, size: int) -> Frontier:
        """The frontier at ``size`` from stored perfect nodes (they are exactly its hashes)."""
        _check_size("size", size)
        return cls(size, _read(reader, perfect_cover(0, size)))

    @property
    def size(self) -> int:
        """Number of leaves appended."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """Roots of the perfect subtrees of ``[0, size)``, largest (leftmost) first."""
        return tuple(self._hashes)

    def copy(self) -> Frontier:
        twin = Frontier()
        twin._size, twin._hashes = self._size, list(self._hashes)
        return twin

    def append(self, leaf: bytes) -> list[Node]:
        """Append one leaf hash; return the perfect subtrees it completed, the leaf first.

        Raises:
            ValueError: ``leaf`` is not 32 bytes.
        """
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes")
        n = self._size
        nodes = [(0, n, leaf)]
        hashes = self._hashes
        h = leaf
        level = 0
        while n & 1:
            h = _sha256(b"\x01" + hashes.pop() + h).digest()
            n >>= 1
            level += 1
            nodes.append((level, n, h))
        hashes.append(h)
        self._size += 1
        return nodes

    def extend(self, leaves: Iterable[bytes]) -> list[Node]:
        """Append several leaf hashes; return every perfect subtree completed, in order."""
        out: list[Node] = []
        for leaf in leaves:
            out += self.append(leaf)
        return out

    def extend_packed(self, leaves: Iterable[bytes]) -> bytes:
        """Append several leaf hashes; return every perfect subtree completed, concatenated in order.

        The same nodes as :meth:`extend`, as one byte string of 32-byte hashes (what storage keeps
        per batch: node ``(level, index)`` is at position :func:`emission_index` counted from
        ``emitted_before(size)`` of the size the batch started at). The caller checks leaf lengths.
        """
        out = bytearray()
        n = self._size
        hashes = self._hashes
        for h in leaves:
            out += h
            m = n
            while m & 1:
                h = _sha256(b"\x01" + hashes.pop() + h).digest()
                out += h
                m >>= 1
            hashes.append(h)
            n += 1
        self._size = n
        return bytes(out)

    def push_subtree(self, level: int, node: bytes) -> None:
        """Append the perfect subtree of ``2**level`` leaves whose hash is ``node`` (the size must be a multiple).

        What joins the frontiers of aligned ranges computed apart (a parallel verifier's chunks).

        Raises:
            ValueError: the size is not a multiple of ``2**level``, or ``node`` is not 32 bytes.
        """
        if level < 0 or self._size & ((1 << level) - 1):
            raise ValueError(f"a subtree of 2**{level} leaves cannot follow {self._size} leaves")
        _check_hash("a subtree hash", node)
        n = self._size >> level
        hashes = self._hashes
        while n & 1:
            node = _sha256(b"\x01" + hashes.pop() + node).digest()
            n >>= 1
        hashes.append(node)
        self._size += 1 << level

    def push(self, leaf: bytes) -> None:
        """Append one leaf hash without reporting nodes (what a verifier needs; the caller checks its length)."""
        n = self._size
        hashes = self._hashes
        while n & 1:
            leaf = _sha256(b"\x01" + hashes.pop() + leaf).digest()
            n >>= 1
        hashes.append(leaf)
        self._size += 1

    def root(self) -> bytes:
        """Root hash of the tree of ``size`` leaves."""
        return _fold(self._hashes)


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Root of a range from its perfect subtrees, largest first: hashed together right to left."""
    if not hashes:
        return EMPTY_ROOT
    r = hashes[-1]
    for h in reversed(hashes[:-1]):
        r = _sha256(b"\x01" + h + r).digest()
    return r


# --- stored perfect nodes ----------------------------------------------------------------


class NodeReader(Protocol):
    """Read access to stored perfect subtree hashes (what storage implements)."""

    def read_nodes(self, ids: Sequence[NodeId]) -> Sequence[bytes]:
        """The hashes of the perfect subtrees ``ids``, in the same order (one round trip).

        Raises:
            LookupError: a node is not stored (the tree is smaller than asked).
        """
        ...


class MemoryNodes:
    """An in-memory :class:`NodeReader`: one byte array of 32-byte hashes per level.

    The layout of a level-0 tile: 32 bytes per node, where a dict of ``2n`` tuple keys
    and ``bytes`` values would take about 150 bytes per node.
    """

    __slots__ = ("_levels",)

    def __init__(self) -> None:
        self._levels: list[bytearray] = []

    @property
    def leaves(self) -> int:
        """Number of leaf hashes stored."""
        return len(self._levels[0]) // HASH_SIZE if self._levels else 0

    def store(self, nodes: Iterable[Node]) -> None:
        """Keep nodes reported by :meth:`Frontier.append`; storing a node again is a no-op.

        Raises:
            ValueError: a node that would leave a gap in its level, a different hash for a stored node,
                or a hash that is not 32 bytes.
        """
        levels = self._levels
        for level, index, h in nodes:
            if len(h) != HASH_SIZE:
                raise ValueError(f"node ({level}, {index}) is not {HASH_SIZE} bytes")
            while len(levels) <= level:
                levels.append(bytearray())
            arr = levels[level]
            count = len(arr) // HASH_SIZE
            if index == count:
                arr += h
            elif 0 <= index < count:
                if arr[index * HASH_SIZE : (index + 1) * HASH_SIZE] != h:
                    raise ValueError(f"node ({level}, {index}) is stored with another hash")
            else:
                raise ValueError(f"node ({level}, {index}) would leave a gap after {count} nodes")

    def read_nodes(self, ids: Sequence[NodeId]) -> list[bytes]:
        levels = self._levels
        out = []
        for level, index in ids:
            start = index * HASH_SIZE
            if level >= len(levels) or index < 0 or start + HASH_SIZE > len(levels[level]):
                raise LookupError(f"node ({level}, {index}) is not stored")
            out.append(bytes(levels[level][start : start + HASH_SIZE]))
        return out


class MemoryTree:
    """A frontier and its stored nodes together: a whole tree in memory (tests, verifiers, benchmarks)."""

    __slots__ = ("frontier", "nodes")

    def __init__(self) -> None:
        self.frontier = Frontier()
        self.nodes = MemoryNodes()

    @property
    def size(self) -> int:
        return self.frontier.size

    def append(self, leaf: bytes) -> None:
        self.nodes.store(self.frontier.append(leaf))

    def root(self, size: int | None = None) -> bytes:
        """Root of the current tree, or of the tree of its first ``size`` leaves."""
        return self.frontier.root() if size is None else root_at(self.nodes, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_proof(self.nodes, index, self.size if size is None else size)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        return consistency_proof(self.nodes, old_size, self.size if new_size is None else new_size)


def emitted_before(size: int) -> int:
    """How many perfect nodes the first ``size`` appends report: ``size`` leaves and ``size - popcount(size)`` inner.

    (The inner nodes of levels >= 1 completed by ``size`` leaves number ``sum(size >> l for l >= 1)``,
    which is ``size - popcount(size)``.)
    """
    return 2 * size - size.bit_count()


def emission_index(level: int, index: int) -> int:
    """Position of perfect node ``(level, index)`` in the sequence of every node appends report.

    The node is completed by the append of leaf ``L = (index + 1) * 2**level - 1``, which reports
    its leaf first and then one node per level up to this one.
    """
    last = ((index + 1) << level) - 1
    return emitted_before(last) + level


def completing_leaf(level: int, index: int) -> int:
    """The leaf whose append completes perfect node ``(level, index)``."""
    return ((index + 1) << level) - 1


# --- proof construction ------------------------------------------------------------------


def perfect_cover(begin: int, end: int) -> list[NodeId]:
    """The perfect subtrees that make up leaves ``[begin, end)``, left to right.

    For the subtrees of the RFC 9162 tree shape (every range a proof names) they
    come largest first, and the range's hash is :func:`_fold` of theirs.
    """
    out = []
    while begin < end:
        level = (end - begin).bit_length() - 1
        if begin:
            level = min(level, (begin & -begin).bit_length() - 1)
        out.append((level, begin >> level))
        begin += 1 << level
    return out


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose hashes form PATH(index, D[0:size]), from the leaf's sibling up."""
    out = []
    begin, end = 0, size
    while end - begin > 1:
        k = _largest_power_below(end - begin)
        if index < begin + k:
            out.append((begin + k, end))
            end = begin + k
        else:
            out.append((begin, begin + k))
            begin += k
    out.reverse()
    return out


def _consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose hashes form PROOF(old_size, D[0:new_size]) (``0 < old_size < new_size``)."""
    out = []
    begin, end, m = 0, new_size, old_size
    whole_old_tree = True  # the SUBPROOF flag b of RFC 9162 2.1.4.1
    while m != end - begin:
        k = _largest_power_below(end - begin)
        if m <= k:
            out.append((begin + k, end))
            end = begin + k
        else:
            out.append((begin, begin + k))
            begin += k
            m -= k
            whole_old_tree = False
    if not whole_old_tree:
        out.append((begin, end))
    out.reverse()
    return out


def inclusion_nodes(index: int, size: int) -> list[NodeId]:
    """The stored perfect nodes an inclusion proof of ``index`` in ``size`` leaves is built from.

    For readers that fetch many proofs at once (an export with proofs): read the union of these
    ids in one batch, then build each proof from a reader that answers from that batch.
    """
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    return [node for begin, end in _inclusion_ranges(index, size) for node in perfect_cover(begin, end)]


def _read(reader: NodeReader, ids: Sequence[NodeId]) -> list[bytes]:
    hashes = list(reader.read_nodes(ids)) if ids else []
    if len(hashes) != len(ids) or any(len(h) != HASH_SIZE for h in hashes):
        raise ValueError("the node reader returned the wrong number of hashes or a hash that is not 32 bytes")
    return hashes


def _range_hashes(reader: NodeReader, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    """Hashes of ``ranges`` from one batched read of their perfect parts."""
    covers = [perfect_cover(b, e) for b, e in ranges]
    hashes = _read(reader, [node for cover in covers for node in cover])
    out = []
    pos = 0
    for cover in covers:
        out.append(_fold(hashes[pos : pos + len(cover)]))
        pos += len(cover)
    return out


def root_at(reader: NodeReader, size: int) -> bytes:
    """Root of the tree of the first ``size`` leaves (popcount(size) reads)."""
    _check_size("size", size)
    return _fold(_read(reader, perfect_cover(0, size)))


def inclusion_proof(reader: NodeReader, index: int, size: int) -> list[bytes]:
    """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves.

    Raises:
        ProofError: ``index`` is not below ``size``.
        LookupError: the reader lacks a node (``size`` exceeds the stored tree).
    """
    _check_size("index", index)
    _check_size("size", size)
    if index >= size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    return _range_hashes(reader, _inclusion_ranges(index, size))


def consistency_proof(reader: NodeReader, old_size: int, new_size: int) -> list[bytes]:
    """RFC 9162 consistency proof from the tree of ``old_size`` leaves to that of ``new_size``.

    Empty when ``old_size`` is 0 or equals ``new_size``.

    Raises:
        ProofError: ``old_size > new_size``.
        LookupError: the reader lacks a node.
    """
    _check_size("old_size", old_size)
    _check_size("new_size", new_size)
    if old_size > new_size:
        raise ProofError(f"old size {old_size} is larger than new size {new_size}")
    if old_size == 0 or old_size == new_size:
        return []
    return _range_hashes(reader, _consistency_ranges(old_size, new_size))


def inclusion_proof_length(index: int, size: int) -> int:
    """The number of hashes an inclusion proof of ``index`` in ``size`` leaves has (``index < size``)."""
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def consistency_proof_length(old_size: int, new_size: int) -> int:
    """The number of hashes a consistency proof from ``old_size`` to ``new_size`` has."""
    if old_size == 0 or old_size >= new_size:
        return 0
    return len(_consistency_ranges(old_size, new_size))


# --- verification --------------------------------------------------------------------------


def _check_proof(proof: Sequence[bytes], expected: int, what: str) -> None:
    if len(proof) != expected:
        raise ProofError(f"{what} has {len(proof)} hashes; these sizes need exactly {expected}")
    for i, h in enumerate(proof):
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise ProofError(f"hash {i} of the {what} is not {HASH_SIZE} bytes")


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` implies for leaf hash ``leaf`` at ``index`` of ``size`` (RFC 9162 2.1.3.2).

    Raises:
        ProofError: ``index >= size``, a hash that is not 32 bytes, or a proof of the wrong length.
    """
    _check_size("index", index)
    _check_size("size", size)
    _check_hash("leaf hash", leaf)
    if index >= size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    _check_proof(proof, inclusion_proof_length(index, size), "inclusion proof")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if fn & 1 or fn == sn:
            r = _sha256(b"\x01" + p + r).digest()
            while not fn & 1 and fn:  # climb past levels where this subtree has no right sibling
                fn >>= 1
                sn >>= 1
        else:
            r = _sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:  # unreachable after the length check; kept as the RFC's own guard
        raise ProofError("inclusion proof is too short")
    return r


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that leaf hash ``leaf`` is leaf ``index`` of the tree ``(size, root)``.

    ``size`` and ``root`` must come from one verified checkpoint (see the module docstring).

    Raises:
        ProofError: the proof does not verify or is malformed.
    """
    _check_hash("root", root)
    if root_from_inclusion_proof(leaf, index, size, proof) != root:
        raise ProofError(f"inclusion proof of leaf {index} does not lead to the root of size {size}")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Check that the tree ``(new_size, new_root)`` extends ``(old_size, old_root)`` (RFC 9162 2.1.4.2).

    Raises:
        ProofError: the proof does not verify or is malformed: ``old_size > new_size``, a non-empty proof
            for equal sizes or from size 0, an empty proof for ``0 < old_size < new_size``, a size-0 root
            other than SHA-256(""), a proof of the wrong length, a hash that is not 32 bytes.
    """
    _check_size("old_size", old_size)
    _check_size("new_size", new_size)
    _check_hash("old root", old_root)
    _check_hash("new root", new_root)
    if old_size > new_size:
        raise ProofError(f"old size {old_size} is larger than new size {new_size}")
    if old_size == new_size:
        _check_proof(proof, 0, "consistency proof")
        if old_root != new_root:
            raise ProofError(f"two different roots for the same size {old_size}")
        return
    if old_size == 0:
        _check_proof(proof, 0, "consistency proof")
        if old_root != EMPTY_ROOT:
            raise ProofError("the root of the empty tree must be SHA-256 of the empty string")
        return
    _check_proof(proof, consistency_proof_length(old_size, new_size), "consistency proof")
    nodes = list(proof)
    if old_size & (old_size - 1) == 0:  # a perfect old tree is its own first node; the proof omits it
        nodes.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = nodes[0]
    for c in nodes[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = _sha256(b"\x01" + c + fr).digest()
            sr = _sha256(b"\x01" + c + sr).digest()
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            sr = _sha256(b"\x01" + sr + c).digest()  # a node only the new tree has
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != old_root:
        raise ProofError(f"consistency proof does not lead to the root of size {old_size}")
    if sr != new_root:
        raise ProofError(f"consistency proof does not lead to the root of size {new_size}")
