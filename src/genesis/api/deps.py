"""FastAPI dependencies: the runtime, the caller, its scopes and its rate limit."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Response, Security
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlowPassword, OAuthFlows
from fastapi.security import OAuth2

from genesis.api.metrics import RATE_LIMITED
from genesis.api.request_audit import RequestAudit, request_audit
from genesis.audit.context import set_user
from genesis.errors import Forbidden, RateLimited, Unauthenticated, Unavailable
from genesis.runtime import Runtime
from genesis.security.scopes import SCOPES
from genesis.services.auth import Principal

oauth2_scheme = OAuth2(
    flows=OAuthFlows(
        password=OAuthFlowPassword(tokenUrl="token", scopes=SCOPES),
        clientCredentials=OAuthFlowClientCredentials(tokenUrl="token", scopes=SCOPES),
    ),
    scheme_name="OAuth2",
    description="Log in with a username and password (users) or a client id and secret (machine clients).",
    auto_error=False,
)


async def get_runtime(request: Request) -> Runtime:
    runtime = request.app.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def limit_spec(runtime: Runtime, name: str) -> str | None:
    """The configured limit for a named route group, or None when limits are off."""
    settings = runtime.settings
    if not settings.rate_limits_enabled:
        return None
    return str(getattr(settings, f"rate_limit_{name}", settings.rate_limit_default))


async def enforce_limit(runtime: Runtime, response: Response | None, name: str, key: str) -> None:
    """Count a hit; raise RateLimited when over; set RateLimit-* headers on ``response``."""
    spec = limit_spec(runtime, name)
    if spec is None:
        return
    decision = await runtime.limiter.hit(spec, name, key)
    if not decision.allowed:
        RATE_LIMITED.labels(name).inc()
        raise RateLimited(
            f"rate limit of {spec} exceeded; retry in {decision.reset_after} s",
            retry_after=decision.reset_after, limit=decision.limit,
        )
    if response is not None:
        response.headers["RateLimit-Limit"] = str(decision.limit)
        response.headers["RateLimit-Remaining"] = str(decision.remaining)
        response.headers["RateLimit-Reset"] = str(decision.reset_after)


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def access(*scopes: str, limit: str) -> Any:
    """A dependency that authenticates, rate-limits (per principal) and checks ``scopes``."""

    async def dependency(
        request: Request, response: Response, runtime: RuntimeDep,
        authorization: Annotated[str | None, Depends(oauth2_scheme)],
    ) -> Principal:
        record = request_audit(request)
        if "access_token" in request.query_params:
            await enforce_limit(runtime, None, limit, f"ip:{record.source_ip}")
            raise Unauthenticated("tokens in the URL are refused; send an Authorization: Bearer header")
        token = bearer_token(authorization)
        if token is None:
            await enforce_limit(runtime, None, limit, f"ip:{record.source_ip}")
            raise Unauthenticated("missing bearer token")
        try:
            principal = await runtime.auth.authenticate(token)
        except Unauthenticated:
            await enforce_limit(runtime, None, limit, f"ip:{record.source_ip}")
            raise
        record.actor = principal.subject
        record.audit = True
        set_user(principal.subject)
        await enforce_limit(runtime, response, limit, principal.subject)
        missing = sorted(set(scopes) - principal.scopes)
        if missing:
            raise Forbidden(
                f"this operation needs the scope {' '.join(missing)}", details={"scope_hint": " ".join(scopes)}
            )
        if request.method not in SAFE_METHODS and _route_name(request) not in COMPUTE_ONLY_ROUTES:
            await record_intent(runtime, request, record)
        return principal

    return Security(dependency, scopes=list(scopes))


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# POST routes that compute over the request body and store nothing: their outcome event is enough.
COMPUTE_ONLY_ROUTES = frozenset({"strategy.calculate", "indicators.compute"})


def _route_name(request: Request) -> str | None:
    return getattr(request.scope.get("route"), "name", None)


async def record_intent(runtime: Runtime, request: Request, record: RequestAudit) -> None:
    """Commit a ``started`` audit event before a state-changing route does anything.

    The outcome event is written when the response starts, after the route's own writes have committed: were the
    audit store to fail only then, the change would stand unrecorded behind a 503. Committing the intent first
    means a failing store refuses the change up front (503, nothing done), and a crash in between leaves a
    ``started`` event without an outcome - visibly undecided, never silently missing.
    """
    route = request.scope.get("route")
    action = getattr(route, "name", None) or f"http.{request.method.lower()}"
    try:
        await runtime.record_request({
            "action": action, "outcome": "started", "actor": record.actor or "anonymous",
            "source_ip": record.source_ip, "user_agent": (request.headers.get("user-agent") or "")[:512] or None,
            "method": request.method, "path": request.url.path[:2048], "status": None,
            "correlation_id": record.correlation_id, "request_id": record.request_id,
            "message": f"{request.method} {request.url.path[:200]} started", "metadata": {},
        })
    except Unavailable:
        raise
    except Exception as exc:  # the writer refused the batch (disk full, locked, I/O error)
        raise Unavailable("the audit store is unavailable; nothing was changed", component="audit") from exc


def public(limit: str) -> Any:
    """A dependency for public routes: rate-limited by client address."""

    async def dependency(request: Request, response: Response, runtime: RuntimeDep) -> None:
        await enforce_limit(runtime, response, limit, f"ip:{request_audit(request).source_ip}")

    return Depends(dependency)
