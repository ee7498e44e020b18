"""The PostgreSQL audit table: monthly partitions, pruning, archive by partition, append-only triggers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, pool, text
from typer.testing import CliRunner

from genesis.audit import new_event
from genesis.cli.main import app
from genesis.config import get_settings
from genesis.storage.audit_sql import open_audit_store
from genesis.storage.database import sync_url
from genesis.storage.migrate import upgrade_database
from genesis.storage.partitions import add_months, month_start, partition_name
from genesis.timeutil import to_us

pytestmark = pytest.mark.postgres
runner = CliRunner()


@pytest.fixture
def migrated(pg_database_url: str) -> str:
    upgrade_database(pg_database_url)
    return pg_database_url


def _dsn(url: str) -> str:
    return sync_url(url).replace("postgresql+psycopg://", "postgresql://")


def test_time_range_query_touches_only_its_partitions(migrated: str) -> None:
    now = datetime.now(UTC)
    this_month = month_start(now.year, now.month)
    start, end = to_us(this_month), to_us(add_months(this_month, 1))
    engine = create_engine(sync_url(migrated), poolclass=pool.NullPool)
    with engine.connect() as conn:
        plan = "\n".join(r[0] for r in conn.execute(text(
            f"EXPLAIN SELECT * FROM audit_events WHERE occurred_at_us >= {start} AND occurred_at_us < {end} "
            "AND actor = 'user:x' ORDER BY seq LIMIT 100")))
        partitions = [r[0] for r in conn.execute(text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'audit_events'"))]
    engine.dispose()
    assert len(partitions) >= 5  # last month, this month, three ahead, default
    assert partition_name(this_month) in plan
    others = [p for p in partitions if p != partition_name(this_month)]
    assert not any(p in plan for p in others), plan


def test_append_only_triggers_on_postgresql(migrated: str) -> None:
    store = open_audit_store(migrated)
    store.append([new_event("test.event", actor="t", correlation_id="c")])
    store.close()
    with psycopg.connect(_dsn(migrated)) as conn:
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation):
            conn.execute("UPDATE audit_events SET actor = 'x'")
        conn.rollback()
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation):
            conn.execute("DELETE FROM audit_events")
        conn.rollback()
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation):
            conn.execute("TRUNCATE audit_events")
        conn.rollback()


@pytest.fixture
def cli_env(migrated: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("GENESIS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GENESIS_DATABASE_URL", migrated)
    monkeypatch.setenv("GENESIS_LOG_CONSOLE", "false")
    monkeypatch.setenv("GENESIS_AUDIT_RETENTION_DAYS", "0")
    get_settings.cache_clear()
    yield migrated
    get_settings.cache_clear()


def test_archiving_a_month_exports_it_then_drops_its_partition(cli_env: str) -> None:
    now = datetime.now(UTC)
    last_month = add_months(month_start(now.year, now.month), -1)
    store = open_audit_store(cli_env)
    old = [new_event("old.event", actor="t", correlation_id=f"old-{i}", occurred_at_us=to_us(last_month) + i)
           for i in range(5)]
    store.append(old)
    store.append([new_event("new.event", actor="t", correlation_id="new")])
    store.close()
    result = runner.invoke(app, ["audit", "archive", "--before", month_start(now.year, now.month).isoformat(),
                                 "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["archived"] == 5
    assert partition_name(last_month) in record["dropped_partitions"]
    assert Path(record["location"]).exists()
    verified = runner.invoke(app, ["audit", "verify", "--json"])
    assert verified.exit_code == 0, verified.output
    with psycopg.connect(_dsn(cli_env)) as conn:
        names = [r[0] for r in conn.execute("SELECT relname FROM pg_class WHERE relname LIKE 'audit_events_%'")]
    assert partition_name(last_month) not in names
