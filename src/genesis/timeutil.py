"""Time helpers: Genesis keeps instants as integer microseconds since the epoch (UTC)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
# The instants a datetime can show in UTC: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999Z.
MIN_US = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _ONE_US
MAX_US = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - _EPOCH) // _ONE_US


def now_us() -> int:
    """The current time in microseconds since the Unix epoch."""
    return time.time_ns() // 1000


def to_us(value: datetime) -> int:
    """Microseconds since the epoch for an aware datetime (naive = UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _ONE_US


def rfc3339_to_us(text: str) -> int:
    """Microseconds since the epoch for RFC 3339 text already matched by ``RFC3339_PATTERN`` (naive = UTC).

    Digits past microseconds are truncated. Raises ValueError for a date that does not exist
    (month 13, February 30) or an instant outside 0001-01-01..9999-12-31 UTC, which a stored
    point could never be read back at.
    """
    us = to_us(datetime.fromisoformat(text.upper()))
    if not MIN_US <= us <= MAX_US:
        raise ValueError("falls outside 0001-01-01..9999-12-31 UTC")
    return us


# RFC 3339 date-time text, ASCII digits only (a missing offset means UTC).
RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})?$"
)


def from_us(value: int) -> datetime:
    """The aware UTC datetime for microseconds since the epoch."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)


def rfc3339(value: int | datetime) -> str:
    """RFC 3339 UTC text with microseconds and a ``Z``."""
    moment = from_us(value) if isinstance(value, int) else value.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
