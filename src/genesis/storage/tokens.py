"""Sessions (refresh-token families) and the access-token denylist in the relational store."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from genesis.storage.models import refresh_tokens, revoked_tokens, sessions
from genesis.storage.protocols import RefreshRecord, SessionRecord
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

    async def revoke_family(self, family_id: str, *, reason: str = "revoked") -> int:
        """End a session: its refresh tokens, and (through the session row) the access tokens issued from it."""
        now = now_us()
        async with self._engine.begin() as conn:
            await conn.execute(
                update(sessions).where(sessions.c.id == family_id, sessions.c.revoked_at_us.is_(None))
                .values(revoked_at_us=now, revoked_reason=reason)
            )
            result = await conn.execute(
                update(refresh_tokens)
                .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at_us.is_(None))
                .values(revoked_at_us=now)
            )
        return int(result.rowcount or 0)

    async def add_session(self, session: SessionRecord) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(insert(sessions).values(
                id=session.id, subject=session.subject, scope=session.scope, created_at_us=session.created_at_us,
                expires_at_us=session.expires_at_us, last_used_at_us=session.last_used_at_us,
                revoked_at_us=session.revoked_at_us, revoked_reason=session.revoked_reason,
                source_ip=session.source_ip, user_agent=session.user_agent,
            ))

    async def get_session(self, session_id: str) -> SessionRecord | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(sessions).where(sessions.c.id == session_id))).first()
        return _session(row) if row else None

    async def touch_session(self, session_id: str, used_at_us: int) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(update(sessions).where(sessions.c.id == session_id).values(last_used_at_us=used_at_us))

    async def list_sessions(self, subject: str, *, active_at_us: int) -> list[SessionRecord]:
        """The subject's sessions still running at ``active_at_us``, oldest first."""
        query = (select(sessions)
                 .where(sessions.c.subject == subject, sessions.c.revoked_at_us.is_(None),
                        sessions.c.expires_at_us > active_at_us)
                 .order_by(sessions.c.created_at_us, sessions.c.id))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_session(row) for row in rows]

    async def revoke_sessions(self, subject: str, *, reason: str) -> int:
        """End every running session of ``subject``; how many there were."""
        now = now_us()
        running = select(sessions.c.id).where(sessions.c.subject == subject, sessions.c.revoked_at_us.is_(None))
        async with self._engine.begin() as conn:
            await conn.execute(  # by family id: refresh_tokens is indexed on it, not on subject
                update(refresh_tokens)
                .where(refresh_tokens.c.family_id.in_(running),
                       refresh_tokens.c.revoked_at_us.is_(None))
                .values(revoked_at_us=now)
            )
            result = await conn.execute(
                update(sessions)
                .where(sessions.c.subject == subject, sessions.c.revoked_at_us.is_(None),
                       sessions.c.expires_at_us > now)
                .values(revoked_at_us=now, revoked_reason=reason)
            )
            await conn.execute(  # sessions past their end are ended already: mark them so without counting them
                update(sessions).where(sessions.c.subject == subject, sessions.c.revoked_at_us.is_(None))
                .values(revoked_at_us=now, revoked_reason="expired")
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


def _session(row: Any) -> SessionRecord:
    return SessionRecord(
        id=row.id, subject=row.subject, scope=row.scope, created_at_us=row.created_at_us,
        expires_at_us=row.expires_at_us, last_used_at_us=row.last_used_at_us, revoked_at_us=row.revoked_at_us,
        revoked_reason=row.revoked_reason, source_ip=row.source_ip, user_agent=row.user_agent,
    )
