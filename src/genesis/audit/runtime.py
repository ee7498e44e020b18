"""The process's current audit runtime and the original convenience API.

``setup_logging`` registers the writer and store here; tests may call
:func:`configure_audit` directly. ``log_action`` and ``get_audit_logs`` use them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from genesis.audit.context import bind_correlation, correlation_id_var, new_correlation_id, request_id_var, user_var
from genesis.audit.events import new_event
from genesis.audit.levels import AUDIT, level_name, parse_level
from genesis.audit.store import AuditStore
from genesis.audit.writer import AuditWriter, Ticket
from genesis.errors import InvalidInput, Unavailable

if TYPE_CHECKING:
    from genesis.audit.logging import LoggingRuntime

_writer: AuditWriter | None = None
_store: AuditStore | None = None
_runtime: LoggingRuntime | None = None
_EVENT_FIELDS = frozenset({"source_ip", "user_agent", "method", "path", "status", "request_id", "occurred_at_us"})
audit_logger = logging.getLogger("genesis.audit")


def configure_audit(writer: AuditWriter | None, store: AuditStore | None) -> None:
    """Set the writer and store behind ``log_action`` / ``get_audit_logs`` (None clears)."""
    global _writer, _store
    _writer, _store = writer, store


def current_writer() -> AuditWriter | None:
    return _writer


def current_store() -> AuditStore | None:
    return _store


def current_runtime() -> LoggingRuntime | None:
    return _runtime


def set_current_runtime(rt: LoggingRuntime | None) -> None:
    global _runtime
    _runtime = rt


def log_action(
    level: int | str,
    message: str,
    user: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    *,
    action: str | None = None,
    outcome: str = "success",
    wait: bool = False,
    correlation_id: str | None = None,
    **fields: Any,
) -> Ticket | None:
    """Write a log line and, for AUDIT level or an explicit ``action``, an audit event.

    The user defaults to the request's user, else ``"system"``. Without a bound or
    given correlation id a new one is started for this event. Extra keyword fields
    that are audit columns (``source_ip``, ``path``, ``status``...) fill them; others
    join the metadata.

    Returns:
        The ticket of the audit event (already committed when ``wait``), or None
        when only a log line was written.

    Raises:
        Unavailable: an audit event was asked for but no writer is configured, or
            (with ``wait``) the event could not be committed.
    """
    levelno = parse_level(level)
    actor = user or user_var.get() or "system"
    cid = correlation_id or correlation_id_var.get() or new_correlation_id()
    columns = {k: v for k, v in fields.items() if k in _EVENT_FIELDS}
    meta = dict(metadata or {})
    meta.update({k: v for k, v in fields.items() if k not in _EVENT_FIELDS})
    audited = levelno == AUDIT or action is not None
    with bind_correlation(cid):
        audit_logger.log(
            levelno,
            message,
            extra={
                "action": action or ("audit.log" if audited else None),
                "outcome": outcome,
                "actor": actor,
                "metadata": meta,
            },
        )
    if not audited:
        return None
    writer = _writer
    if writer is None:
        raise Unavailable("the audit trail is not configured (call setup_logging with a store)", component="audit")
    columns.setdefault("request_id", request_id_var.get())
    event = new_event(
        action or "audit.log",
        actor=actor,
        outcome=outcome,
        level=level_name(levelno) if levelno != AUDIT else "AUDIT",
        message=message,
        metadata=meta,
        correlation_id=cid,
        **columns,
    )
    ticket = writer.submit(event)
    if wait:
        ticket.wait(30.0)
    return ticket


def _bound_us(value: date | datetime | str, *, end: bool) -> int:
    """UTC microseconds of a query bound; a date-only end means the next midnight."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            raise InvalidInput(f"not an ISO 8601 date or datetime: {value!r}") from None
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        us = int(moment.timestamp()) * 1_000_000 + moment.microsecond
        return us + 1 if end else us  # a datetime end is inclusive
    day = datetime.combine(value + timedelta(days=1) if end else value, time.min, tzinfo=UTC)
    return int(day.timestamp()) * 1_000_000


def get_audit_logs(
    start_date: date | datetime | str,
    end_date: date | datetime | str,
    *,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Audit events that occurred in ``[start, end]`` as dicts, oldest first.

    Dates are UTC days: a date-only ``end_date`` includes that whole day. Naive
    datetimes are taken as UTC.

    Raises:
        InvalidInput: a bound is malformed or the range is reversed.
        Unavailable: no store is configured or it cannot be read.
    """
    store = _store
    if store is None:
        raise Unavailable("the audit trail is not configured", component="audit")
    start_us, end_us = _bound_us(start_date, end=False), _bound_us(end_date, end=True)
    if end_us < start_us:
        raise InvalidInput("end_date is before start_date")
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while limit is None or len(out) < limit:
        page = 1000 if limit is None else min(1000, limit - len(out))
        events, cursor = store.query(start_us=start_us, end_us=end_us, cursor=cursor, limit=page)
        out.extend(event.to_dict() for event in events)
        if cursor is None:
            break
    return out
