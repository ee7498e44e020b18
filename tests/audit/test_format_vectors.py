"""The test vectors of docs/audit-format.md section 11, read out of the document and checked against the code.

If the document and the code disagree, one of them is wrong: these tests keep them together.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from genesis.audit.canonical import CANONICAL_KEYS, canonical_json
from genesis.audit.events import GENESIS_HASH, canonical_bytes
from genesis.audit.merkle import MemoryTree, ProofError, leaf_hash, verify_consistency, verify_inclusion
from genesis.audit.note import (
    CosignatureSigner,
    NoteSigner,
    add_cosignature,
    checkpoint_text,
    open_checkpoint,
    parse_vkey,
    sign_checkpoint,
)
from genesis.audit.verifier import check_consistency, check_inclusion, verify_trail
from tests.audit.treelib import mth, named_nodes, ref_leaf

DOC = Path(__file__).resolve().parents[2] / "docs" / "audit-format.md"
BLOCK = re.compile(r"^```vector:([a-z-]+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def vectors() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, body in BLOCK.findall(DOC.read_text("utf-8")):
        assert name not in found, f"two vector:{name} blocks"
        found[name] = body.splitlines()
    return found


V = vectors()


def table(name: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split()[1:] for line in V[name]}


def test_the_document_has_every_vector_block() -> None:
    assert set(V) == {
        "leaf-inputs", "roots", "nodes", "inclusion", "consistency", "events", "event-hashes", "event-roots",
        "event-inclusion", "event-consistency", "vkeys", "signed-head",
    }  # fmt: skip
    assert {int(n) for n in table("roots")} == {int(n) for n in table("event-roots")} == {0, 1, 2, 3, 7, 8}


# --- 11.1 the transparency-dev leaves -------------------------------------------------------------------


def tlog_tree() -> MemoryTree:
    tree = MemoryTree()
    for index, data in sorted((int(i), bytes.fromhex("".join(rest))) for i, rest in table("leaf-inputs").items()):
        assert index == tree.size
        tree.append(leaf_hash(data))
    return tree


def test_tlog_roots_and_nodes() -> None:
    tree = tlog_tree()
    nodes = {name: bytes.fromhex(h) for name, (h,) in table("nodes").items()}
    leaves = [nodes[x] for x in "abcdefjp"]
    for size, (root,) in table("roots").items():
        assert tree.root(int(size)).hex() == root == mth(leaves[: int(size)]).hex()
    assert nodes == named_nodes()
    assert tree.nodes.read_nodes([(0, i) for i in range(8)]) == leaves
    assert tree.nodes.read_nodes([(1, 0), (1, 1), (1, 2), (1, 3), (2, 0), (2, 1)]) == [nodes[x] for x in "ghinko"]


def test_tlog_inclusion_and_consistency_proofs() -> None:
    tree = tlog_tree()
    nodes = {name: bytes.fromhex(h) for name, (h,) in table("nodes").items()}
    for line in V["inclusion"]:
        index, size, *names = line.split()
        proof = [nodes[x] for x in names]
        assert tree.inclusion_proof(int(index), int(size)) == proof
        verify_inclusion(tree.nodes.read_nodes([(0, int(index))])[0], int(index), int(size), proof,
                         tree.root(int(size)))  # fmt: skip
    for line in V["consistency"]:
        old, new, *names = line.split()
        proof = [nodes[x] for x in names]
        assert tree.consistency_proof(int(old), int(new)) == proof
        verify_consistency(int(old), int(new), tree.root(int(old)), tree.root(int(new)), proof)
    with pytest.raises(ProofError):  # transparency-dev consistency/1 with its proof emptied
        verify_consistency(1, 8, tree.root(1), tree.root(8), [])


# --- 11.2 Genesis events -------------------------------------------------------------------------------


def event_rows() -> list[tuple[object, ...]]:
    """The documented canonical lines as stored rows (``EVENT_COLUMNS`` order), with their documented hash."""
    hashes = table("event-hashes")
    rows = []
    for line in V["events"]:
        obj = json.loads(line)
        assert list(obj) == [key for key, _ in CANONICAL_KEYS]  # the documented key order
        row: list[object] = [None] * 18
        for key, column in CANONICAL_KEYS:
            row[column] = obj[key]
        row[17] = hashes[str(obj["seq"])][0]
        rows.append(tuple(row))
    return rows


def test_event_lines_are_canonical_and_chain_from_genesis() -> None:
    rows = event_rows()
    prev = GENESIS_HASH
    for line, row in zip(V["events"], rows, strict=True):
        data = line.encode("utf-8")
        assert canonical_json(row) == data == canonical_bytes(row)
        assert row[16] == prev
        assert hashlib.sha256(bytes.fromhex(prev) + data).hexdigest() == row[17]
        assert leaf_hash(data).hex() == ref_leaf(data).hex() == table("event-hashes")[str(row[0])][1]
        prev = str(row[17])
    assert [row[0] for row in rows] == list(range(1, 9))
    assert "\\t" in V["events"][6] and "\\u001b" in V["events"][6] and "😀" in V["events"][6]


def test_event_roots_and_proofs() -> None:
    tree = MemoryTree()
    for line in V["events"]:
        tree.append(leaf_hash(line.encode("utf-8")))
    for size, (root,) in table("event-roots").items():
        assert tree.root(int(size)).hex() == root
    index, size = map(int, V["event-inclusion"][0].split())
    proof = [bytes.fromhex(h) for h in V["event-inclusion"][1:]]
    assert tree.inclusion_proof(index, size) == proof
    old, new = map(int, V["event-consistency"][0].split())
    proof = [bytes.fromhex(h) for h in V["event-consistency"][1:]]
    assert tree.consistency_proof(old, new) == proof


# --- 11.3 the signed head --------------------------------------------------------------------------------


def signed_head() -> str:
    return "\n".join(V["signed-head"]) + "\n"


def test_the_vkeys_come_from_the_documented_seeds() -> None:
    log = NoteSigner("genesis.example/audit", seeded("example log key - do not use"))
    witness = CosignatureSigner("witness.example/w1", seeded("example witness key - do not use"))
    assert V["vkeys"] == [log.verifier.vkey, witness.verifier.vkey]


def seeded(text: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(text.encode()).digest())


def test_the_signed_head_is_reproduced_and_verifies_with_the_documented_vkeys() -> None:
    log_key, witness_key = (parse_vkey(v) for v in V["vkeys"])
    head = open_checkpoint(signed_head(), log_key, witnesses=[witness_key], witness_quorum=1)
    assert (head.origin, head.size, head.root.hex()) == ("genesis.example/audit", 8, table("event-roots")["8"][0])
    (cosignature,) = head.cosignatures
    log = NoteSigner("genesis.example/audit", seeded("example log key - do not use"))
    witness = CosignatureSigner("witness.example/w1", seeded("example witness key - do not use"))
    text = checkpoint_text(head.origin, head.size, head.root)
    rebuilt = add_cosignature(sign_checkpoint(log, head.size, head.root), witness.signature_line(text, 1767225611))
    assert rebuilt == signed_head() and cosignature.timestamp == 1767225611


def test_the_documented_events_verify_offline_against_the_documented_head() -> None:
    rows = event_rows()
    report = verify_trail(rows, log_key=V["vkeys"][0], checkpoints=[signed_head()])
    assert report.ok and report.covered_size == 8 and report.root == table("event-roots")["8"][0]
    head = open_checkpoint(signed_head(), parse_vkey(V["vkeys"][0]))
    check_inclusion(head, rows[3], [bytes.fromhex(h) for h in V["event-inclusion"][1:]])
    tree = MemoryTree()
    for line in V["events"][:3]:
        tree.append(leaf_hash(line.encode("utf-8")))
    signer = NoteSigner("genesis.example/audit", seeded("example log key - do not use"))
    head3 = open_checkpoint(sign_checkpoint(signer, 3, tree.root()), signer.verifier)
    check_consistency(head3, head, [bytes.fromhex(h) for h in V["event-consistency"][1:]])
    report = verify_trail(rows[:7], log_key=V["vkeys"][0], checkpoints=[signed_head()])
    assert (report.kind, report.first_bad_seq) == ("truncated", 8)
