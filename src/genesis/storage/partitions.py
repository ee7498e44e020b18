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
