"""Machine clients (OAuth2 client credentials) in the relational store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from genesis.errors import Conflict
from genesis.storage.models import clients
from genesis.storage.protocols import ClientRecord


def _client(row: Any) -> ClientRecord:
    return ClientRecord(row.id, row.client_id, row.secret_hash, row.role, row.description, bool(row.revoked),
                        row.token_generation)


class SqlClientStore:
    """ClientStore over SQLAlchemy Core."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, *, client_id: str, secret_hash: str, role: str, description: str) -> ClientRecord:
        try:
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    insert(clients).values(
                        client_id=client_id, secret_hash=secret_hash, role=role,
                        description=description, revoked=False, created_at=datetime.now(UTC),
                    )
                )
                new_id = result.inserted_primary_key[0] if result.inserted_primary_key else 0
        except IntegrityError as exc:
            raise Conflict("a client with this id already exists") from exc
        return ClientRecord(int(new_id), client_id, secret_hash, role, description, False)

    async def get(self, client_id: str) -> ClientRecord | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(clients).where(clients.c.client_id == client_id))).first()
        return _client(row) if row else None

    async def list(self) -> list[ClientRecord]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(clients).order_by(clients.c.client_id))).all()
        return [_client(r) for r in rows]

    async def upgrade_secret_hash(self, client_id: str, old_hash: str, new_hash: str) -> bool:
        """Replace ``old_hash`` by ``new_hash`` unless the secret changed meanwhile (then nothing)."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(clients).where(clients.c.client_id == client_id, clients.c.secret_hash == old_hash)
                .values(secret_hash=new_hash)
            )
        return bool(result.rowcount)

    async def revoke(self, client_id: str) -> bool:
        """Revoke the client and end its tokens (a generation bump, so that nothing revives them)."""
        return await self._update(client_id, revoked=True, token_generation=clients.c.token_generation + 1)

    async def end_sessions(self, client_id: str) -> bool:
        """End every token of the client at once."""
        return await self._update(client_id, token_generation=clients.c.token_generation + 1)

    async def _update(self, client_id: str, **values: Any) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(update(clients).where(clients.c.client_id == client_id).values(**values))
        return bool(result.rowcount)
