"""Alembic environment: runs migrations on a sync connection to the configured URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

from genesis.storage.database import backend_of, sync_url
from genesis.storage.models import metadata

MIGRATION_LOCK_ID = 0x47454E31  # "GEN1": serialises upgrades started by several hosts at once

config = context.config
target_metadata = metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set"
    connectable = config.attributes.get("connection")
    if connectable is not None:
        _run(connectable, url)
        return
    engine = create_engine(sync_url(url), poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection, url)
    engine.dispose()


def _run(connection: object, url: str) -> None:
    is_pg = backend_of(url) == "postgresql"
    schema = config.attributes.get("schema")
    if is_pg:
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_ID})  # type: ignore[attr-defined]
        if schema:
            connection.execute(text(f'SET search_path TO "{schema}"'))  # type: ignore[attr-defined]
        connection.commit()  # type: ignore[attr-defined]
    try:
        context.configure(
            connection=connection,  # type: ignore[arg-type]
            target_metadata=target_metadata,
            render_as_batch=not is_pg,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if is_pg:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_ID})  # type: ignore[attr-defined]
            connection.commit()  # type: ignore[attr-defined]


run_migrations_online()
