"""Per-route-group rate limits: one place that counts a hit and says how many remain."""

from __future__ import annotations

from typing import Protocol

from genesis.api.metrics import RATE_LIMITED
from genesis.config import Settings
from genesis.errors import RateLimited
from genesis.services.limiter import Limiter


class HeaderSink(Protocol):
    def __setitem__(self, key: str, value: str) -> None: ...


class RateLimits:
    """The configured limit of each route group (``GENESIS_RATE_LIMIT_<GROUP>``), enforced through the limiter."""

    def __init__(self, limiter: Limiter, settings: Settings) -> None:
        self.limiter = limiter
        self.settings = settings

    def spec(self, group: str) -> str | None:
        """The limit of ``group`` in the limits library's notation, or None when limits are off."""
        if not self.settings.rate_limits_enabled:
            return None
        return str(getattr(self.settings, f"rate_limit_{group}", self.settings.rate_limit_default))

    async def enforce(self, group: str, key: str, headers: HeaderSink | None = None) -> None:
        """Count a hit of ``key`` against ``group``; set ``RateLimit-*`` in ``headers``.

        Raises:
            RateLimited: the key is over its limit (``Retry-After`` in the error).
        """
        spec = self.spec(group)
        if spec is None:
            return
        decision = await self.limiter.hit(spec, group, key)
        if not decision.allowed:
            RATE_LIMITED.labels(group).inc()
            raise RateLimited(f"rate limit of {spec} exceeded; retry in {decision.reset_after} s",
                              retry_after=decision.reset_after, limit=decision.limit)
        if headers is not None:
            headers["RateLimit-Limit"] = str(decision.limit)
            headers["RateLimit-Remaining"] = str(decision.remaining)
            headers["RateLimit-Reset"] = str(decision.reset_after)
