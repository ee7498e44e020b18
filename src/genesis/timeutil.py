"""Time helpers: Genesis keeps instants as integer microseconds since the epoch (UTC)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta


def now_us() -> int:
    """The current time in microseconds since the Unix epoch."""
    return time.time_ns() // 1000


def to_us(value: datetime) -> int:
    """Microseconds since the epoch for an aware datetime (naive = UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(value: int) -> datetime:
    """The aware UTC datetime for microseconds since the epoch."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)


def rfc3339(value: int | datetime) -> str:
    """RFC 3339 UTC text with microseconds and a ``Z``."""
    moment = from_us(value) if isinstance(value, int) else value.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def range_end_us(value: date | datetime) -> int:
    """Exclusive upper bound: a date-only end includes its whole day."""
    if isinstance(value, datetime):
        return to_us(value)
    return to_us(datetime(value.year, value.month, value.day, tzinfo=UTC) + timedelta(days=1))


def range_start_us(value: date | datetime) -> int:
    """Inclusive lower bound: a date-only start begins at its midnight UTC."""
    if isinstance(value, datetime):
        return to_us(value)
    return to_us(datetime(value.year, value.month, value.day, tzinfo=UTC))
