"""Webhook endpoints, deliveries and attempts in the relational store, and the relay's leases.

Leases, not locks, across HTTP: the relay leases an *endpoint* (``lease_owner``,
``lease_until_us``) and sends that endpoint's deliveries in order while it holds the lease.
On PostgreSQL the leasing ``UPDATE`` picks endpoints ``FOR UPDATE SKIP LOCKED``, so relays on
several workers share the endpoints without waiting on each other; on SQLite the write lock
serialises the lease (and one relay runs per data directory, see ``services.webhook_relay``).
A relay that dies leaves its lease to expire; another takes the endpoint over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Row, and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from genesis.audit import AuditEvent
from genesis.push.notice import Notice
from genesis.storage.models import audit_events, webhook_attempts, webhook_deliveries, webhook_endpoints
from genesis.storage.outbox import SqlAlchemyRunner, enqueue_for_endpoint, write_outbox
from genesis.storage.protocols import Outboxed


@dataclass(frozen=True, slots=True)
class EndpointRecord:
    id: str
    owner: str
    scopes: frozenset[str]
    url: str
    description: str
    topics: tuple[str, ...]
    secret: str
    previous_secret: str | None
    previous_secret_until_us: int | None
    enabled: bool
    disabled_reason: str | None
    audit_cursor: int
    paused_until_us: int | None
    created_at_us: int
    updated_at_us: int

    @property
    def subject(self) -> str:  # the endpoint sees what its owner's scopes allow (push.topics.Viewer)
        return self.owner

    def secrets(self, now_us: int) -> list[str]:
        """The secrets to sign with now: the current one, and the previous one during a rotation."""
        out = [self.secret]
        if self.previous_secret and (self.previous_secret_until_us or 0) > now_us:
            out.append(self.previous_secret)
        return out


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    id: int
    msg_id: str
    endpoint_id: str
    topic: str
    type: str
    body: str
    status: str
    attempts: int
    created_at_us: int
    next_attempt_at_us: int
    first_attempt_at_us: int | None
    last_attempt_at_us: int | None
    delivered_at_us: int | None
    last_status: int | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    attempted_at_us: int
    verdict: str
    status: int | None
    duration_ms: float
    error: str | None
    detail: str
    excerpt: str


def _endpoint(row: Row[Any]) -> EndpointRecord:
    return EndpointRecord(
        id=row.id, owner=row.owner, scopes=frozenset(row.scopes.split()), url=row.url, description=row.description,
        topics=tuple(orjson.loads(row.topics)), secret=row.secret, previous_secret=row.previous_secret,
        previous_secret_until_us=row.previous_secret_until_us, enabled=bool(row.enabled),
        disabled_reason=row.disabled_reason, audit_cursor=int(row.audit_cursor), paused_until_us=row.paused_until_us,
        created_at_us=row.created_at_us, updated_at_us=row.updated_at_us,
    )


def _delivery(row: Row[Any]) -> DeliveryRecord:
    return DeliveryRecord(**{c: getattr(row, c) for c in DeliveryRecord.__slots__})  # type: ignore[arg-type]


class SqlWebhookStore:
    """Endpoints, the outbox and attempts over SQLAlchemy Core (SQLite and PostgreSQL)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"

    # --- endpoints ----------------------------------------------------------------------------
    async def create_endpoint(self, record: EndpointRecord, *, max_endpoints: int) -> bool:
        """Insert ``record`` (its audit cursor at the current end of the trail); False when at ``max_endpoints``."""
        async with self._engine.begin() as conn:
            count = (await conn.execute(select(func.count()).select_from(webhook_endpoints))).scalar_one()
            if count >= max_endpoints:
                return False
            head = (await conn.execute(select(func.max(audit_events.c.seq)))).scalar() or 0
            await conn.execute(insert(webhook_endpoints).values(
                id=record.id, owner=record.owner, scopes=" ".join(sorted(record.scopes)), url=record.url,
                description=record.description, topics=orjson.dumps(list(record.topics)).decode(),
                secret=record.secret, previous_secret=None, previous_secret_until_us=None, enabled=True,
                disabled_reason=None, audit_cursor=head, paused_until_us=None, lease_owner=None, lease_until_us=None,
                created_at_us=record.created_at_us, updated_at_us=record.updated_at_us,
            ))
        return True

    async def get_endpoint(self, endpoint_id: str) -> EndpointRecord | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id))).first()
        return _endpoint(row) if row else None

    async def list_endpoints(self) -> list[EndpointRecord]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(webhook_endpoints).order_by(webhook_endpoints.c.created_at_us))).all()
        return [_endpoint(r) for r in rows]

    async def update_endpoint(self, endpoint_id: str, **values: Any) -> EndpointRecord | None:
        """Set columns of an endpoint (``topics`` as a list); None when it does not exist."""
        if "topics" in values:
            values["topics"] = orjson.dumps(list(values["topics"])).decode()
        if "scopes" in values:
            values["scopes"] = " ".join(sorted(values["scopes"]))
        async with self._engine.begin() as conn:
            result = await conn.execute(update(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
                                        .values(**values))
            if result.rowcount == 0:
                return None
            row = (await conn.execute(select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id))).one()
        return _endpoint(row)

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        async with self._engine.begin() as conn:
            ids = select(webhook_deliveries.c.id).where(webhook_deliveries.c.endpoint_id == endpoint_id)
            await conn.execute(delete(webhook_attempts).where(webhook_attempts.c.delivery_id.in_(ids)))
            await conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.endpoint_id == endpoint_id))
            result = await conn.execute(delete(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id))
        return bool(result.rowcount)

    # --- deliveries -----------------------------------------------------------------------------
    async def add_notices(self, notices: Sequence[Notice], *, limit: int, now_us: int) -> Outboxed:
        """Write deliveries of ``notices`` in a transaction of their own (for notices made outside one)."""
        async with self._engine.begin() as conn:

            def outbox(sync: Connection) -> Outboxed:
                return write_outbox(SqlAlchemyRunner(sync), notices, limit=limit, now_us=now_us)

            return await conn.run_sync(outbox)

    async def list_deliveries(
        self, endpoint_id: str, *, status: str | None, limit: int, before_id: int | None,
    ) -> list[DeliveryRecord]:
        """Newest first."""
        query = select(webhook_deliveries).where(webhook_deliveries.c.endpoint_id == endpoint_id)
        if status is not None:
            query = query.where(webhook_deliveries.c.status == status)
        if before_id is not None:
            query = query.where(webhook_deliveries.c.id < before_id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query.order_by(webhook_deliveries.c.id.desc()).limit(limit))).all()
        return [_delivery(r) for r in rows]

    async def get_delivery(self, endpoint_id: str, msg_id: str) -> tuple[DeliveryRecord, list[AttemptRecord]] | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(webhook_deliveries).where(and_(
                webhook_deliveries.c.endpoint_id == endpoint_id, webhook_deliveries.c.msg_id == msg_id)))).first()
            if row is None:
                return None
            attempts = (await conn.execute(select(webhook_attempts).where(webhook_attempts.c.delivery_id == row.id)
                                           .order_by(webhook_attempts.c.id))).all()
        return _delivery(row), [AttemptRecord(a.attempted_at_us, a.verdict, a.status, a.duration_ms, a.error,
                                              a.detail, a.excerpt) for a in attempts]

    async def attempts_of(self, delivery_ids: Sequence[int]) -> dict[int, list[AttemptRecord]]:
        out: dict[int, list[AttemptRecord]] = {i: [] for i in delivery_ids}
        if not delivery_ids:
            return out
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(webhook_attempts).where(
                webhook_attempts.c.delivery_id.in_(list(delivery_ids))).order_by(webhook_attempts.c.id))).all()
        for a in rows:
            out[a.delivery_id].append(AttemptRecord(a.attempted_at_us, a.verdict, a.status, a.duration_ms, a.error,
                                                    a.detail, a.excerpt))
        return out

    async def redeliver(self, endpoint_id: str, msg_id: str, *, now_us: int) -> bool:
        """Queue a delivery again from now, with a fresh retry schedule (same ``webhook-id``)."""
        async with self._engine.begin() as conn:
            result = await conn.execute(update(webhook_deliveries).where(and_(
                webhook_deliveries.c.endpoint_id == endpoint_id, webhook_deliveries.c.msg_id == msg_id,
            )).values(status="pending", next_attempt_at_us=now_us, first_attempt_at_us=None, delivered_at_us=None))
            await conn.execute(update(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
                               .values(paused_until_us=None))
        return bool(result.rowcount)

    # --- the relay --------------------------------------------------------------------------------
    async def lease_endpoints(self, owner: str, *, now_us: int, lease_us: int, limit: int) -> list[EndpointRecord]:
        """Lease up to ``limit`` enabled endpoints that have work (due deliveries or audit news) and no live lease."""
        e, d = webhook_endpoints, webhook_deliveries
        has_due = exists().where(and_(d.c.endpoint_id == e.c.id, d.c.status == "pending"))
        follows_audit = e.c.topics.like('%"audit%')  # a JSON list holding "audit", "audit.heads" or "audit.verify"
        audit_news = and_(follows_audit, select(func.max(audit_events.c.seq)).scalar_subquery() > e.c.audit_cursor)
        candidates = (
            select(e.c.id)
            .where(e.c.enabled.is_(True))
            .where(or_(e.c.lease_until_us.is_(None), e.c.lease_until_us < now_us))
            .where(or_(e.c.paused_until_us.is_(None), e.c.paused_until_us <= now_us, audit_news))
            .where(or_(has_due, audit_news))
            .order_by(e.c.id)
            .limit(limit)
        )
        if self._postgres:
            candidates = candidates.with_for_update(skip_locked=True, of=e)
        async with self._engine.begin() as conn:
            ids = [r[0] for r in (await conn.execute(candidates)).all()]
            if not ids:
                return []
            await conn.execute(update(e).where(e.c.id.in_(ids)).values(lease_owner=owner,
                                                                       lease_until_us=now_us + lease_us))
            rows = (await conn.execute(select(e).where(e.c.id.in_(ids)).order_by(e.c.id))).all()
        return [_endpoint(r) for r in rows]

    async def renew_lease(self, endpoint_id: str, owner: str, *, until_us: int) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(update(webhook_endpoints).where(and_(
                webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.lease_owner == owner,
            )).values(lease_until_us=until_us))
        return bool(result.rowcount)

    async def release(self, endpoint_id: str, owner: str, *, paused_until_us: int | None) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(update(webhook_endpoints).where(and_(
                webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.lease_owner == owner,
            )).values(lease_owner=None, lease_until_us=None, paused_until_us=paused_until_us))

    async def audit_after(self, seq: int, *, limit: int) -> list[AuditEvent]:
        """Committed audit events after ``seq``, ascending (the outbox of the audit topics)."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(audit_events).where(audit_events.c.seq > seq)
                                       .order_by(audit_events.c.seq).limit(limit))).all()
        return [AuditEvent.from_row(tuple(r)) for r in rows]

    async def advance_audit(
        self, endpoint_id: str, *, old_cursor: int, new_cursor: int, notices: Sequence[Notice], limit: int,
        now_us: int,
    ) -> tuple[int, bool]:
        """Write the deliveries of audit ``notices`` and move the endpoint's cursor, atomically; (rows, disabled)."""
        async with self._engine.begin() as conn:
            moved = await conn.execute(update(webhook_endpoints).where(and_(
                webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.audit_cursor == old_cursor,
            )).values(audit_cursor=new_cursor))
            if moved.rowcount == 0:
                return 0, False  # deleted, or moved by someone else meanwhile

            def outbox(sync: Connection) -> tuple[int, bool]:
                return enqueue_for_endpoint(SqlAlchemyRunner(sync), endpoint_id, notices, limit=limit, now_us=now_us)

            return await conn.run_sync(outbox)

    async def pending(self, endpoint_id: str, *, limit: int) -> list[DeliveryRecord]:
        """The endpoint's undelivered deliveries, oldest first (they are sent in this order)."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(webhook_deliveries).where(and_(
                webhook_deliveries.c.endpoint_id == endpoint_id, webhook_deliveries.c.status == "pending",
            )).order_by(webhook_deliveries.c.id).limit(limit))).all()
        return [_delivery(r) for r in rows]

    async def record_attempt(
        self, delivery: DeliveryRecord, attempt: AttemptRecord, *, status: str, next_attempt_at_us: int,
    ) -> None:
        """Store one attempt and the delivery's new state together."""
        await self.record_attempts([(delivery, attempt, status, next_attempt_at_us)])

    async def record_attempts(self, outcomes: Sequence[tuple[DeliveryRecord, AttemptRecord, str, int]]) -> None:
        """Store attempts and their deliveries' new states (status, next attempt) in one transaction."""
        if not outcomes:
            return
        async with self._engine.begin() as conn:
            await conn.execute(insert(webhook_attempts), [{
                "delivery_id": d.id, "attempted_at_us": a.attempted_at_us, "verdict": a.verdict, "status": a.status,
                "duration_ms": a.duration_ms, "error": a.error, "detail": a.detail[:256], "excerpt": a.excerpt[:1024],
            } for d, a, _, _ in outcomes])
            for delivery, attempt, status, next_attempt_at_us in outcomes:
                values: dict[str, Any] = {
                    "status": status, "attempts": delivery.attempts + 1, "next_attempt_at_us": next_attempt_at_us,
                    "last_attempt_at_us": attempt.attempted_at_us, "last_status": attempt.status,
                    "last_error": attempt.error,
                    "first_attempt_at_us": delivery.first_attempt_at_us or attempt.attempted_at_us,
                }
                if status == "delivered":
                    values["delivered_at_us"] = attempt.attempted_at_us
                await conn.execute(update(webhook_deliveries).where(webhook_deliveries.c.id == delivery.id)
                                   .values(**values))

    async def disable(self, endpoint_id: str, *, reason: str, now_us: int) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(update(webhook_endpoints).where(and_(
                webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.enabled.is_(True),
            )).values(enabled=False, disabled_reason=reason, updated_at_us=now_us, lease_owner=None,
                      lease_until_us=None))
        return bool(result.rowcount)
