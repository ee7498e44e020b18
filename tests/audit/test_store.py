"""The SQL audit store, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from genesis.audit import headlog
from genesis.audit.checkpoints import CheckpointSigner
from genesis.audit.events import GENESIS_HASH
from genesis.audit.export import file_digest
from genesis.audit.exportfile import verify_export_file
from genesis.audit.heads import HeadMaker
from genesis.audit.store import ArchiveRecord, AuditStore, ChainHead
from genesis.audit.trail import TrustedKeys, archive_events, export_events, verify_store
from genesis.errors import ConfigurationError, InvalidInput, Unavailable
from genesis.storage.audit_sql import SqliteAuditStore, open_audit_store
from tests.audit.chainlib import make_event
from tests.audit.conftest import drop_append_only_triggers, raw_sql

BASE_US = 1_700_000_000_000_000


def fill(store: AuditStore, n: int, **overrides: Any) -> None:
    for start in range(0, n, 50):
        store.append([make_event(i, **overrides) for i in range(start, min(n, start + 50))])


def test_append_assigns_gapless_seq_and_links_each_event(store: AuditStore) -> None:
    assert store.head() == ChainHead(0, GENESIS_HASH)
    first = store.append([make_event(0), make_event(1)])
    second = store.append([make_event(2)])
    assert [e.seq for e in first + second] == [1, 2, 3]
    assert first[0].prev_hash == GENESIS_HASH and first[1].prev_hash == first[0].hash
    assert second[0].prev_hash == first[1].hash
    assert store.head() == ChainHead(3, second[0].hash)
    stored = store.get(first[1].event_id)
    assert stored == first[1]
    assert store.get("missing") is None
    assert verify_store(store).ok


def test_resubmitting_an_event_is_idempotent(store: AuditStore) -> None:
    event = make_event(0)
    (committed,) = store.append([event])
    again = store.append([make_event(1), event, event])
    assert again[1] == committed and again[2] == committed
    assert again[0].seq == 2 and store.head().seq == 2
    assert verify_store(store).ok


# --- one retry on a fresh connection after a lost one ---------------------------------------------------------------


def lose_connections(
    monkeypatch: pytest.MonkeyPatch, store: Any, times: int, *, after_commit: bool = False
) -> list[Any]:
    """Make the next ``times`` append transactions fail as if the connection died, before or after their commit.

    Returns the connection each append transaction ran on, one per attempt.
    """
    original = store._write
    conns: list[Any] = []

    @contextmanager
    def write() -> Iterator[Any]:
        conns.append(store._conn())
        lost = len(conns) <= times
        if lost and not after_commit:
            raise store.operational_errors[0]("server closed the connection unexpectedly")
        with original() as cur:
            yield cur
        if lost:
            raise store.operational_errors[0]("server closed the connection unexpectedly")

    monkeypatch.setattr(store, "_write", write)
    return conns


@pytest.mark.postgres
def test_an_append_after_the_backend_was_terminated_succeeds_on_a_fresh_connection(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    opened = open_audit_store(pg_url)
    try:
        opened.append([make_event(0)])
        pid = opened._conn().info.backend_pid  # type: ignore[attr-defined]
        with psycopg.connect(pg_url, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
            deadline = time.monotonic() + 10
            while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
                assert time.monotonic() < deadline, "the terminated backend did not exit"
                time.sleep(0.02)
        conns = lose_connections(monkeypatch, opened, 0)  # only records the attempts
        committed = opened.append([make_event(1), make_event(2)])
        assert len(conns) == 2 and conns[1].info.backend_pid != pid
        assert [e.seq for e in committed] == [2, 3]
        assert [row[0] for row in opened.iter_rows()] == [1, 2, 3]
        assert verify_store(opened).ok
    finally:
        opened.close()


def test_an_append_whose_commit_landed_before_the_connection_died_is_not_written_twice(
    store: AuditStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.append([make_event(0)])
    conns = lose_connections(monkeypatch, store, 1, after_commit=True)
    returned = store.append([make_event(1), make_event(2)])
    assert len(conns) == 2 and conns[0] is not conns[1]
    assert store.head().seq == 3 and [row[0] for row in store.iter_rows()] == [1, 2, 3]
    assert returned == [store.get(e.event_id) for e in returned] and [e.seq for e in returned] == [2, 3]
    assert verify_store(store).ok


def test_an_append_that_fails_again_on_the_fresh_connection_raises_unavailable(
    store: AuditStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.append([make_event(0)])
    conns = lose_connections(monkeypatch, store, 2)
    with pytest.raises(Unavailable, match="server closed the connection"):
        store.append([make_event(1)])
    assert len(conns) == 2 and conns[0] is not conns[1]
    assert store.head().seq == 1
    (later,) = store.append([make_event(1)])
    assert later.seq == 2 and verify_store(store).ok


def test_a_held_sqlite_write_lock_is_not_retried(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    opened = open_audit_store(sqlite_url, timeout_seconds=0.2)
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        opened.append([make_event(0)])
        conns = lose_connections(monkeypatch, opened, 0)  # only records the attempts
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(Unavailable, match="locked"):
            opened.append([make_event(1)])
        assert len(conns) == 1
        holder.execute("ROLLBACK")
        (later,) = opened.append([make_event(1)])
        assert later.seq == 2 and verify_store(opened).ok
    finally:
        holder.close()
        opened.close()


def test_iterating_is_ordered_and_chunked(store: AuditStore) -> None:
    fill(store, 120)
    seqs = [row[0] for row in store.iter_rows(chunk=7)]
    assert seqs == list(range(1, 121))
    assert [e.seq for e in store.iter_events(start_seq=100, end_seq=104)] == [100, 101, 102, 103, 104]


def test_query_filters_and_pages_by_keyset(store: AuditStore) -> None:
    fill(store, 60)
    events, cursor = store.query(actor="user3", limit=4)
    assert [e.actor for e in events] == ["user3"] * 4 and cursor is not None
    pages = [events]
    while cursor is not None:
        events, cursor = store.query(actor="user3", limit=4, cursor=cursor)
        pages.append(events)
    seqs = [e.seq for page in pages for e in page]
    assert seqs == [i + 1 for i in range(60) if i % 7 == 3]
    newest, _ = store.query(order="desc", limit=3)
    assert [e.seq for e in newest] == [60, 59, 58]
    window, _ = store.query(start_us=BASE_US + 10_000_000, end_us=BASE_US + 13_000_000, limit=100)
    assert [e.seq for e in window] == [11, 12, 13]
    by_corr, _ = store.query(correlation_id="c-2", outcome="success", level="AUDIT", action="test.event")
    assert [e.seq for e in by_corr] == list(range(21, 31))
    with pytest.raises(InvalidInput):
        store.query(cursor="not-a-seq")
    with pytest.raises(InvalidInput):
        store.query(limit=0)


def test_update_and_delete_are_refused_by_the_database(store: AuditStore, store_url: str) -> None:
    fill(store, 3)
    for sql in ("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2", "DELETE FROM audit_events WHERE seq = 3"):
        with pytest.raises(Exception, match="append-only"):
            raw_sql(store_url, sql)
    assert [row[0] for row in store.iter_rows()] == [1, 2, 3]
    assert verify_store(store).ok


def archive(store: AuditStore, heads: HeadMaker, before_us: int, directory: Path) -> ArchiveRecord | None:
    moment = datetime.fromtimestamp(before_us / 1_000_000, tz=UTC)
    return archive_events(store, before=moment, export_dir=directory, retention_days=0, heads=heads)


def test_every_audit_table_refuses_update_and_delete(
    store: AuditStore, store_url: str, signer: CheckpointSigner, heads: HeadMaker, tmp_path: Path
) -> None:
    fill(store, 3)
    store.add_checkpoint(signer.sign(1, next(store.iter_rows())[17], reason="periodic"))
    archive(store, heads, BASE_US + 1_500_000, tmp_path)
    for sql in (
        "UPDATE audit_checkpoints SET seq = 99",
        "DELETE FROM audit_checkpoints",
        "UPDATE audit_archives SET last_seq = 3",
        "DELETE FROM audit_archives",
        "UPDATE audit_tree SET tree_size = 0",
        "DELETE FROM audit_tree",
        "UPDATE audit_heads SET size = 99",
        "DELETE FROM audit_heads",
    ):
        with pytest.raises(Exception, match="append-only"):
            raw_sql(store_url, sql)
    assert len(store.checkpoints()) == 1 and len(store.archives()) == 1 and len(store.heads()) == 1


def test_tampering_in_the_database_is_found(store: AuditStore, store_url: str, heads: HeadMaker,
                                            keys: TrustedKeys) -> None:
    fill(store, 30)
    heads.make("on-demand")
    drop_append_only_triggers(store_url)
    raw_sql(store_url, "UPDATE audit_events SET message = 'edited' WHERE seq = 12")
    report = verify_store(store, keys=keys)
    assert (report.kind, report.first_bad_seq) == ("modified", 12)
    raw_sql(store_url, "DELETE FROM audit_events WHERE seq >= 25")
    raw_sql(store_url, "DELETE FROM audit_events WHERE seq = 5")
    report = verify_store(store, keys=keys)
    assert (report.kind, report.first_bad_seq) == ("deleted", 5)


def test_a_cut_tail_is_truncated_at_the_cut_when_a_head_covers_it(
    store: AuditStore, store_url: str, heads: HeadMaker, keys: TrustedKeys
) -> None:
    fill(store, 30)
    heads.make("on-demand")
    drop_append_only_triggers(store_url)
    raw_sql(store_url, "DELETE FROM audit_events WHERE seq > 26")
    report = verify_store(store, keys=keys)
    assert (report.kind, report.first_bad_seq) == ("truncated", 27)


def test_a_cut_tail_whose_chain_checkpoints_remain_is_truncated(
    store: AuditStore, store_url: str, signer: CheckpointSigner, keys: TrustedKeys
) -> None:
    """A trail from before the tree: its chain checkpoints beyond the cut must count (they did not, on main)."""
    fill(store, 30)
    for seq in (10, 20, 29):
        row = next(iter(store.iter_rows(start_seq=seq, end_seq=seq)))
        store.add_checkpoint(signer.sign(seq, row[17], reason="periodic"))
    drop_append_only_triggers(store_url)
    raw_sql(store_url, "DELETE FROM audit_events WHERE seq > 27")
    report = verify_store(store, keys=keys)
    assert (report.ok, report.kind, report.first_bad_seq, report.covered_seq) == (False, "truncated", 28, 20)


def test_a_cut_tail_whose_heads_were_deleted_too_is_caught_by_the_head_log(
    store: AuditStore, store_url: str, heads: HeadMaker, keys: TrustedKeys, tmp_path: Path
) -> None:
    fill(store, 20)
    heads.make("on-demand")
    fill(store, 10)
    heads.make("on-demand")
    assert [h.size for h in store.heads()] == [20, 30]
    drop_append_only_triggers(store_url)
    # The attacker deletes the last events, the heads that cover them and the tree rows of the cut batches.
    raw_sql(store_url, "DELETE FROM audit_events WHERE seq > 20")
    raw_sql(store_url, "DELETE FROM audit_heads WHERE size > 20")
    raw_sql(store_url, "DELETE FROM audit_tree WHERE first_leaf >= 20")
    assert verify_store(store, keys=keys).ok  # the database alone looks intact ...
    published = headlog.read(tmp_path / "audit-heads.log").notes
    assert len(published) == 2
    report = verify_store(store, keys=keys, heads=published)  # ... the head log outside it does not
    assert (report.ok, report.kind, report.first_bad_seq) == (False, "truncated", 21)


def test_archive_exports_prunes_and_the_trail_verifies_from_the_boundary(
    store: AuditStore, heads: HeadMaker, keys: TrustedKeys, tmp_path: Path
) -> None:
    fill(store, 50)
    record = archive(store, heads, BASE_US + 20_000_000, tmp_path / "a1")
    assert record is not None and (record.first_seq, record.last_seq) == (1, 20)
    location = Path(record.location)
    assert record.digest == file_digest(location)
    assert store.boundary() == ChainHead(20, record.last_hash)
    assert [row[0] for row in store.iter_rows()][:1] == [21]
    assert next(store.iter_rows())[16] == record.last_hash
    assert verify_store(store, keys=keys).ok
    exported = verify_export_file(location, log_key=keys.log, expected_digest=record.digest)
    assert exported.ok and exported.trail.events_checked == 20 and exported.trail.covered_size == 20
    # More events, a second archive, and an empty table after a third one.
    fill(store, 5, base_us=BASE_US + 100_000_000)
    second = archive(store, heads, BASE_US + 40_000_000, tmp_path / "a2")
    assert second is not None and (second.first_seq, second.last_seq) == (21, 40)
    assert archive(store, heads, BASE_US + 40_000_000, tmp_path / "none") is None
    checked = verify_export_file(Path(second.location), log_key=keys.log)
    assert checked.ok and checked.heads_in_file == 2  # the boundary's head (20) and its own (40)
    third = archive(store, heads, BASE_US + 10**12, tmp_path / "a3")
    assert third is not None and third.last_seq == 55 and list(store.iter_rows()) == []
    assert store.head() == ChainHead(55, third.last_hash)
    (after,) = store.append([make_event(99)])
    assert (after.seq, after.prev_hash) == (56, third.last_hash)
    assert verify_store(store, keys=keys).ok
    assert [a.last_seq for a in store.archives()] == [20, 40, 55]
    assert store.tree_root()[0] == 56  # the tree keeps every leaf: proofs for archived events still work


def test_pruning_without_a_vouched_boundary_is_reported(
    store: AuditStore, store_url: str, keys: TrustedKeys
) -> None:
    fill(store, 10)
    row = next(iter(store.iter_rows(start_seq=4, end_seq=4)))
    raw_sql(
        store_url,
        "INSERT INTO audit_archives (before_us, first_seq, last_seq, last_hash, digest, location, created_at_us) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (0, 1, 4, row[17], "0" * 64, "nowhere", 0),
    )
    raw_sql(store_url, "DELETE FROM audit_events WHERE seq <= 4")  # the trigger now allows it
    assert verify_store(store).ok  # the chain alone cannot tell ...
    report = verify_store(store, keys=keys)  # ... the missing signed boundary can
    assert (report.kind, report.first_bad_seq) == ("deleted", 4)


def test_an_export_verifies_offline_and_a_one_byte_edit_fails(
    store: AuditStore, heads: HeadMaker, keys: TrustedKeys, tmp_path: Path
) -> None:
    fill(store, 25)
    summary = export_events(store, tmp_path / "export.ndjson", heads=heads)
    assert summary.count == 25 and summary.digest == file_digest(tmp_path / "export.ndjson")
    assert summary.tree_size == 25 and store.latest_head() is not None
    assert verify_export_file(summary.path, log_key=keys.log).ok
    text = summary.path.read_text("utf-8")
    summary.path.write_text(text.replace("event 17", "event 71"), "utf-8")
    report = verify_export_file(summary.path, log_key=keys.log).trail
    assert (report.kind, report.first_bad_seq) == ("modified", 18)
    lines = text.splitlines(keepends=True)
    summary.path.write_text("".join(lines[:-8]), "utf-8")  # cut the tail, its head and the trailer
    assert verify_export_file(summary.path, log_key=keys.log).trail.kind == "truncated"


def test_threads_sharing_a_store_keep_one_chain(store: AuditStore) -> None:
    def work(k: int) -> None:
        for i in range(10):
            store.append([make_event(k * 100 + i), make_event(k * 100 + i + 50)])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.head().seq == 80
    assert verify_store(store).ok


def test_urls_are_normalised(tmp_path: Path, sqlite_url: str) -> None:
    path = sqlite_url.removeprefix("sqlite:///")
    for url in (f"sqlite+aiosqlite:///{path}", f"sqlite:///{path}?mode=rwc"):
        opened = open_audit_store(url)
        assert isinstance(opened, SqliteAuditStore) and str(opened.path) == path
        opened.close()
    with pytest.raises(ConfigurationError):
        open_audit_store("sqlite:///:memory:")
    with pytest.raises(ConfigurationError):
        open_audit_store("mysql://x/y")


def test_sqlite_runs_in_wal_with_full_sync(sqlite_url: str) -> None:
    opened = open_audit_store(sqlite_url)
    try:
        conn = opened._conn()  # type: ignore[attr-defined]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        opened.close()
    assert isinstance(sqlite3.sqlite_version, str)


def test_a_keyed_chain_verifies_only_with_its_key(store_url: str) -> None:  # (the chain alone: no keys given)
    keyed = open_audit_store(store_url, hmac_key="a-long-and-secret-hmac-key-for-tests")
    try:
        assert keyed.hash_algorithm == "hmac-sha256"
        fill(keyed, 5)
        assert verify_store(keyed, hmac_key="a-long-and-secret-hmac-key-for-tests").ok
        report = verify_store(keyed)
        assert (report.kind, report.first_bad_seq) == ("modified", 1)
    finally:
        keyed.close()


def test_archive_events_enforces_retention_and_audits_itself(
    store: AuditStore, heads: HeadMaker, keys: TrustedKeys, tmp_path: Path
) -> None:
    from datetime import timedelta

    from genesis.audit.recorder import AuditRecorder
    from genesis.audit.writer import AuditWriter

    fill(store, 10)  # in November 2023
    with pytest.raises(InvalidInput, match="retention"):
        archive_events(
            store, before=datetime.now(UTC) - timedelta(days=10), export_dir=tmp_path, retention_days=365,
            heads=heads,
        )  # fmt: skip
    with AuditWriter(store, heads=heads) as writer:
        record = archive_events(
            store, before=datetime(2024, 1, 1), export_dir=tmp_path, retention_days=365, heads=heads,
            recorder=AuditRecorder(writer), actor="auditor",
        )  # fmt: skip
    assert record is not None and record.last_seq == 10
    assert verify_export_file(Path(record.location), log_key=keys.log, expected_digest=record.digest).ok
    (purge,) = [e for e in store.iter_events() if e.action == "audit.archive"]
    assert purge.actor == "auditor" and purge.metadata["last_seq"] == 10
    # One head of size 10 (the writer's startup head or the archive's boundary head, whichever came first: never
    # both) vouches for the boundary; the shutdown head covers audit.archive.
    made = [(h.size, h.reason) for h in store.heads()]
    assert made in ([(10, "startup"), (11, "shutdown")], [(10, "archive-boundary"), (11, "shutdown")]), made
    assert verify_store(store, keys=keys).ok


def test_a_damaged_export_line_is_reported_not_raised(
    store: AuditStore, heads: HeadMaker, keys: TrustedKeys, tmp_path: Path
) -> None:
    fill(store, 5)
    summary = export_events(store, tmp_path / "export.ndjson", heads=heads)
    lines = summary.path.read_text("utf-8").splitlines(keepends=True)
    summary.path.write_text("".join([*lines[:3], '{"type":"event", broken\n', *lines[3:]]), "utf-8")
    report = verify_export_file(summary.path, log_key=keys.log).trail
    assert not report.ok and report.kind == "modified" and report.first_bad_seq == 3


@pytest.mark.postgres
def test_postgresql_commits_are_synchronous_whatever_the_url_or_server_default(pg_url: str) -> None:
    opened = open_audit_store(pg_url + "%20-csynchronous_commit%3Doff")  # the URL asks for async commits
    try:
        opened.append([make_event(0)])
        assert opened._conn().execute("SHOW synchronous_commit").fetchone() == ("on",)  # type: ignore[attr-defined]
    finally:
        opened.close()


def test_sqlite_commits_are_fsynced(sqlite_url: str) -> None:
    opened = open_audit_store(sqlite_url)
    try:
        conn = opened._conn()  # type: ignore[attr-defined]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL: the WAL is fsynced at every commit
    finally:
        opened.close()


def test_a_closed_store_opens_no_new_connection(store: AuditStore) -> None:
    fill(store, 3)
    store.close()
    seen: list[BaseException] = []

    def late_reader() -> None:  # e.g. a scheduled verification still running at shutdown
        try:
            store.head()
        except BaseException as exc:
            seen.append(exc)

    thread = threading.Thread(target=late_reader)
    thread.start()
    thread.join()
    assert len(seen) == 1 and isinstance(seen[0], Unavailable)
    assert store._conns == []  # type: ignore[attr-defined]
