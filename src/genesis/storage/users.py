"""Users in the relational store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from genesis.errors import Conflict
from genesis.storage.models import users
from genesis.storage.protocols import UserRecord


def _user(row: Any) -> UserRecord:
    return UserRecord(row.id, row.username, row.password_hash, row.role, bool(row.disabled), row.token_generation)


class SqlUserStore:
    """UserStore over SQLAlchemy Core."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, *, username: str, password_hash: str, role: str) -> UserRecord:
        now = datetime.now(UTC)
        try:
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    insert(users).values(
                        username=username, password_hash=password_hash, role=role,
                        disabled=False, created_at=now, updated_at=now,
                    )
                )
                new_id = result.inserted_primary_key[0] if result.inserted_primary_key else 0
        except IntegrityError as exc:
            raise Conflict("a user with this name already exists") from exc
        return UserRecord(int(new_id), username, password_hash, role, False)

    async def get(self, username: str) -> UserRecord | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.username == username))).first()
        return _user(row) if row else None

    async def list(self) -> list[UserRecord]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(users).order_by(users.c.username))).all()
        return [_user(r) for r in rows]

    async def count(self) -> int:
        async with self._engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(users))).scalar_one())

    async def set_disabled(self, username: str, disabled: bool) -> bool:
        """Disable (ending every token: enabling again must not revive them) or enable a user."""
        if disabled:
            return await self._update(username, disabled=True, token_generation=users.c.token_generation + 1)
        return await self._update(username, disabled=False)

    async def set_password(self, username: str, password_hash: str) -> bool:
        """Set the password hash and end every token issued under the old password."""
        return await self._update(username, password_hash=password_hash,
                                  token_generation=users.c.token_generation + 1)

    async def set_role(self, username: str, role: str) -> bool:
        """Change the role and end every token issued under the old one."""
        return await self._update(username, role=role, token_generation=users.c.token_generation + 1)

    async def end_sessions(self, username: str) -> bool:
        """End every access and refresh token of the user at once (on every worker: each request reads it)."""
        return await self._update(username, token_generation=users.c.token_generation + 1)

    async def upgrade_password_hash(self, username: str, old_hash: str, new_hash: str) -> bool:
        """Replace ``old_hash`` by ``new_hash`` unless the password changed meanwhile (then nothing)."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(users).where(users.c.username == username, users.c.password_hash == old_hash)
                .values(password_hash=new_hash)
            )
        return bool(result.rowcount)

    async def _update(self, username: str, **values: Any) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(users).where(users.c.username == username).values(updated_at=datetime.now(UTC), **values)
            )
        return bool(result.rowcount)
