"""Webhook delivery policy: how a response is judged, and when the next attempt is due.

Schedule: besides the first attempt, nine retries due at about 5 s, 5 min, 30 min, 2 h,
5 h, 10 h, 14 h, 20 h and 24 h after it. Each retry falls at a uniformly random moment
of its window (after the previous target, up to its own), which is full jitter over
windows that grow roughly exponentially: retries of many deliveries that failed together
(a receiver's outage) spread out instead of arriving as a herd, and the last one is over
within a day. ``Retry-After`` from a throttling receiver postpones an attempt, never
advances it (capped at a day). After the last retry the delivery has failed for good;
what happens to the endpoint then (disable, notify) is the caller's decision.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Final

SCHEDULE_SECONDS: Final = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 14 * 3600, 20 * 3600, 24 * 3600)
MAX_RETRY_AFTER_SECONDS: Final = 24 * 3600
THROTTLE_STATUSES: Final = frozenset({429, 502, 503, 504})


class Verdict(StrEnum):
    """What one attempt's outcome means for the delivery."""

    DELIVERED = "delivered"  # 2xx
    RETRY = "retry"  # any other status, a redirect (never followed), a timeout, a connection error
    THROTTLED = "throttled"  # 429/502/503/504: retry, no earlier than Retry-After
    DISABLE = "disable"  # 410 Gone: the receiver asks to stop; disable the endpoint


def classify(status: int | None) -> Verdict:
    """The verdict for an HTTP status (None: no response: timeout, connection or TLS error)."""
    if status is None:
        return Verdict.RETRY
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if status == 410:
        return Verdict.DISABLE
    if status in THROTTLE_STATUSES:
        return Verdict.THROTTLED
    return Verdict.RETRY


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta-seconds or HTTP-date), capped at a day."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(min(int(value), MAX_RETRY_AFTER_SECONDS))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(delta, 0.0), float(MAX_RETRY_AFTER_SECONDS))


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """When retry ``n`` (1-based) of a delivery is due, in seconds after its first attempt."""

    targets: tuple[int, ...] = SCHEDULE_SECONDS

    @property
    def attempts(self) -> int:
        """Every attempt of a delivery, the first one included."""
        return len(self.targets) + 1

    def due_after_first(self, retry: int, rng: random.Random | None = None) -> float | None:
        """Seconds after the first attempt at which retry ``retry`` is due; None past the last one."""
        if not 1 <= retry <= len(self.targets):
            return None
        low = 0 if retry == 1 else self.targets[retry - 2]
        return (rng or random).uniform(low, self.targets[retry - 1])

    def next_delay(
        self, attempts_made: int, elapsed: float, *, retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> float | None:
        """Seconds from now until the next attempt, or None when the delivery has failed for good.

        Args:
            attempts_made: attempts so far (1 after the first). elapsed: seconds since the first.
            retry_after: the receiver's ``Retry-After`` in seconds, if any.
        """
        due = self.due_after_first(attempts_made, rng)
        if due is None:
            return None
        delay = max(0.0, due - elapsed)
        if retry_after is not None:
            delay = max(delay, min(retry_after, float(MAX_RETRY_AFTER_SECONDS)))
        return delay
