"""Rate limits on the `limits` library: in memory by default, in Redis when configured.

The moving-window strategy is exact: a limit of L per minute admits at most L
hits in any 60 s, across every process that shares the Redis storage. When
Redis fails, the configured mode decides: ``fail-open`` falls back to
in-process counters (warning once, and reporting the switch through the
``on_degraded`` callback), ``fail-closed`` refuses with Unavailable. Shared
limits resume by themselves once Redis answers again.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from prometheus_client import Counter

from genesis.errors import Unavailable

log = logging.getLogger("genesis.ratelimit")

RETRY_REDIS_AFTER_SECONDS = 5.0
RATE_LIMIT_DEGRADED = Counter(
    "genesis_rate_limit_degraded_total", "Times the shared rate-limit store failed and the fallback engaged.", ["mode"]
)


@dataclass(frozen=True, slots=True)
class LimitDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: int  # seconds until a hit is admitted again / the window resets


class Limiter:
    """Checks and counts hits against named limits for keys."""

    def __init__(
        self,
        *,
        redis_url: str | None = None,
        key_prefix: str = "genesis",
        failure_mode: Literal["fail-open", "fail-closed"] = "fail-open",
        on_degraded: Callable[[str], None] | None = None,
    ) -> None:
        self._memory = MemoryStorage()
        self._memory_limiter = MovingWindowRateLimiter(self._memory)
        self._redis: Storage | None = None
        self._redis_limiter: MovingWindowRateLimiter | None = None
        if redis_url:
            uri = redis_url.replace("redis://", "async+redis://", 1).replace("rediss://", "async+rediss://", 1)
            self._redis = RedisStorage(
                uri, implementation="redispy", key_prefix=f"{key_prefix}:rl", wrap_exceptions=True,
                socket_timeout=1.0, socket_connect_timeout=1.0,
            )
            self._redis_limiter = MovingWindowRateLimiter(self._redis)
        self._failure_mode = failure_mode
        self._on_degraded = on_degraded
        self._redis_down_since: float | None = None
        self._items: dict[str, RateLimitItem] = {}

    @property
    def shared(self) -> bool:
        """True when counters live in Redis."""
        return self._redis is not None

    @property
    def degraded(self) -> bool:
        """True while Redis is configured but failing."""
        return self._redis_down_since is not None

    def item(self, spec: str) -> RateLimitItem:
        found = self._items.get(spec)
        if found is None:
            found = self._items[spec] = parse(spec)
        return found

    async def hit(self, spec: str, *key: str, cost: int = 1) -> LimitDecision:
        """Count one hit of ``key`` against ``spec`` ("50/minute") and decide."""
        item = self.item(spec)
        limiter = await self._choose()
        try:
            allowed = await limiter.hit(item, *key, cost=cost)
            stats = await limiter.get_window_stats(item, *key)
        except Exception as exc:  # Redis errors: limits wraps them as StorageError
            if limiter is self._memory_limiter:
                raise
            self._mark_down(exc)
            limiter = await self._choose()
            allowed = await limiter.hit(item, *key, cost=cost)
            stats = await limiter.get_window_stats(item, *key)
        reset_after = max(1, math.ceil(stats.reset_time - time.time()))
        return LimitDecision(allowed, item.amount, max(stats.remaining, 0), reset_after)

    async def peek(self, spec: str, *key: str) -> LimitDecision:
        """The state of ``key`` against ``spec`` without counting a hit."""
        item = self.item(spec)
        limiter = await self._choose()
        try:
            allowed = await limiter.test(item, *key)
            stats = await limiter.get_window_stats(item, *key)
        except Exception as exc:
            if limiter is self._memory_limiter:
                raise
            self._mark_down(exc)
            return await self.peek(spec, *key)
        reset_after = max(1, math.ceil(stats.reset_time - time.time()))
        return LimitDecision(allowed, item.amount, max(stats.remaining, 0), reset_after)

    async def clear(self, spec: str, *key: str) -> None:
        """Forget the hits of ``key`` (e.g. failed logins after a success)."""
        limiter = await self._choose()
        try:
            await limiter.clear(self.item(spec), *key)
        except Exception as exc:
            if limiter is not self._memory_limiter:
                self._mark_down(exc)

    async def mark(self, key: str, seconds: float) -> None:
        """Set a mark on ``key`` that lasts ``seconds`` from now (replacing any earlier one)."""
        storage = await self._storage()
        name = f"mark/{key}"
        try:
            await storage.clear(name)
            await storage.incr(name, max(1, math.ceil(seconds)))
        except Exception as exc:
            if storage is self._memory:
                raise
            self._mark_down(exc)
            await self.mark(key, seconds)

    async def marked_for(self, key: str) -> int:
        """Whole seconds until the mark on ``key`` lapses; 0 when there is none."""
        storage = await self._storage()
        name = f"mark/{key}"
        try:
            if await storage.get(name) <= 0:
                return 0
            return max(1, math.ceil(await storage.get_expiry(name) - time.time()))
        except Exception as exc:
            if storage is self._memory:
                raise
            self._mark_down(exc)
            return await self.marked_for(key)

    async def _storage(self) -> Storage:
        return self._memory if await self._choose() is self._memory_limiter else self._redis  # type: ignore[return-value]

    async def ping(self) -> bool:
        """True when the configured Redis answers (always True without Redis)."""
        if self._redis is None:
            return True
        try:
            return bool(await self._redis.check())
        except Exception:
            return False

    async def close(self) -> None:
        """Close the Redis connections (the limits library keeps a redis.asyncio client)."""
        client = getattr(getattr(self._redis, "bridge", None), "storage", None)
        if client is not None:
            try:
                await client.aclose()
            except Exception as exc:  # already broken: nothing left to close
                log.debug("closing redis: %s", type(exc).__name__)

    async def reset(self) -> None:
        """Drop every counter (tests and administrators)."""
        await self._memory.reset()
        if self._redis is not None:
            await self._redis.reset()

    async def _choose(self) -> MovingWindowRateLimiter:
        if self._redis_limiter is None:
            return self._memory_limiter
        if self._redis_down_since is None:
            return self._redis_limiter
        if time.monotonic() - self._redis_down_since >= RETRY_REDIS_AFTER_SECONDS and await self.ping():
            log.warning("redis is reachable again: shared rate limits resumed")
            self._redis_down_since = None
            return self._redis_limiter
        if self._failure_mode == "fail-closed":
            raise Unavailable("rate-limit store (redis) is unavailable", component="redis", retry_after=5)
        return self._memory_limiter

    def _mark_down(self, exc: BaseException) -> None:
        first = self._redis_down_since is None
        self._redis_down_since = time.monotonic()
        if first:
            log.warning(
                "redis failed (%s): %s", type(exc).__name__,
                "falling back to in-process rate limits" if self._failure_mode == "fail-open" else "refusing requests",
            )
            RATE_LIMIT_DEGRADED.labels(self._failure_mode).inc()
            if self._on_degraded is not None:
                self._on_degraded(self._failure_mode)
        if self._failure_mode == "fail-closed":
            raise Unavailable("rate-limit store (redis) is unavailable", component="redis", retry_after=5) from exc
