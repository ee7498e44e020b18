"""Signed tree heads: one per size for the deployment, published outside the database, never over a rewritten tree."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from genesis.audit import headlog
from genesis.audit.chain import ChainHasher, seal
from genesis.audit.events import GENESIS_HASH
from genesis.audit.heads import HeadMaker, HeadRefused, log_signer
from genesis.audit.merkle import consistency_proof
from genesis.audit.note import default_origin, open_checkpoint
from genesis.audit.store import AuditStore, StoredHead
from genesis.audit.trail import TrustedKeys, verify_store
from genesis.audit.verifier import check_consistency
from genesis.errors import Conflict, InvalidInput
from genesis.storage.audit_sql import open_audit_store
from tests.audit.chainlib import make_event
from tests.audit.conftest import drop_append_only_triggers, raw_sql


def fill(store: AuditStore, start: int, n: int) -> None:
    store.append([make_event(i) for i in range(start, start + n)])


def test_a_head_is_a_c2sp_checkpoint_of_the_tree_published_to_the_log_file_and_the_log_stream(
    store: AuditStore, heads: HeadMaker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fill(store, 0, 7)
    seen: list[StoredHead] = []
    heads.on_head(seen.append)
    with caplog.at_level(logging.INFO, logger="genesis.audit.heads"):
        head = heads.make("on-demand")
    assert head is not None and (head.size, head.root) == store.tree_root()
    opened = open_checkpoint(head.note, heads.verifier)
    assert (opened.origin, opened.size, opened.root) == ("genesis.test/audit", 7, head.root)
    assert headlog.read(tmp_path / "audit-heads.log").notes == [head.note]
    (line,) = [r for r in caplog.records if getattr(r, "action", None) == "audit.head"]
    assert (line.tree_size, line.note, line.root) == (7, head.note, head.root.hex())  # type: ignore[attr-defined]
    assert seen == [head] and store.heads() == [head]


def test_one_head_per_size_the_stored_one_is_returned(store: AuditStore, heads: HeadMaker) -> None:
    fill(store, 0, 5)
    first = heads.make("on-demand")
    assert heads.make("on-demand") == first and heads.make("export", size=5) == first
    older = heads.make("export", size=3)  # a past size: its root from the stored nodes
    assert older is not None and older.root == store.tree_root(3)[1]
    assert [h.size for h in store.heads()] == [3, 5]
    with pytest.raises(InvalidInput):
        heads.make("export", size=6)


def test_workers_racing_for_a_head_store_exactly_one(store_url: str, heads: HeadMaker, tmp_path: Path) -> None:
    stores = [open_audit_store(store_url) for _ in range(4)]
    try:
        fill(stores[0], 0, 30)
        makers = [HeadMaker(s, heads.signer, head_log=tmp_path / "audit-heads.log") for s in stores]
        made: list[StoredHead | None] = []
        barrier = threading.Barrier(len(makers))

        def race(maker: HeadMaker) -> None:
            barrier.wait()
            made.append(maker.make("on-demand"))

        threads = [threading.Thread(target=race, args=(m,)) for m in makers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(made) == 4 and len({h.note for h in made if h is not None}) == 1
        assert len(stores[0].heads()) == 1
        assert len(headlog.read(tmp_path / "audit-heads.log").notes) == 1  # published once
    finally:
        for s in stores:
            s.close()


def test_the_default_origin_names_the_key() -> None:
    key = Ed25519PrivateKey.generate()
    assert log_signer(key).name == default_origin(key.public_key()) and log_signer(key, "x.example/log").name == \
        "x.example/log"


def test_a_rewritten_tree_is_never_signed(
    store: AuditStore, store_url: str, heads: HeadMaker, caplog: pytest.LogCaptureFixture
) -> None:
    fill(store, 0, 10)
    signed = heads.make("on-demand")
    assert signed is not None
    # An attacker cuts the trail to 6 events and rebuilds a different history from there.
    drop_append_only_triggers(store_url)
    raw_sql(store_url, "DELETE FROM audit_events WHERE seq > 6")
    raw_sql(store_url, "DELETE FROM audit_tree WHERE first_leaf >= 0")
    store.close()
    fresh = open_audit_store(store_url)  # no cached frontier: the tree is rebuilt from the 6 remaining events
    try:
        fill(fresh, 100, 8)
        maker = HeadMaker(fresh, heads.signer, head_log=heads.head_log)
        with caplog.at_level(logging.ERROR, logger="genesis.audit.heads"), pytest.raises(HeadRefused):
            maker.make("on-demand")
        assert "REFUSING TO SIGN" in caplog.text
        # Deleting the stored heads does not help: the head log outside the database still holds size 10.
        raw_sql(store_url, "DELETE FROM audit_heads")
        with pytest.raises(HeadRefused, match="size 10"):
            HeadMaker(fresh, heads.signer, head_log=heads.head_log).make("on-demand")
        assert fresh.heads() == [] and len(headlog.read(heads.head_log).notes) == 1  # type: ignore[arg-type]
    finally:
        fresh.close()


def test_a_cut_tail_is_never_signed(store: AuditStore, store_url: str, heads: HeadMaker) -> None:
    fill(store, 0, 10)
    heads.make("on-demand")
    drop_append_only_triggers(store_url)
    raw_sql(store_url, "DELETE FROM audit_events WHERE seq > 4")
    raw_sql(store_url, "DELETE FROM audit_heads")
    store.close()
    fresh = open_audit_store(store_url)
    try:
        with pytest.raises(Conflict, match="10 leaves but the trail ends at seq 4"):  # the tree still has them
            HeadMaker(fresh, heads.signer, head_log=heads.head_log).make("on-demand")
        with pytest.raises(Conflict, match="events were deleted"):
            fill(fresh, 50, 1)  # nothing is appended to a cut trail either
        raw_sql(store_url, "DELETE FROM audit_tree")  # the tree cut too: rebuilt from the 4 events left
        with pytest.raises(HeadRefused, match="fewer than the signed head of size 10"):
            HeadMaker(fresh, heads.signer, head_log=heads.head_log).make("on-demand")
    finally:
        fresh.close()


def test_a_head_stored_by_another_key_stops_signing(store: AuditStore, heads: HeadMaker, tmp_path: Path) -> None:
    fill(store, 0, 3)
    heads.make("on-demand")
    fill(store, 3, 2)
    stranger = HeadMaker(store, log_signer(Ed25519PrivateKey.generate(), "genesis.test/audit"))
    with pytest.raises(HeadRefused, match="not this log's"):
        stranger.make("on-demand")


def test_consecutive_heads_prove_consistent(store: AuditStore, heads: HeadMaker, keys: TrustedKeys) -> None:
    made = []
    for start in range(0, 50, 10):
        fill(store, start, 10)
        made.append(open_checkpoint(heads.make("on-demand").note, keys.log))  # type: ignore[union-attr]
    for old in made:
        for new in made:
            if new.size >= old.size:
                check_consistency(old, new, consistency_proof(store, old.size, new.size))
    assert verify_store(store, keys=keys).covered_seq == 50


def test_an_unwritable_head_log_makes_no_head(store: AuditStore, heads: HeadMaker, tmp_path: Path) -> None:
    fill(store, 0, 3)
    blocked = HeadMaker(store, heads.signer, head_log=tmp_path / "missing-dir" / "heads.log")
    with pytest.raises(OSError):
        blocked.make("on-demand")
    assert store.heads() == []


def test_a_failing_listener_does_not_stop_the_others(store: AuditStore, heads: HeadMaker) -> None:
    calls: list[int] = []

    def broken(head: StoredHead) -> None:
        raise RuntimeError("listener down")

    heads.on_head(broken)
    heads.on_head(lambda head: calls.append(head.size))
    fill(store, 0, 2)
    assert heads.make("on-demand") is not None and calls == [2]


def test_the_empty_tree_has_a_head_on_demand(store: AuditStore, heads: HeadMaker) -> None:
    head = heads.make("on-demand")
    assert head is not None and head.size == 0 and head.root == store.tree_root()[1]


def test_seal_reports_the_leaf_of_each_row() -> None:
    leaves: list[bytes] = []
    rows = seal([make_event(i) for i in range(3)], 0, GENESIS_HASH, ChainHasher(), leaves)
    from genesis.audit.canonical import canonical_json
    from genesis.audit.merkle import leaf_hash

    assert leaves == [leaf_hash(canonical_json(r)) for r in rows]
