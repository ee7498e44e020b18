"""The composition root: builds every collaborator of one Genesis process from settings.

The API (``create_app``) and the CLI both open a Runtime; nothing else chooses
implementations.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from genesis.audit import AuditStore, AuditWriter, LoggingRuntime, new_event, setup_logging
from genesis.audit.context import get_correlation_id, new_correlation_id
from genesis.audit.events import now_us
from genesis.audit.monitor import ChainMonitor, ChainState
from genesis.audit.refusals import RefusalSummary, RefusalWindows
from genesis.config import Settings
from genesis.errors import Unavailable
from genesis.security.tokens import TokenCodec
from genesis.services.anomalies import AnomalyService
from genesis.services.auth import AuthService
from genesis.services.compute import configure_compute
from genesis.services.limiter import Limiter
from genesis.storage.audit_sql import open_audit_store
from genesis.storage.backtests import SqlBacktestStore
from genesis.storage.clients import SqlClientStore
from genesis.storage.database import create_engine
from genesis.storage.migrate import upgrade_database
from genesis.storage.partitions import ensure_audit_partitions
from genesis.storage.prices import SqlPriceStore
from genesis.storage.principals import SqlPrincipalStore
from genesis.storage.tokens import SqlTokenStore
from genesis.storage.users import SqlUserStore

log = logging.getLogger("genesis.runtime")

PARTITION_CHECK_SECONDS = 6 * 3600
FULL_VERIFY_SECONDS = 3600.0  # scheduled checks are incremental; one an hour re-reads the whole chain


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
    audit_store: AuditStore | None = None
    log_runtime: LoggingRuntime | None = None
    refusals: RefusalWindows = field(default_factory=RefusalWindows)
    _audit_retry_at: float = 0.0
    _refusal_task: asyncio.Task[None] | None = None
    _monitor_task: asyncio.Task[None] | None = None
    monitor: ChainMonitor | None = None
    _console_logging: bool | None = None
    _partition_task: asyncio.Task[None] | None = None
    writer: AuditWriter | None = None

    @classmethod
    def build(cls, settings: Settings, *, on_limiter_degraded: Any = None) -> Runtime:
        """Create the collaborators (no I/O beyond reading or creating the signing key)."""
        configure_compute(timeout_seconds=settings.compute_timeout_seconds,
                          max_concurrent=settings.compute_max_concurrent)
        engine = create_engine(
            settings.db_url, pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow, timeout=settings.database_timeout_seconds,
        )
        users, clients, tokens = SqlUserStore(engine), SqlClientStore(engine), SqlTokenStore(engine)
        prices = SqlPriceStore(engine, database_url=settings.db_url)
        principals = SqlPrincipalStore(engine, database_url=settings.db_url)
        limiter = Limiter(
            redis_url=settings.redis_url, key_prefix=settings.key_prefix,
            failure_mode=settings.redis_failure_mode, on_degraded=on_limiter_degraded,
        )
        codec = TokenCodec(
            key=settings.signing_key(), issuer=settings.token_issuer, audience=settings.token_audience,
            leeway_seconds=settings.token_leeway_seconds,
        )
        auth = AuthService(
            users=users, clients=clients, tokens=tokens, principals=principals, codec=codec,
            limiter=limiter,
            access_ttl_seconds=settings.access_token_ttl_minutes * 60,
            refresh_ttl_seconds=settings.refresh_token_ttl_minutes * 60,
            failures_per_account_per_hour=settings.login_failures_per_account_per_hour,
            attempts_per_ip_per_minute=settings.login_attempts_per_ip_per_minute,
        )
        return cls(
            settings=settings, engine=engine, users=users, clients=clients, tokens=tokens,
            prices=prices, backtests=SqlBacktestStore(engine), limiter=limiter, codec=codec,
            auth=auth, anomalies=AnomalyService(prices),
            refusals=RefusalWindows(settings.audit_refusal_window_seconds),
        )

    @staticmethod
    def migrate(settings: Settings) -> None:
        """Apply migrations (sync; call before starting workers)."""
        upgrade_database(settings.db_url)

    async def start(self, *, console_logging: bool | None = None) -> None:
        """Start logging, then the audit store and writer (retried later if the database is down)."""
        self._console_logging = console_logging
        self.log_runtime = await asyncio.to_thread(setup_logging, self._log_settings())
        await self._ensure_audit()

    def _log_settings(self) -> Settings:
        settings = self.settings
        if self._console_logging is not None and self._console_logging != settings.log_console:
            settings = settings.model_copy(update={"log_console": self._console_logging})
        return settings

    async def _ensure_audit(self) -> bool:
        """Open the audit store and writer if they are not running; at most one attempt every 2 s."""
        if self.writer is not None:
            return True
        now = time.monotonic()
        if now < self._audit_retry_at:
            return False
        self._audit_retry_at = now + 2.0
        hmac_key = self.settings.audit_hmac_key.get_secret_value() if self.settings.audit_hmac_key else None
        try:
            store = await asyncio.to_thread(
                open_audit_store, self.settings.db_url, hmac_key=hmac_key,
                timeout_seconds=self.settings.database_timeout_seconds,
            )
        except Exception as exc:
            log.error("audit store unavailable: %s", type(exc).__name__)
            return False
        self.audit_store = store
        if not self.settings.is_sqlite and self._partition_task is None:
            self._partition_task = asyncio.create_task(self._keep_partitions_ahead())
        self.log_runtime = await asyncio.to_thread(setup_logging, self._log_settings(), store=store)
        self.writer = self.log_runtime.writer
        if self.settings.audit_verify_interval_seconds > 0 and self._monitor_task is None:
            self._monitor_task = asyncio.create_task(self._verify_continuously(store))
        return self.writer is not None

    async def _verify_continuously(self, store: AuditStore) -> None:
        """Re-verify the chain on a schedule (see ``genesis.audit.monitor``); report each new break once."""
        from genesis.services.audit_trail import trusted_public_keys

        interval = self.settings.audit_verify_interval_seconds
        await asyncio.sleep(min(interval, 10.0))  # let the process start serving first
        hmac_key = self.settings.audit_hmac_key.get_secret_value() if self.settings.audit_hmac_key else None
        reported: str | None = None
        last_full = time.monotonic()
        while True:
            try:
                if self.monitor is None:
                    keys = await asyncio.to_thread(trusted_public_keys, self.settings.data_dir,
                                                   self.settings.audit_public_keys)
                    self.monitor = ChainMonitor(store, hmac_key=hmac_key, public_key=keys)
                full = time.monotonic() - last_full >= FULL_VERIFY_SECONDS
                state = await asyncio.to_thread(functools.partial(self.monitor.check, full=full))
                if full:
                    last_full = time.monotonic()
                reported = self._report_chain_state(state, reported)
            except Exception as exc:  # the store may be away; the next round tries again
                log.warning("scheduled audit verification could not run: %s", type(exc).__name__)
            await asyncio.sleep(interval)

    def _report_chain_state(self, state: ChainState, reported: str | None) -> str | None:
        problem = state.problem
        if problem is None:
            if reported is not None:
                log.warning("audit chain verifies again (through seq %d)", state.verified_seq)
            return None
        if problem != reported:
            log.error("AUDIT CHAIN BROKEN: %s", problem)
            if self.writer is not None:
                self.writer.submit(new_event("audit.verify.failed", outcome="failure", level="ERROR",
                                             message=f"scheduled verification: {problem}",
                                             metadata={"verified_seq": state.verified_seq},
                                             correlation_id=new_correlation_id()))
        return problem

    async def _keep_partitions_ahead(self) -> None:
        """Create next months' audit partitions now and every few hours (PostgreSQL)."""
        while True:
            try:
                async with self.engine.begin() as conn:
                    created = await conn.run_sync(ensure_audit_partitions)
                if created:
                    log.info("created audit partitions %s", ", ".join(created))
            except Exception as exc:
                log.warning("could not create audit partitions ahead: %s", type(exc).__name__)
            await asyncio.sleep(PARTITION_CHECK_SECONDS)

    async def record_request(self, fields: dict[str, Any]) -> None:
        """Durably record the audit event of one API request (returns once committed).

        Raises:
            Unavailable: the event could not be committed (the caller answers 503).
        """
        if self.writer is None and not await self._ensure_audit():
            raise Unavailable("the audit trail is not running", component="audit")
        assert self.writer is not None
        await self.writer.write_async(new_event(**fields))

    async def record_refusal(self, fields: dict[str, Any]) -> None:
        """Record a rate-limit refusal: the first of its window durably, later ones as a count.

        See ``genesis.audit.refusals``; the counts become summary events when their window
        closes (checked here, by a background task, and at shutdown).

        Raises:
            Unavailable: a refusal to be audited in full could not be committed.
        """
        now = time.monotonic()
        self._submit_refusal_summaries(self.refusals.due(now=now))
        if self._refusal_task is None and self.refusals.window_seconds > 0:
            # A fresh context: the task outlives this request and must not log under its correlation id.
            self._refusal_task = asyncio.create_task(self._summarise_refusals(), context=contextvars.Context())
        key = (str(fields.get("actor") or "anonymous"), str(fields.get("source_ip") or ""),
               str(fields.get("action") or fields.get("path") or ""))
        if self.refusals.admit(key, fields, now=now, now_us=now_us()):
            try:
                await self.record_request(fields)
            except BaseException:
                self.refusals.forget(key)  # the next refusal is audited in full again
                raise

    def _submit_refusal_summaries(self, summaries: list[RefusalSummary]) -> None:
        """Queue summary events without waiting: a lost count never fails a request."""
        for summary in summaries:
            try:
                if self.writer is None:
                    raise Unavailable("the audit trail is not running", component="audit")
                self.writer.submit(new_event(**summary.event_fields(), correlation_id=new_correlation_id()))
            except Exception as exc:
                log.error("could not record %d rate-limited requests of %s: %s", summary.count, summary.key,
                          type(exc).__name__)

    async def _summarise_refusals(self) -> None:
        period = max(1.0, self.refusals.window_seconds / 2)
        while True:
            await asyncio.sleep(period)
            self._submit_refusal_summaries(self.refusals.due(now=time.monotonic()))

    async def record_admin(
        self, action: str, message: str, *, target: str, actor: str = "cli", metadata: dict[str, Any] | None = None
    ) -> None:
        """Durably record an administrative action taken outside the API."""
        if self.writer is None and not await self._ensure_audit():
            raise Unavailable("the audit trail is not running", component="audit")
        assert self.writer is not None
        event = new_event(action, actor=actor, message=message, metadata={"target": target, **(metadata or {})},
                          correlation_id=get_correlation_id() or new_correlation_id())
        await self.writer.write_async(event)

    async def readiness(self) -> dict[str, str]:
        """State of each backing service: "ok" or a short reason."""
        checks = {"database": "ok" if await self.database_ready() else "unreachable"}
        if self.settings.redis_url:
            checks["redis"] = "ok" if await self.limiter.ping() else "unreachable"
        checks["audit"] = "ok" if await self.audit_ready() else "unavailable"
        return checks

    async def audit_ready(self) -> bool:
        """The writer runs and the audit store answers."""
        if not await self._ensure_audit():
            return False
        store = self.audit_store
        if store is None:
            return False
        try:
            await asyncio.wait_for(asyncio.to_thread(store.head), timeout=self.settings.database_timeout_seconds)
        except Exception:
            return False
        return True

    async def database_ready(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def close(self) -> None:
        """Drain the audit writer (shutdown checkpoint), stop logging, close connections."""
        if self._partition_task is not None:
            self._partition_task.cancel()
            self._partition_task = None
        for task in (self._refusal_task, self._monitor_task):
            if task is not None:
                task.cancel()
        self._refusal_task = self._monitor_task = None
        self._submit_refusal_summaries(self.refusals.drain())  # committed by the writer's drain below
        if self.log_runtime is not None:
            await asyncio.to_thread(self.log_runtime.close)
            self.log_runtime = None
            self.writer = None
        if self.audit_store is not None:
            await asyncio.to_thread(self.audit_store.close)
            self.audit_store = None
        await self.limiter.close()
        self.auth.principals.close()
        await self.engine.dispose()
