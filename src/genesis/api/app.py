"""``create_app(settings)``: the FastAPI application, wired from settings and nothing else."""

from __future__ import annotations

import functools

from fastapi import FastAPI

from genesis import __version__
from genesis.api.authentication import Gatekeeper, RouteTable
from genesis.api.bulk_body import publish_schemas
from genesis.api.clientip import ClientAddressResolver
from genesis.api.deps import current_principal
from genesis.api.lifespan import server_lifespan
from genesis.api.middleware import RequestMiddleware
from genesis.api.openapi import build_openapi, operation_id
from genesis.api.problems import install_problem_handlers
from genesis.api.ratelimit import RateLimits
from genesis.api.routers import (
    admin,
    analytics,
    anomalies,
    audit,
    auth,
    backtests,
    health,
    metrics,
    prices,
    stream,
    webhooks,
)
from genesis.api.routers.docs import OPENAPI_URL, openapi_router
from genesis.api.routers.prices import PricesIn
from genesis.api.web import install_web
from genesis.config import Settings, get_settings
from genesis.runtime import Runtime

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
    {"name": "push", "description": "Streams of prices, anomalies, backtests and audit events: `GET /ws` (WebSocket) "
                                    "and `GET /stream` (Server-Sent Events). See docs/push.md."},
    {"name": "webhooks", "description": "Signed, retried webhook endpoints (scope `webhooks:manage`)."},
    {"name": "admin", "description": "Users and machine clients (scope `admin`)."},
]


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> FastAPI:
    """Build the API for ``settings`` (default: the process settings); no I/O until it starts."""
    settings = settings or get_settings()
    runtime = Runtime.build(settings)
    app = FastAPI(
        title="Genesis API", version=__version__, description=DESCRIPTION, openapi_tags=TAGS,
        lifespan=server_lifespan(runtime, migrate=migrate),
        swagger_ui_parameters={"persistAuthorization": True},
        generate_unique_id_function=operation_id, redirect_slashes=False,
        docs_url=None, redoc_url=None,  # served by install_web from packaged assets, not from a CDN
        openapi_url=None,  # served by openapi_router, rate-limited per address like the pages
    )
    install_problem_handlers(app)
    for module in (health, auth, analytics, prices, backtests, anomalies, audit, stream, webhooks, admin, metrics):
        app.include_router(module.router)
    app.openapi_url = OPENAPI_URL  # what the pages load (FastAPI's own unthrottled route was not added)
    app.include_router(openapi_router(app))
    install_web(app)
    app.openapi = functools.partial(build_openapi, app)  # type: ignore[method-assign]
    publish_schemas(app, PricesIn)  # the body of POST /prices/{symbol}, which the route reads itself
    gatekeeper = Gatekeeper(
        authenticator=runtime.auth, limits=RateLimits(runtime.limiter, settings),
        routes=RouteTable.from_routes(app.routes, principal_dependency=current_principal),
    )
    resolver = ClientAddressResolver(settings.trusted_proxies)
    app.state.runtime = runtime
    app.state.gatekeeper = gatekeeper
    app.state.client_resolver = resolver  # the WebSocket route resolves its client as the middleware does
    app.add_middleware(
        RequestMiddleware, recorder=runtime.recorder, gatekeeper=gatekeeper,
        resolver=resolver, max_body_bytes=settings.max_body_bytes,
        body_timeout=settings.request_timeout_seconds,
    )
    return app
