"""The transactional outbox: webhook deliveries written in the transaction of what they announce.

:func:`write_outbox` runs inside the producer's transaction (a price ingestion on the raw
``sqlite3`` connection, or any SQLAlchemy connection through ``run_sync``): it reads the
enabled endpoints, keeps those that follow each notice's topic and may see it, and inserts one
``webhook_deliveries`` row per (notice, endpoint). Both commit or neither does.

Outbox size: an endpoint with ``limit`` undelivered deliveries takes no more. It is disabled
(``disabled_reason = 'outbox-full'``) in the same transaction rather than silently dropping
what does not fit: a receiver that is down or too slow for that long must be looked at, and its
backlog is kept for when it is enabled again. The caller records the audit event after commit.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from sqlalchemy import text
from sqlalchemy.engine import Connection

from genesis.push.notice import Notice, deliverable
from genesis.storage.protocols import Outboxed

OUTBOX_FULL = "outbox-full"

_ENDPOINTS = "SELECT id, owner, scopes, topics FROM webhook_endpoints WHERE enabled = :enabled"
_PENDING = "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = :endpoint AND status = 'pending'"
_DISABLE = ("UPDATE webhook_endpoints SET enabled = :enabled, disabled_reason = :reason, updated_at_us = :now "
            "WHERE id = :endpoint")
_INSERT = (
    "INSERT INTO webhook_deliveries (msg_id, endpoint_id, topic, type, body, status, attempts, created_at_us, "
    "next_attempt_at_us) VALUES (:msg_id, :endpoint, :topic, :type, :body, 'pending', 0, :now, :now)"
)


class Runner(Protocol):
    """Runs SQL with ``:name`` parameters on the connection of the current transaction."""

    def rows(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]: ...
    def many(self, sql: str, params: Sequence[Mapping[str, Any]]) -> None: ...


class SqliteRunner:
    """A :class:`Runner` over a stdlib ``sqlite3`` connection (which takes ``:name`` parameters natively)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def rows(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        return list(self._conn.execute(sql, params).fetchall())

    def many(self, sql: str, params: Sequence[Mapping[str, Any]]) -> None:
        self._conn.executemany(sql, params)


class SqlAlchemyRunner:
    """A :class:`Runner` over a synchronous SQLAlchemy connection (``AsyncConnection.run_sync``)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def rows(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._conn.execute(text(sql), dict(params)).all()]

    def many(self, sql: str, params: Sequence[Mapping[str, Any]]) -> None:
        if params:
            self._conn.execute(text(sql), [dict(p) for p in params])


@dataclass(frozen=True, slots=True)
class _Endpoint:
    id: str
    subject: str
    scopes: frozenset[str]
    topics: tuple[str, ...]


def new_msg_id() -> str:
    """A delivery's ``webhook-id``: ``msg_`` + 128 random bits, the same on every attempt."""
    return "msg_" + secrets.token_urlsafe(16)


def write_outbox(run: Runner, notices: Sequence[Notice], *, limit: int, now_us: int) -> Outboxed:
    """Insert one delivery per (notice, endpoint that receives it), in the caller's transaction."""
    if not notices:
        return Outboxed()
    endpoints = [_Endpoint(row[0], row[1], frozenset(row[2].split()), tuple(orjson.loads(row[3])))
                 for row in run.rows(_ENDPOINTS, {"enabled": True})]
    rows = 0
    disabled: list[str] = []
    for endpoint in endpoints:
        wanted = [n for n in notices if deliverable(endpoint, endpoint.topics, n)]
        if not wanted:
            continue
        pending = int(run.rows(_PENDING, {"endpoint": endpoint.id})[0][0])
        if pending + len(wanted) > limit:
            run.many(_DISABLE, [{"enabled": False, "reason": OUTBOX_FULL, "now": now_us, "endpoint": endpoint.id}])
            disabled.append(endpoint.id)
            continue
        run.many(_INSERT, [{"msg_id": new_msg_id(), "endpoint": endpoint.id, "topic": n.topic, "type": n.type,
                            "body": n.webhook_body().decode(), "now": now_us} for n in wanted])
        rows += len(wanted)
    return Outboxed(rows, disabled)


def enqueue_for_endpoint(
    run: Runner, endpoint_id: str, notices: Sequence[Notice], *, limit: int, now_us: int,
) -> tuple[int, bool]:
    """Insert deliveries of ``notices`` for one endpoint (the audit trail's cursor); (rows, disabled for space)."""
    if not notices:
        return 0, False
    pending = int(run.rows(_PENDING, {"endpoint": endpoint_id})[0][0])
    if pending + len(notices) > limit:
        run.many(_DISABLE, [{"enabled": False, "reason": OUTBOX_FULL, "now": now_us, "endpoint": endpoint_id}])
        return 0, True
    run.many(_INSERT, [{"msg_id": new_msg_id(), "endpoint": endpoint_id, "topic": n.topic, "type": n.type,
                        "body": n.webhook_body().decode(), "now": now_us} for n in notices])
    return len(notices), False
