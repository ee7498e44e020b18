"""The seed's library API: ``log_action`` and ``get_audit_logs``, on top of the configured recorder.

Any module of a trading system writes into the same trail as the API::

    import genesis
    genesis.configure()                 # once per process: the GENESIS_* settings the server reads
    from genesis.audit import log_action, get_audit_logs

    log_action("AUDIT", "User executed trade", user="testuser", metadata={"symbol": "BTC/USD"})
    get_audit_logs("2023-01-01", "2025-12-31")
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from genesis.audit.config import get_config
from genesis.audit.context import bind_correlation, correlation_id_var, new_correlation_id, request_id_var, user_var
from genesis.audit.events import new_event
from genesis.audit.levels import AUDIT, level_name, parse_level
from genesis.audit.writer import Ticket
from genesis.errors import InvalidInput, Unavailable

NOT_CONFIGURED = "the audit trail is not configured: call genesis.configure() once in this process"
_EVENT_FIELDS = frozenset({"source_ip", "user_agent", "method", "path", "status", "request_id", "occurred_at_us"})
audit_logger = logging.getLogger("genesis.audit")


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
        Unavailable: an audit event was asked for but the trail is not configured, or
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
            extra={"action": action or ("audit.log" if audited else None), "outcome": outcome, "actor": actor,
                   "metadata": meta},
        )
    if not audited:
        return None
    recorder = get_config().recorder
    if recorder is None:
        raise Unavailable(NOT_CONFIGURED, component="audit")
    columns.setdefault("request_id", request_id_var.get())
    event = new_event(
        action or "audit.log", actor=actor, outcome=outcome,
        level=level_name(levelno) if levelno != AUDIT else "AUDIT", message=message, metadata=meta,
        correlation_id=cid, **columns,
    )
    ticket = recorder.submit(event)
    if wait:
        ticket.wait(30.0)
    return ticket


def bound_us(value: date | datetime | str, *, end: bool, inclusive: bool = True) -> int:
    """UTC microseconds of a query bound: ISO text, a date or a datetime (naive = UTC).

    A date-only end means the next midnight (the whole day is included); a datetime end is
    inclusive unless ``inclusive`` is False. A ``Z`` suffix is accepted.

    Raises:
        InvalidInput: the text is not an ISO 8601 date or datetime.
    """
    if isinstance(value, str):
        text = value.strip()
        try:
            value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"not an ISO 8601 date or datetime: {value!r}") from None
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        us = int(moment.timestamp()) * 1_000_000 + moment.microsecond
        return us + 1 if end and inclusive else us
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
    datetimes are taken as UTC. Events this process logged before the call are included
    (it waits for their commit).

    Raises:
        InvalidInput: a bound is malformed or the range is reversed.
        Unavailable: the trail is not configured or cannot be read.
    """
    config = get_config()
    store = config.store
    if store is None:
        raise Unavailable(NOT_CONFIGURED, component="audit")
    if config.recorder is not None:
        config.recorder.drain()  # this process reads what it logged before, even without wait=True
    start_us, end_us = bound_us(start_date, end=False), bound_us(end_date, end=True)
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
