"""Fixtures of the audit suite: stores on SQLite and (when configured) PostgreSQL, keys, settings."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from genesis.audit.checkpoints import CheckpointSigner, load_or_create_signing_key
from genesis.audit.config import reset as reset_audit_config
from genesis.audit.heads import HeadMaker, log_signer
from genesis.audit.logging import active_logging
from genesis.audit.redaction import configure_redactor
from genesis.audit.store import AuditStore
from genesis.audit.trail import TrustedKeys
from genesis.config import Settings
from genesis.storage.audit_sql import open_audit_store, postgresql_append_only_ddl, sqlite_append_only_ddl
from genesis.storage.models import metadata

PG_ENV = os.environ.get("GENESIS_TEST_DATABASE_URL", "")
PG_REASON = "GENESIS_TEST_DATABASE_URL not set to a PostgreSQL URL"


def create_sqlite_db(path: Path) -> str:
    """A SQLite file with the audit tables and the append-only triggers; returns its URL."""
    url = f"sqlite:///{path}"
    engine = sqlalchemy.create_engine(url)
    metadata.create_all(engine)
    with engine.begin() as conn:
        for ddl in sqlite_append_only_ddl():
            conn.exec_driver_sql(ddl)
    engine.dispose()
    return url


def _pg_base() -> str:
    _, _, rest = PG_ENV.partition("://")
    return f"postgresql://{rest}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return create_sqlite_db(tmp_path / "audit.db")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a schema created for this test and dropped after."""
    if not PG_ENV.startswith(("postgresql", "postgres:")):
        pytest.skip(PG_REASON)
    import psycopg

    base = _pg_base()
    schema = f"audit_t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}options=-csearch_path%3D{schema}"
    try:
        engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        metadata.create_all(engine)
        with engine.begin() as conn:
            for ddl in postgresql_append_only_ddl():
                conn.exec_driver_sql(ddl)
        engine.dispose()
        yield url
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    """Each backend in turn (PostgreSQL skips unless GENESIS_TEST_DATABASE_URL names one)."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[AuditStore]:
    opened = open_audit_store(store_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def signer(tmp_path: Path) -> CheckpointSigner:
    """The signer of chain checkpoints (trails from before the tree); the same key as :func:`heads`."""
    return CheckpointSigner.from_data_dir(tmp_path / "keys")


@pytest.fixture
def heads(store: AuditStore, tmp_path: Path) -> HeadMaker:
    """The head maker of ``store``, signing with the key of :func:`signer`, its head log in the temp dir."""
    key = load_or_create_signing_key(tmp_path / "keys")
    return HeadMaker(store, log_signer(key, "genesis.test/audit"), head_log=tmp_path / "audit-heads.log")


@pytest.fixture
def keys(heads: HeadMaker) -> TrustedKeys:
    return TrustedKeys(heads.verifier)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"data_dir": tmp_path / "data", "log_console": False}
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return factory


@pytest.fixture(autouse=True)
def _reset_audit_globals() -> Iterator[None]:
    """Each test starts and ends without a configured runtime or custom redactor."""
    yield
    active = active_logging()
    if active is not None:
        active.close()
    reset_audit_config()
    configure_redactor(())


def raw_sql(url: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Run SQL with a plain connection of the app's role, outside the store (tamper/attack helper)."""
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            with conn:
                rows = conn.execute(sql, params).fetchall()
        finally:
            conn.close()
        return rows
    import psycopg

    with psycopg.connect(url, autocommit=True) as pg:
        cur = pg.execute(sql.replace("?", "%s"), params)
        return cur.fetchall() if cur.description else []


def drop_append_only_triggers(url: str) -> None:
    """What an attacker with DDL rights would do first (for every audit table)."""
    if url.startswith("sqlite"):
        for name in ("audit_events_no_update", "audit_events_delete_archived_only", "audit_checkpoints_no_delete",
                     "audit_heads_no_delete", "audit_heads_no_update", "audit_tree_no_delete", "audit_tree_no_update"):
            raw_sql(url, f"DROP TRIGGER IF EXISTS {name}")
    else:
        for table in ("audit_events", "audit_checkpoints", "audit_heads", "audit_tree"):
            raw_sql(url, f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
