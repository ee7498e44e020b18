from __future__ import annotations

import pytest

from genesis.errors import ConfigurationError
from genesis.push.limits import PushLimits, RateBucket


def test_limits_must_be_positive_and_consistent() -> None:
    with pytest.raises(ConfigurationError, match="queue_messages must be > 0"):
        PushLimits(queue_messages=0)
    with pytest.raises(ConfigurationError, match="max_message_bytes"):
        PushLimits(max_message_bytes=2_000_000, replay_bytes=1_000_000)


def test_the_rate_bucket_admits_a_burst_then_the_rate() -> None:
    now = [0.0]
    bucket = RateBucket(2.0, 3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert bucket.retry_after() == pytest.approx(0.5)
    now[0] = 0.5
    assert bucket.take() and not bucket.take()
    now[0] = 100.0
    assert sum(bucket.take() for _ in range(10)) == 3  # saved up to the burst only
