"""Refresh-token families and the access-token denylist in the relational store."""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from genesis.storage.models import refresh_tokens, revoked_tokens
from genesis.storage.protocols import RefreshRecord
from genesis.timeutil import now_us


class SqlTokenStore:
    """TokenStore over SQLAlchemy Core."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add_refresh(
        self, *, jti: str, family_id: str, subject: str, scope: str, expires_at_us: int
    ) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(refresh_tokens).values(
                    jti=jti, family_id=family_id, subject=subject, scope=scope,
                    expires_at_us=expires_at_us, created_at_us=now_us(),
                )
            )

    async def get_refresh(self, jti: str) -> RefreshRecord | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(refresh_tokens).where(refresh_tokens.c.jti == jti))).first()
        if row is None:
            return None
        return RefreshRecord(
            row.jti, row.family_id, row.subject, row.scope, row.expires_at_us, row.rotated_at_us, row.revoked_at_us
        )

    async def mark_rotated(self, jti: str) -> bool:
        """Atomically mark a refresh token used; False if it was already used (a replay)."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(refresh_tokens)
                .where(refresh_tokens.c.jti == jti, refresh_tokens.c.rotated_at_us.is_(None))
                .values(rotated_at_us=now_us())
            )
        return bool(result.rowcount)

    async def revoke_family(self, family_id: str) -> int:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(refresh_tokens)
                .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at_us.is_(None))
                .values(revoked_at_us=now_us())
            )
        return int(result.rowcount or 0)

    async def revoke_access(self, jti: str, expires_at_us: int) -> None:
        now = now_us()
        async with self._engine.begin() as conn:
            # Expired entries can never match a valid token again: prune as we go.
            await conn.execute(delete(revoked_tokens).where(revoked_tokens.c.expires_at_us < now))
            try:
                async with conn.begin_nested():
                    await conn.execute(
                        insert(revoked_tokens).values(jti=jti, expires_at_us=expires_at_us, revoked_at_us=now)
                    )
            except IntegrityError:
                pass  # already revoked: revocation is idempotent (RFC 7009)
