"""Migrations: the schema they build is the models' schema, and databases of earlier revisions upgrade."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, pool, text

from genesis.storage.database import sync_url
from genesis.storage.migrate import upgrade_database
from genesis.storage.models import metadata


def _engine(url: str) -> Any:
    return create_engine(sync_url(url), poolclass=pool.NullPool)


def _partition(diff: Any) -> bool:
    """A difference about PostgreSQL's monthly audit partitions, which the application makes (not the models)."""
    item = diff[1] if isinstance(diff, tuple) else diff[0][1]
    table = getattr(item, "table", item)
    return str(getattr(table, "name", "")).startswith("audit_events_")


def test_the_migrations_build_exactly_the_models_schema(database_url: str) -> None:
    upgrade_database(database_url)
    engine = _engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = [d for d in compare_metadata(context, metadata) if not _partition(d)]
    finally:
        engine.dispose()
    assert diff == []


def test_a_database_with_sessions_from_before_the_upgrade_keeps_them_with_an_absolute_end(database_url: str) -> None:
    upgrade_database(database_url, revision="0001")
    engine = _engine(database_url)
    day_us = 86_400_000_000
    try:
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO users (username, password_hash, role, disabled, created_at, updated_at) "
                "VALUES ('old', 'x', 'trader', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
            rows = [("r1", "live", 1 * day_us, None, None), ("r2", "live", 2 * day_us, 2 * day_us, None),
                    ("r3", "dead", 3 * day_us, None, 4 * day_us)]
            for jti, family, created, rotated, revoked in rows:
                conn.execute(text(
                    "INSERT INTO refresh_tokens (jti, family_id, subject, scope, expires_at_us, rotated_at_us, "
                    "revoked_at_us, created_at_us) VALUES (:j, :f, 'user:old', 'prices:read', :e, :rot, :rev, :c)"),
                    {"j": jti, "f": family, "e": created + 7 * day_us, "rot": rotated, "rev": revoked, "c": created})
        upgrade_database(database_url)
        with engine.connect() as conn:
            sessions = conn.execute(text(
                "SELECT id, subject, created_at_us, expires_at_us, last_used_at_us, revoked_at_us, revoked_reason "
                "FROM sessions ORDER BY id")).all()
            generation = conn.execute(text("SELECT token_generation FROM users WHERE username = 'old'")).scalar()
    finally:
        engine.dispose()
    assert [tuple(s) for s in sessions] == [
        ("dead", "user:old", 3 * day_us, 33 * day_us, 3 * day_us, 4 * day_us, "revoked"),
        ("live", "user:old", 1 * day_us, 31 * day_us, 2 * day_us, None, None),
    ]
    assert generation == 0
