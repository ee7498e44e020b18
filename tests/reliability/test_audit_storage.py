"""The application cannot rewrite its own audit trail: with its own engine and connections, UPDATE, DELETE and
TRUNCATE of audit rows (events, the Merkle tree, signed heads) fail in the database (SQLite and PostgreSQL
triggers), and the trail still verifies.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from genesis.api.app import create_app
from genesis.config import Settings
from tests.conftest import bearer, token_for

pytestmark = pytest.mark.timeout(120)

TAMPERING = [
    "UPDATE audit_events SET outcome = 'success', actor = 'user:nobody'",
    "UPDATE audit_events SET hash = prev_hash WHERE seq = (SELECT MAX(seq) FROM audit_events)",
    "DELETE FROM audit_events",
    "DELETE FROM audit_events WHERE seq = (SELECT MAX(seq) FROM audit_events)",
    "UPDATE audit_heads SET note = 'forged'",
    "DELETE FROM audit_heads",
    "UPDATE audit_tree SET nodes = frontier",
    "DELETE FROM audit_tree WHERE first_leaf > 0",
]
PG_ONLY = ["TRUNCATE audit_events", "TRUNCATE audit_checkpoints", "TRUNCATE audit_heads", "TRUNCATE audit_tree",
           "TRUNCATE audit_events CASCADE"]


def _snapshot(client: TestClient) -> list[Any]:
    async def read() -> list[Any]:
        engine = client.app.state.runtime.engine  # type: ignore[attr-defined]
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT seq, hash, outcome, actor FROM audit_events ORDER BY seq"))
            heads = await conn.execute(text("SELECT size, note FROM audit_heads ORDER BY size"))
            return [list(rows.all()), list(heads.all())]

    return client.portal.call(read)  # type: ignore[union-attr]


def _attempt(client: TestClient, statement: str) -> BaseException | None:
    async def run() -> BaseException | None:
        engine = client.app.state.runtime.engine  # type: ignore[attr-defined]
        try:
            async with engine.begin() as conn:
                await conn.execute(text(statement))
        except Exception as exc:
            return exc
        return None

    return client.portal.call(run)  # type: ignore[union-attr]


def test_the_app_cannot_update_or_delete_audit_rows_with_its_own_connection(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        admin = bearer(token_for(client)["access_token"])
        for i in range(5):
            client.get("/me", headers={**admin, "X-Request-ID": f"append-only-{i}"})
        client.post("/token", data={"grant_type": "password", "username": "admin", "password": "wrong-password"})
        assert client.post("/audit/heads", headers=admin).status_code == 200  # a signed head to tamper with
        before = _snapshot(client)
        assert len(before[0]) >= 8 and len(before[1]) >= 1
        statements = TAMPERING + (PG_ONLY if not settings.is_sqlite else [])
        for statement in statements:
            refused = _attempt(client, statement)
            assert refused is not None, f"the database accepted: {statement}"
            assert "append-only" in str(refused), (statement, refused)
        after = _snapshot(client)
        assert after[0][: len(before[0])] == before[0]
        assert after[1][: len(before[1])] == before[1]
        report = client.get("/audit/verify", headers=admin).json()
        assert report["ok"] is True, report


def test_another_sqlite_connection_cannot_rewrite_the_trail_either(make_settings: Any, tmp_path: Any) -> None:
    settings = make_settings(database_url=f"sqlite:///{tmp_path / 'trail.db'}")
    with TestClient(create_app(settings)) as client:
        assert client.post("/audit/heads", headers=bearer(token_for(client)["access_token"])).status_code == 200
        # A second process with the file (a script, the sqlite3 shell): the triggers live in the file.
        with sqlite3.connect(tmp_path / "trail.db") as raw:
            for statement in TAMPERING:
                with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                    raw.execute(statement)
            raw.rollback()
        admin = bearer(token_for(client)["access_token"])
        assert client.get("/audit/verify", headers=admin).json()["ok"] is True
