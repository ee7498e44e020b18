"""The login guard's counters and marks, on the in-process store and on Redis (shared by every worker)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from genesis.services.limiter import Limiter
from genesis.services.login_guard import LoginGuard, LoginPolicy, LoginThrottled


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def limiter(request: pytest.FixtureRequest) -> Limiter:
    if request.param == "memory":
        return Limiter()
    url: str = request.getfixturevalue("redis_url")
    return Limiter(redis_url=url, key_prefix=f"genesis-test-{uuid.uuid4().hex[:8]}")


def test_a_mark_lasts_its_seconds_and_a_new_mark_replaces_the_old(limiter: Limiter) -> None:
    async def scenario() -> tuple[int, int, int, int]:
        try:
            before = await limiter.marked_for("k")
            await limiter.mark("k", 30)
            first = await limiter.marked_for("k")
            await limiter.mark("k", 2)
            second = await limiter.marked_for("k")
            await limiter.mark("other", 1)
            return before, first, second, await limiter.marked_for("other")
        finally:
            await limiter.close()

    assert asyncio.run(scenario()) == (0, 30, 2, 1)


def test_the_guard_slows_unknown_addresses_only_and_shares_its_state_between_guards(limiter: Limiter) -> None:
    policy = LoginPolicy(delay_after_failures_per_hour=2, max_delay_seconds=60)
    worker_a, worker_b = LoginGuard(limiter, policy), LoginGuard(limiter, policy)  # two workers, one store

    async def scenario() -> tuple[int, bool]:
        try:
            await worker_a.succeeded(account="Admin", address="192.0.2.1")
            for i in range(2):
                await worker_a.before_attempt(account="admin", address=f"198.51.100.{i}")
                await worker_a.failed(account="admin", address=f"198.51.100.{i}")
            await worker_a.failed(account="admin", address="198.51.100.2")  # admitted once the 1 s had passed
            with pytest.raises(LoginThrottled) as refused:
                await worker_b.before_attempt(account="ADMIN", address="198.51.100.9")
            await worker_b.before_attempt(account="admin", address="192.0.2.1")  # the owner's address: no wait
            return refused.value.retry_after, True
        finally:
            await limiter.close()

    retry_after, owner_passed = asyncio.run(scenario())
    assert retry_after == 2 and owner_passed  # 3 failures, threshold 2: the second step of the delay
