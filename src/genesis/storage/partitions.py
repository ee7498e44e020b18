"""Monthly partitions of the PostgreSQL audit table, created ahead of time.

``audit_events`` is range-partitioned on ``occurred_at_us`` (UTC microseconds).
Each month is one partition named ``audit_events_YYYY_MM``; a DEFAULT partition
catches anything outside them (clock skew), so an insert never fails for want
of a partition. A time-range query touches only the partitions it overlaps.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from genesis.timeutil import to_us

MONTHS_AHEAD = 3


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


def ensure_audit_partitions(
    connection: Any, *, now: datetime | None = None, months_ahead: int = MONTHS_AHEAD
) -> list[str]:
    """Create missing monthly partitions (sync SQLAlchemy connection); returns the names created."""
    existing = {
        row[0]
        for row in connection.execute(text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'audit_events' "
            "AND pg_catalog.pg_table_is_visible(p.oid)"
        ))
    }
    created = []
    for name, low, high in month_partitions(now or datetime.now(UTC), months_ahead=months_ahead):
        if name in existing:
            continue
        connection.execute(text(
            f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF audit_events FOR VALUES FROM ({low}) TO ({high})"
        ))
        created.append(name)
    return created


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
