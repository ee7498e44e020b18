"""Migration 0002: a database written before the Merkle tree gets its tree once, and keeps verifying.

The trail is written as the previous release wrote it (events sealed onto the chain, chain checkpoints,
an archived prefix whose export file is format 1), on SQLite and PostgreSQL, then upgraded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from genesis.audit.canonical import canonical_json
from genesis.audit.chain import ChainHasher, seal
from genesis.audit.checkpoints import CheckpointSigner
from genesis.audit.events import EVENT_COLUMNS, GENESIS_HASH, EventRow
from genesis.audit.export import file_digest
from genesis.audit.heads import HeadMaker, log_signer
from genesis.audit.merkle import MemoryTree, leaf_hash
from genesis.audit.trail import TrustedKeys, verify_store
from genesis.storage.audit_sql import open_audit_store
from genesis.storage.migrate import current_revision, upgrade_database
from tests.audit.chainlib import make_event
from tests.audit.conftest import drop_append_only_triggers, raw_sql


def _legacy_trail(url: str, tmp_path: Path, signer: CheckpointSigner) -> tuple[list[EventRow], Path]:
    """60 events, a chain checkpoint every 20, the first 15 archived to a format 1 file (as release 1 did)."""
    rows = seal([make_event(i) for i in range(60)], 0, GENESIS_HASH, ChainHasher())
    cols = ", ".join(EVENT_COLUMNS)
    for row in rows:
        raw_sql(url, f"INSERT INTO audit_events ({cols}) VALUES ({', '.join('?' * 18)})", row)
    cps = [signer.sign(seq, rows[seq - 1][17], reason="periodic") for seq in (15, 20, 40, 60)]
    for cp in cps:
        raw_sql(url, "INSERT INTO audit_checkpoints (seq, head_hash, created_at_us, key_id, signature, reason) "
                     "VALUES (?, ?, ?, ?, ?, ?)",
                (cp.seq, cp.head_hash, cp.created_at_us, cp.key_id, cp.signature, cp.reason))
    archive = tmp_path / "archive-1.ndjson"
    lines = [{"type": "header", "format": "genesis-audit-export/1", "hash_algorithm": "sha256", "start_seq": 1,
              "start_prev_hash": GENESIS_HASH, "created_at_us": 0, "key_id": signer.key_id, "public_key": None},
             {"type": "checkpoint", **cps[0].to_dict()},
             *({"type": "event", **dict(zip(EVENT_COLUMNS, row, strict=True))} for row in rows[:15]),
             {"type": "end", "count": 15, "last_seq": 15, "last_hash": rows[14][17]}]  # fmt: skip
    archive.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    raw_sql(url, "INSERT INTO audit_archives (before_us, first_seq, last_seq, last_hash, digest, location, "
                 "created_at_us) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (rows[15][2], 1, 15, rows[14][17], file_digest(archive), str(archive), 0))
    raw_sql(url, "DELETE FROM audit_events WHERE seq <= 15")  # the only DELETE the triggers allow
    return rows, archive


def _database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'genesis.db'}"
    url: str = request.getfixturevalue("pg_database_url")
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = _database(request, tmp_path)
    upgrade_database(url, revision="0001")
    assert current_revision(url) == "0001"
    return url


def test_the_upgrade_builds_the_tree_over_archived_and_stored_events(old_database: str, tmp_path: Path) -> None:
    signer = CheckpointSigner.from_data_dir(tmp_path / "keys")
    rows, _ = _legacy_trail(old_database, tmp_path, signer)
    upgrade_database(old_database)
    assert current_revision(old_database) == "0004_push_webhooks"  # the newest: the tree migration and after
    reference = MemoryTree()
    for row in rows:
        reference.append(leaf_hash(canonical_json(row)))
    store = open_audit_store(old_database)
    try:
        assert store.tree_root() == (60, reference.root())  # archived leaves included: the tree starts at seq 1
        heads = HeadMaker(store, log_signer(signer._key, "genesis.test/audit"), head_log=tmp_path / "heads.log")
        keys = TrustedKeys(heads.verifier)
        report = verify_store(store, keys=keys)
        assert report.ok and report.checkpoints_matched == 4 and report.covered_seq == 60  # old checkpoints count
        store.append([make_event(60)])
        assert heads.make("on-demand") is not None  # new heads extend the migrated tree
        assert verify_store(store, keys=keys).ok
        drop_append_only_triggers(old_database)
        raw_sql(old_database, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 30")
        assert (verify_store(store, keys=keys).kind, verify_store(store, keys=keys).first_bad_seq) == ("modified", 30)
    finally:
        store.close()


def test_an_archive_file_that_is_gone_stops_the_upgrade_with_its_name(old_database: str, tmp_path: Path) -> None:
    _, archive = _legacy_trail(old_database, tmp_path, CheckpointSigner.from_data_dir(tmp_path / "keys"))
    archive.unlink()
    with pytest.raises(RuntimeError, match=r"seq 1\.\.15 is not at .*archive-1\.ndjson"):
        upgrade_database(old_database)
    # The tree's migration left nothing half done (the ones before it stand on SQLite; PostgreSQL upgrades in one
    # transaction).
    assert current_revision(old_database) in ("0001", "0002_sessions")


def test_an_empty_database_upgrades_to_an_empty_tree(old_database: str) -> None:
    upgrade_database(old_database)
    store: Any = open_audit_store(old_database)
    try:
        assert store.tree_root()[0] == 0
    finally:
        store.close()
