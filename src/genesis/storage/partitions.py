"""Monthly partitions of the PostgreSQL audit table, created ahead of time.

``audit_events`` is range-partitioned on ``occurred_at_us`` (UTC microseconds).
Each month is one partition named ``audit_events_YYYY_MM``; a DEFAULT partition
catches anything outside them (clock skew), so an insert never fails for want
of a partition. A time-range query touches only the partitions it overlaps.

Only the owner of ``audit_events`` may add partitions. A service connecting as
the least-privilege application role (``genesis db grant-app-role``) cannot: it
says so once and carries on, and the owner creates them ahead of time with
``genesis db partitions`` (from cron or a timer) or ``genesis db upgrade``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from genesis.timeutil import to_us

MONTHS_AHEAD = 3

log = logging.getLogger("genesis.storage.partitions")

_PARTITIONS_SQL = (
    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
    "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'audit_events' "
    "AND pg_catalog.pg_table_is_visible(p.oid)"
)
# What this process has already said (a keeper runs every few hours; one warning is enough).
_reported: set[str] = set()


def month_start(year: int, month: int) -> datetime:
    return datetime(year, month, 1, tzinfo=UTC)


def add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + (moment.month - 1) + months
    return month_start(index // 12, index % 12 + 1)


def partition_name(moment: datetime) -> str:
    return f"audit_events_{moment.year:04d}_{moment.month:02d}"


def month_partitions(
    now: datetime, *, months_back: int = 1, months_ahead: int = MONTHS_AHEAD
) -> list[tuple[str, int, int]]:
    """(name, from_us, to_us) for each month from ``months_back`` before ``now`` to ``months_ahead`` after."""
    current = month_start(now.year, now.month)
    out = []
    for offset in range(-months_back, months_ahead + 1):
        start = add_months(current, offset)
        end = add_months(start, 1)
        out.append((partition_name(start), to_us(start), to_us(end)))
    return out


def can_create_partitions(connection: Any) -> bool:
    """Whether the connected role may add partitions to ``audit_events`` (it owns it and may create in its schema).

    Asked up front rather than tried, so that a role without the right leaves no error in the server's log.
    """
    row = connection.execute(text(
        "SELECT pg_has_role(current_user, c.relowner, 'USAGE') AND has_schema_privilege(c.relnamespace, 'CREATE') "
        "FROM pg_class c WHERE c.oid = to_regclass('audit_events')"
    )).first()
    return bool(row is not None and row[0])


def ensure_audit_partitions(
    connection: Any, *, now: datetime | None = None, months_ahead: int = MONTHS_AHEAD
) -> list[str]:
    """Create missing monthly partitions (sync SQLAlchemy connection); returns the names created.

    Without the right to (the application role), nothing is created: one warning per
    process, or an error per month if the current month's partition is missing.
    """
    moment = now or datetime.now(UTC)
    existing = {row[0] for row in connection.execute(text(_PARTITIONS_SQL))}
    missing = [p for p in month_partitions(moment, months_ahead=months_ahead) if p[0] not in existing]
    if not missing:
        return []
    if not can_create_partitions(connection):
        _report_not_owner(moment, [name for name, _, _ in missing])
        return []
    default = _default_partition(connection)
    created = []
    for name, low, high in missing:
        if default is not None and _holds_rows(connection, default, low, high):
            # PostgreSQL refuses a partition whose range already has rows in DEFAULT (they arrived before the
            # month existed); they stay there, still found through audit_events. Skip rather than fail the rest.
            _report_once(f"default:{name}", logging.WARNING,
                         "audit partition %s not created: %s already holds events of that month", name, default)
            continue
        connection.execute(text(
            f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF audit_events FOR VALUES FROM ({low}) TO ({high})"
        ))
        created.append(name)
    return created


def _report_not_owner(moment: datetime, missing: list[str]) -> None:
    current = partition_name(month_start(moment.year, moment.month))
    if current in missing:
        _report_once(
            f"current:{current}", logging.ERROR,
            "the audit partition of this month (%s) is missing and this database role may not create it; events "
            "go to the DEFAULT partition until the owner runs `genesis db partitions`", current,
        )
    _report_once(
        "not-owner", logging.WARNING,
        "this database role may not create audit partitions (missing: %s); they must be created by the owner "
        "of audit_events: run `genesis db partitions` (or `genesis db upgrade`) as the owner, e.g. daily",
        ", ".join(missing),
    )


def _report_once(key: str, level: int, message: str, *args: object) -> None:
    if key not in _reported:
        _reported.add(key)
        log.log(level, message, *args)


def _default_partition(connection: Any) -> str | None:
    row = connection.execute(text(
        "SELECT c.relname FROM pg_partitioned_table t JOIN pg_class c ON c.oid = t.partdefid "
        "WHERE t.partrelid = to_regclass('audit_events')"
    )).first()
    return None if row is None else str(row[0])


def _holds_rows(connection: Any, table: str, low: int, high: int) -> bool:
    # table comes from pg_class (the DEFAULT partition of audit_events): not user input
    quoted = table.replace('"', '""')
    sql = f'SELECT EXISTS (SELECT 1 FROM "{quoted}" WHERE occurred_at_us >= :low AND occurred_at_us < :high)'  # noqa: S608
    return bool(connection.execute(text(sql), {"low": low, "high": high}).scalar())


def drop_archived_partitions(connection: Any) -> list[str]:
    """Detach and drop monthly partitions that lie wholly before the last archive and hold no rows.

    ``genesis audit archive`` exports and prunes a range first (its digest is kept
    in ``audit_archives``); the emptied months then leave the table as whole
    partitions, which is cheaper than keeping empty tables around forever.
    """
    row = connection.execute(text("SELECT COALESCE(MAX(before_us), 0) FROM audit_archives")).one()
    archived_before = int(row[0])
    dropped = []
    parts = connection.execute(text(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
        "WHERE p.relname = 'audit_events' AND pg_catalog.pg_table_is_visible(p.oid)"
    )).all()
    for name, bound in parts:
        if not name.startswith("audit_events_") or "TO (" not in bound:
            continue  # the DEFAULT partition stays
        upper = int(bound.split("TO (")[1].split(")")[0].strip("'"))
        if upper > archived_before:
            continue
        # name comes from pg_class and matches audit_events_YYYY_MM: not user input
        if connection.execute(text(f"SELECT EXISTS (SELECT 1 FROM {name})")).scalar():  # noqa: S608
            continue
        connection.execute(text(f"ALTER TABLE audit_events DETACH PARTITION {name}"))
        connection.execute(text(f"DROP TABLE {name}"))
        dropped.append(name)
    return dropped
