"""The service's engines commit durably whatever the server's defaults."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from genesis.storage.database import create_engine
from tests.conftest import PG_SKIP, PG_URL

# The suite's one reachability check: skips with its reason when PostgreSQL is not set or not answering.
needs_postgresql = pytest.mark.skipif(PG_SKIP is not None, reason=PG_SKIP or "")


def _url_with(option: str) -> str:
    return f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-c{option}"


@pytest.mark.postgres
@needs_postgresql
def test_postgresql_sessions_commit_synchronously_even_when_the_url_asks_otherwise() -> None:
    engine = create_engine(_url_with("synchronous_commit%3Doff"))

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
@needs_postgresql
def test_a_stronger_synchronous_commit_is_kept() -> None:
    engine = create_engine(_url_with("synchronous_commit%3Dremote_apply"))

    async def scenario() -> str:
        async with engine.connect() as conn:
            value = (await conn.execute(text("SHOW synchronous_commit"))).scalar_one()
        await engine.dispose()
        return str(value)

    assert asyncio.run(scenario()) == "remote_apply"
