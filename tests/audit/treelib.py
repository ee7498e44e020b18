"""Independent references for the tree tests: RFC 9162's recursive definitions, word for word.

Nothing here imports ``genesis.audit.merkle``: these are the oracles the module is held against.
"""

from __future__ import annotations

import hashlib
from typing import Final

H = lambda data: hashlib.sha256(data).digest()  # noqa: E731

# transparency-dev/merkle testonly.LeafInputs(): the data of the first 8 leaves.
LEAF_INPUTS: Final = [
    bytes.fromhex(x)
    for x in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")
]


def ref_leaf(data: bytes) -> bytes:
    return H(b"\x00" + data)


def ref_node(left: bytes, right: bytes) -> bytes:
    return H(b"\x01" + left + right)


def _k(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(hashes: list[bytes]) -> bytes:
    """MTH over leaf *hashes* (RFC 9162 2.1.1)."""
    if not hashes:
        return H(b"")
    if len(hashes) == 1:
        return hashes[0]
    k = _k(len(hashes))
    return ref_node(mth(hashes[:k]), mth(hashes[k:]))


def path(m: int, hashes: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 2.1.3.1."""
    n = len(hashes)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*path(m, hashes[:k]), mth(hashes[k:])]
    return [*path(m - k, hashes[k:]), mth(hashes[:k])]


def proof(m: int, hashes: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 2.1.4.1."""
    return _subproof(m, hashes, True)


def _subproof(m: int, hashes: list[bytes], whole: bool) -> list[bytes]:
    n = len(hashes)
    if m == n:
        return [] if whole else [mth(hashes)]
    k = _k(n)
    if m <= k:
        return [*_subproof(m, hashes[:k], whole), mth(hashes[k:])]
    return [*_subproof(m - k, hashes[k:], False), mth(hashes[:k])]


def vector_leaves() -> list[bytes]:
    return [ref_leaf(d) for d in LEAF_INPUTS]


def named_nodes() -> dict[str, bytes]:
    """The RFC 9162 2.1.5 names of the 8-leaf tree's nodes (leaves a-f, j, p; inner g-o)."""
    a, b, c, d, e, f, j, p = vector_leaves()
    g, h, i, n = ref_node(a, b), ref_node(c, d), ref_node(e, f), ref_node(j, p)
    return {
        "a": a, "b": b, "c": c, "d": d, "e": e, "f": f, "j": j, "p": p, "g": g, "h": h, "i": i, "n": n,
        "k": ref_node(g, h), "l": ref_node(i, j), "o": ref_node(i, n),
    }  # fmt: skip
