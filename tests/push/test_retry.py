from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from genesis.push.retry import SCHEDULE_SECONDS, RetrySchedule, Verdict, classify, parse_retry_after


@pytest.mark.parametrize(("status", "verdict"), [
    (200, Verdict.DELIVERED), (204, Verdict.DELIVERED), (299, Verdict.DELIVERED),
    (301, Verdict.RETRY), (302, Verdict.RETRY), (307, Verdict.RETRY),  # never followed: a failure
    (400, Verdict.RETRY), (401, Verdict.RETRY), (404, Verdict.RETRY), (500, Verdict.RETRY),
    (410, Verdict.DISABLE),
    (429, Verdict.THROTTLED), (502, Verdict.THROTTLED), (503, Verdict.THROTTLED), (504, Verdict.THROTTLED),
    (None, Verdict.RETRY),  # timeout, connection refused, TLS failure
])
def test_responses_are_classified(status: int | None, verdict: Verdict) -> None:
    assert classify(status) is verdict


def test_retry_after_accepts_seconds_and_http_dates_and_is_capped() -> None:
    now = datetime(2026, 1, 2, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Fri, 02 Jan 2026 12:05:00 GMT", now=now) == 300.0
    assert parse_retry_after("Fri, 02 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("99999999") == 86400.0
    for bad in (None, "", "soon", "-5", "1.5"):
        assert parse_retry_after(bad) is None


def test_every_retry_falls_in_its_window_and_the_last_within_a_day() -> None:
    schedule = RetrySchedule()
    rng = random.Random(7)
    assert schedule.attempts == 10
    for _ in range(200):
        previous = 0.0
        for retry in range(1, len(SCHEDULE_SECONDS) + 1):
            due = schedule.due_after_first(retry, rng)
            assert due is not None
            low = 0 if retry == 1 else SCHEDULE_SECONDS[retry - 2]
            assert low <= due <= SCHEDULE_SECONDS[retry - 1]
            assert due >= previous
            previous = due
        assert previous <= 24 * 3600
    assert schedule.due_after_first(len(SCHEDULE_SECONDS) + 1) is None


def test_the_jitter_spreads_a_herd_over_each_window() -> None:
    rng = random.Random(1)
    dues = [RetrySchedule().due_after_first(3, rng) for _ in range(2000)]
    low, high = SCHEDULE_SECONDS[1], SCHEDULE_SECONDS[2]
    width = (high - low) / 4
    quarters = [sum(1 for d in dues if d is not None and low + q * width <= d < low + (q + 1) * width)
                for q in range(4)]
    assert all(400 <= count <= 600 for count in quarters), quarters  # uniform, not bunched


def test_the_next_delay_counts_from_the_first_attempt_and_honours_retry_after() -> None:
    schedule = RetrySchedule((10, 100))
    rng = random.Random(3)
    delay = schedule.next_delay(1, elapsed=2.0, rng=rng)
    assert delay is not None and 0.0 <= delay <= 8.0
    assert schedule.next_delay(2, elapsed=500.0, rng=rng) == 0.0  # overdue: now
    assert schedule.next_delay(2, elapsed=20.0, retry_after=3600, rng=rng) == 3600.0  # postponed, never advanced
    assert schedule.next_delay(3, elapsed=200.0, rng=rng) is None  # failed for good
