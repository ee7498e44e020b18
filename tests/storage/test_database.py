"""The service's engines commit durably whatever the server's defaults."""

from __future__ import annotations

import asyncio
import os

import pytest
from sqlalchemy import text

from genesis.storage.database import create_engine

PG = os.environ.get("GENESIS_TEST_DATABASE_URL", "")


@pytest.mark.postgres
@pytest.mark.skipif(not PG.startswith(("postgresql", "postgres:")),
                    reason="GENESIS_TEST_DATABASE_URL is not set to a PostgreSQL URL")
def test_postgresql_sessions_commit_synchronously_even_when_the_url_asks_otherwise() -> None:
    sep = "&" if "?" in PG else "?"
    engine = create_engine(f"{PG}{sep}options=-csynchronous_commit%3Doff")

    async def scenario() -> list[str]:
        seen = []
        for _ in range(2):  # a fresh connection, then the pooled one after a rollback
            async with engine.connect() as conn:
                seen.append((await conn.execute(text("SHOW synchronous_commit"))).scalar_one())
                await conn.rollback()
        await engine.dispose()
        return seen

    assert asyncio.run(scenario()) == ["on", "on"]


def test_sqlite_sessions_run_wal_with_full_sync(tmp_path: object) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/x.db")

    async def scenario() -> tuple[str, int]:
        async with engine.connect() as conn:
            mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
            sync = (await conn.execute(text("PRAGMA synchronous"))).scalar_one()
        await engine.dispose()
        return mode, sync

    assert asyncio.run(scenario()) == ("wal", 2)


@pytest.mark.postgres
@pytest.mark.skipif(not PG.startswith(("postgresql", "postgres:")),
                    reason="GENESIS_TEST_DATABASE_URL is not set to a PostgreSQL URL")
def test_a_stronger_synchronous_commit_is_kept() -> None:
    sep = "&" if "?" in PG else "?"
    engine = create_engine(f"{PG}{sep}options=-csynchronous_commit%3Dremote_apply")

    async def scenario() -> str:
        async with engine.connect() as conn:
            value = (await conn.execute(text("SHOW synchronous_commit"))).scalar_one()
        await engine.dispose()
        return str(value)

    assert asyncio.run(scenario()) == "remote_apply"
