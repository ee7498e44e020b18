"""The composition root: the collaborators of one Genesis process, built from settings.

``Runtime`` only holds things: every field is typed by the interface its users depend on, and it
is frozen once opened. The API's lifespan, the CLI and :func:`configure_library` (what
``genesis.configure()`` calls) open one; nothing else chooses implementations. Background loops
live in the API's lifespan (``genesis.api.lifespan``), readiness in ``genesis.services.readiness``.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncEngine

from genesis import audit
from genesis.audit import AuditRecorder, LoggingHandle, new_event, setup_logging
from genesis.config import Settings, get_settings
from genesis.errors import Unavailable
from genesis.push import Hub, PushLimits
from genesis.push.urlpolicy import UrlPolicy
from genesis.security.tokens import TokenCodec
from genesis.services.announce import IngestAnnouncer
from genesis.services.anomalies import AnomalyService
from genesis.services.auth import AuthService
from genesis.services.compute import configure_compute
from genesis.services.limiter import Limiter
from genesis.services.login_guard import LoginPolicy
from genesis.services.push import AuditFeed, Publisher
from genesis.services.tickets import TicketService
from genesis.storage.audit_backend import AuditBackend
from genesis.storage.backtests import SqlBacktestStore
from genesis.storage.clients import SqlClientStore
from genesis.storage.database import create_engine
from genesis.storage.migrate import upgrade_database
from genesis.storage.prices import SqlPriceStore
from genesis.storage.principals import SqlPrincipalStore
from genesis.storage.protocols import BacktestStore, ClientStore, PriceStore, PrincipalStore, TokenStore, UserStore
from genesis.storage.push_redis import RedisBroker
from genesis.storage.tickets import MemoryTickets, RedisTickets
from genesis.storage.tokens import SqlTokenStore
from genesis.storage.users import SqlUserStore
from genesis.storage.webhooks import SqlWebhookStore

log = logging.getLogger("genesis.runtime")

OnDegraded = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Runtime:
    """Everything one process needs, built together (no I/O) and started and closed together."""

    settings: Settings
    engine: AsyncEngine
    users: UserStore
    clients: ClientStore
    tokens: TokenStore
    principals: PrincipalStore
    prices: PriceStore
    backtests: BacktestStore
    limiter: Limiter
    codec: TokenCodec
    auth: AuthService
    anomalies: AnomalyService
    audit: AuditBackend
    recorder: AuditRecorder
    hub: Hub
    publisher: Publisher
    announcer: IngestAnnouncer
    audit_feed: AuditFeed
    webhooks: SqlWebhookStore
    tickets: TicketService

    @staticmethod
    def migrate(settings: Settings) -> None:
        """Apply migrations (sync; call before starting workers)."""
        upgrade_database(settings.db_url)

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        """Create the collaborators without any I/O (connections and keys are opened on start or first use)."""
        engine = create_engine(
            settings.db_url, pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow, timeout=settings.database_timeout_seconds,
        )
        users, clients, tokens = SqlUserStore(engine), SqlClientStore(engine), SqlTokenStore(engine)
        principals = SqlPrincipalStore(engine, database_url=settings.db_url)
        backend = audit_backend(settings)
        recorder = AuditRecorder(reconnect=backend.reconnect,
                                 refusal_window_seconds=settings.audit_refusal_window_seconds)
        limiter = Limiter(
            redis_url=settings.redis_url, key_prefix=settings.key_prefix,
            failure_mode=settings.redis_failure_mode, on_degraded=_degradation_recorder(recorder),
        )
        codec = TokenCodec(
            key=settings.signing_key, issuer=settings.token_issuer, audience=settings.token_audience,
            leeway_seconds=settings.token_leeway_seconds,
        )
        auth = AuthService(
            users=users, clients=clients, tokens=tokens, principals=principals, codec=codec, limiter=limiter,
            access_ttl_seconds=settings.access_token_ttl_minutes * 60,
            refresh_ttl_seconds=settings.refresh_token_ttl_minutes * 60,
            session_max_age_seconds=int(settings.session_max_age.total_seconds()),
            login_policy=LoginPolicy(
                attempts_per_address_per_minute=settings.login_attempts_per_ip_per_minute,
                failures_per_account_and_address=settings.login_failures_per_account_and_address,
                delay_after_failures_per_hour=settings.login_failures_per_account_per_hour,
                max_delay_seconds=settings.login_delay_max_seconds,
                known_address_days=settings.login_known_address_days,
            ),
        )
        prices = SqlPriceStore(engine, database_url=settings.db_url)
        limits = push_limits(settings)
        broker = None
        if settings.redis_url:
            broker = RedisBroker(settings.redis_url, key_prefix=settings.key_prefix, stream_maxlen=limits.replay_count)
        hub = Hub(limits, broker=broker)
        webhooks = SqlWebhookStore(engine)
        publisher = Publisher(hub, recorder=recorder, webhooks=webhooks,
                              outbox_limit=settings.webhook_outbox_max_pending)
        audit_feed = AuditFeed(publisher)
        # Every signed tree head this process makes goes out on audit.heads (streams and webhooks), root in base64
        # as in the note itself.
        backend.on_head(lambda head: audit_feed.on_head(head.note, head.size, base64.b64encode(head.root).decode()))
        return cls(
            settings=settings, engine=engine, users=users, clients=clients, tokens=tokens, principals=principals,
            prices=prices, backtests=SqlBacktestStore(engine), limiter=limiter, codec=codec, auth=auth,
            anomalies=AnomalyService(prices), audit=backend, recorder=recorder, hub=hub, publisher=publisher,
            announcer=IngestAnnouncer(method=settings.push_anomaly_method, window=settings.push_anomaly_window,
                                      threshold=settings.push_anomaly_threshold),
            audit_feed=audit_feed, webhooks=webhooks,
            tickets=TicketService(
                RedisTickets(settings.redis_url, key_prefix=settings.key_prefix) if settings.redis_url
                else MemoryTickets(), ttl_seconds=settings.push_ticket_ttl_seconds),
        )

    async def start(self) -> None:
        """Check the signing key and try to open the audit trail.

        The audit store may be unreachable: the runtime starts anyway; the recorder refuses
        (``Unavailable``) and retries on later use.

        Raises:
            ConfigurationError: the JWT signing key is too short.
        """
        configure_compute(timeout_seconds=self.settings.compute_timeout_seconds,
                          max_concurrent=self.settings.compute_max_concurrent)
        await asyncio.to_thread(self.codec.check_key)
        self.recorder.attach(await self.audit.reconnect())

    async def close(self) -> None:
        """Queue pending refusal summaries, drain the writer (shutdown checkpoint), disconnect."""
        try:
            self.recorder.flush_refusals(everything=True)
            await asyncio.to_thread(self.audit.close)
        finally:  # a failing audit store must not leave the push connections (Redis reader, sockets) open
            self.recorder.attach(None)
            try:
                await self.audit_feed.close()
                await self.hub.close()
                await self.tickets.store.close()
            finally:
                await self.limiter.close()
                self.principals.close()
                await self.engine.dispose()


def push_limits(settings: Settings) -> PushLimits:
    """The push limits of ``GENESIS_PUSH_*``.

    Raises:
        ConfigurationError: an inconsistent combination (a message larger than the replay window).
    """
    return PushLimits(
        connections_per_principal=settings.push_connections_per_principal,
        subscriptions_per_connection=settings.push_subscriptions_per_connection,
        client_messages_per_second=settings.push_client_messages_per_second,
        client_messages_burst=settings.push_client_messages_burst,
        queue_messages=settings.push_queue_messages, replay_count=settings.push_replay_count,
        replay_bytes=settings.push_replay_bytes, replay_bytes_total=settings.push_replay_bytes_total,
        heartbeat_seconds=settings.push_heartbeat_seconds, revalidate_seconds=settings.push_revalidate_seconds,
    )


def webhook_policy(settings: Settings) -> UrlPolicy:
    """The SSRF allow-list of ``GENESIS_WEBHOOK_ALLOWED_HOSTS``: IP addresses and CIDRs as networks, names as hosts."""
    hosts, networks = [], []
    for item in settings.webhook_allowed_hosts:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            hosts.append(item)
        else:
            networks.append(item)
    return UrlPolicy.allowing(hosts=hosts, networks=networks)


def audit_backend(settings: Settings) -> AuditBackend:
    """The audit store and writer of this installation, not yet opened."""
    return AuditBackend(
        database_url=settings.db_url, data_dir=settings.data_dir,
        hmac_key=settings.audit_hmac_key.get_secret_value() if settings.audit_hmac_key else None,
        timeout_seconds=settings.database_timeout_seconds, batch_max=settings.audit_batch_max,
        head_interval_seconds=settings.audit_head_interval_seconds, head_log=settings.head_log_path,
        log_origin=settings.audit_log_origin,
    )


def _degradation_recorder(recorder: AuditRecorder) -> OnDegraded:
    """What the limiter calls when Redis fails: an audit event, queued without waiting (it must not fail a request)."""

    def degraded(mode: str) -> None:
        recorder.submit_quietly([new_event("ratelimit.degraded", outcome="failure",
                                           message=f"rate-limit store (redis) failed; {mode}",
                                           metadata={"mode": mode})], what="the rate-limit degradation")

    return degraded


@dataclass(frozen=True, slots=True)
class LibraryHandle:
    """What :func:`configure_library` opened; ``close()`` drains the trail (also run at exit)."""

    settings: Settings
    audit: AuditBackend
    recorder: AuditRecorder
    logging: LoggingHandle

    def close(self) -> None:
        """Drain the trail and stop logging; ``genesis.configure()`` may open a new one afterwards."""
        global _library
        if _library is self:
            _library = None
        if audit.get_config().recorder is self.recorder:
            audit.configure(recorder=None, store=None)
        self.recorder.flush_refusals(everything=True)
        self.audit.close()
        self.logging.close()


_library: LibraryHandle | None = None


def configure_library(
    settings: Settings | None = None, *, migrate: bool = True, console: Literal["auto", "off"] = "off"
) -> LibraryHandle:
    """Make ``log_action`` / ``get_audit_logs`` write to and read from this installation's trail.

    Reads the same ``GENESIS_*`` settings and data directory as the server (or ``settings``), applies
    migrations, starts logging (files only unless ``console="auto"``) and the audit writer, and
    registers its draining at interpreter exit. Idempotent: a second call returns the first handle.
    Many processes may do this at once, on SQLite or PostgreSQL: they share one chain.

    Raises:
        ConfigurationError: the settings are invalid.
        Unavailable: the audit store cannot be opened.
    """
    global _library
    if _library is not None:
        return _library
    settings = settings or get_settings()
    if migrate:
        Runtime.migrate(settings)
    log_settings = settings if console == "auto" else settings.model_copy(update={"log_console": False})
    logging_handle = setup_logging(log_settings)
    backend = audit_backend(settings)
    try:
        writer = backend.open()
    except Exception as exc:
        logging_handle.close()
        raise Unavailable(f"the audit store cannot be opened: {type(exc).__name__}", component="audit") from exc
    recorder = AuditRecorder(writer, refusal_window_seconds=settings.audit_refusal_window_seconds)
    audit.configure(recorder=recorder, store=backend.store)
    _library = LibraryHandle(settings, backend, recorder, logging_handle)
    atexit.register(_close_library)
    return _library


def _close_library() -> None:
    if _library is not None:
        _library.close()
