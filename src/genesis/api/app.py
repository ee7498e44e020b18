"""``create_app(settings)``: the FastAPI application, wired from settings and nothing else."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from genesis import __version__
from genesis.api.clientip import ClientAddressResolver
from genesis.api.metrics import RATE_LIMIT_DEGRADED
from genesis.api.middleware import RequestMiddleware
from genesis.api.problems import install_problem_handlers
from genesis.api.request_audit import RequestAudit
from genesis.api.routers import admin, analytics, anomalies, audit, auth, backtests, health, metrics, prices
from genesis.api.web import install_web
from genesis.audit import AUDIT, log_action
from genesis.config import Settings, get_settings
from genesis.runtime import Runtime

log = logging.getLogger("genesis.api")

DESCRIPTION = """
Genesis is the integration and audit layer of an algorithmic-trading system.

* **Log in** with `POST /token` (OAuth2 password grant for people, client credentials for machines), or with
  the **Authorize** button above.
* Every authenticated request, every login attempt and every refusal is written to a tamper-evident audit
  trail before the response is sent.
* Every error is an RFC 9457 problem document with a `detail` member and the request's `correlation_id`.
"""

TAGS = [
    {"name": "auth", "description": "OAuth2 tokens: issue, refresh, revoke."},
    {"name": "health", "description": "Liveness and readiness probes."},
    {"name": "analytics", "description": "Indicators and strategy values over posted prices."},
    {"name": "prices", "description": "Ingest and read price series per symbol."},
    {"name": "backtests", "description": "Backtests and strategy performance."},
    {"name": "anomalies", "description": "Streaming anomaly detection on stored prices."},
    {"name": "audit", "description": "Query, verify and export the tamper-evident audit trail (scope `audit:read`)."},
    {"name": "admin", "description": "Users and machine clients (scope `admin`)."},
]


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> FastAPI:
    """Build the API for ``settings`` (default: the process settings)."""
    settings = settings or get_settings()
    holder: dict[str, Runtime] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if migrate:
            try:
                await asyncio.to_thread(Runtime.migrate, settings)
            except Exception as exc:  # keep serving: /ready says what is wrong
                log.error("migrations could not be applied: %s", type(exc).__name__)
        runtime = Runtime.build(settings, on_limiter_degraded=_limiter_degraded)
        await runtime.start()
        holder["runtime"] = runtime
        app.state.runtime = runtime
        try:
            generated = await runtime.auth.bootstrap_admin(
                username=settings.admin_username,
                password=settings.admin_password.get_secret_value() if settings.admin_password else None,
            )
        except Exception as exc:  # the database may come up later: serve /ready as 503 meanwhile
            log.warning("could not check for the bootstrap admin: %s", type(exc).__name__)
            generated = None
        if generated:
            # Printed once, straight to the terminal: never through logging, so it reaches no log file.
            print(
                f"\n  Created admin user {settings.admin_username!r} with password: {generated}\n"
                "  (shown once; change it with `genesis users set-password`)\n",
                file=sys.stderr, flush=True,
            )
        try:
            yield
        finally:
            await runtime.close()

    app = FastAPI(
        title="Genesis API", version=__version__, description=DESCRIPTION, openapi_tags=TAGS,
        lifespan=lifespan,
        swagger_ui_parameters={"persistAuthorization": True},
        docs_url=None, redoc_url=None,  # served by install_web from packaged assets, not from a CDN
    )
    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(analytics.router)
    app.include_router(prices.router)
    app.include_router(backtests.router)
    app.include_router(anomalies.router)
    app.include_router(audit.router)
    app.include_router(admin.router)
    app.include_router(metrics.router)
    install_web(app)

    async def record_audit(record: RequestAudit, fields: dict[str, Any]) -> None:
        runtime = holder.get("runtime")
        if runtime is None:
            return
        if fields.get("status") == 429:  # a flood of refusals must not become a flood of durable writes
            await runtime.record_refusal(fields)
        else:
            await runtime.record_request(fields)

    app.add_middleware(
        RequestMiddleware, max_body_bytes=settings.max_body_bytes,
        resolver=ClientAddressResolver(settings.trusted_proxies), audit=record_audit,
        body_timeout=settings.request_timeout_seconds,
    )
    return app


def _limiter_degraded(mode: str) -> None:
    """Redis failed: count it and leave an audit event (without waiting for its commit)."""
    RATE_LIMIT_DEGRADED.labels(mode).inc()
    try:
        log_action(AUDIT, f"rate-limit store (redis) failed; {mode}", action="ratelimit.degraded",
                   outcome="failure", metadata={"mode": mode})
    except Exception as exc:  # the audit trail may itself be down; the metric still counts
        log.error("could not record the rate-limit degradation: %s", type(exc).__name__)
