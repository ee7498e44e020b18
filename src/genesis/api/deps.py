"""FastAPI dependencies as a chain: principal, then scope, then rate limit, then the intent.

Routes declare what they need with chained ``Annotated`` aliases (the full-stack-fastapi-template
way)::

    Trader = Annotated[Principal, allow("prices:write", limit="prices")]

    async def ingest(..., principal: Trader, _: RecordIntent) -> IngestOut: ...

``allow`` resolves the caller (:func:`current_principal`, which asks the request's
:class:`~genesis.api.authentication.Gatekeeper`), checks the scopes declared on it, then counts
the hit against the route group's rate limit. ``RecordIntent``, declared after it on routes that
change state, commits the ``started`` audit event before the route does anything.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Response, Security
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlowPassword, OAuthFlows
from fastapi.security import OAuth2, SecurityScopes

from genesis.api.authentication import Gatekeeper
from genesis.api.ratelimit import RateLimits
from genesis.api.request_audit import request_audit, route_name
from genesis.errors import Forbidden
from genesis.runtime import Runtime
from genesis.security.scopes import SCOPES
from genesis.services.auth import Principal

# One scheme per OAuth2 flow, so that clients and Swagger UI offer each on its own; either one authorises.
password_scheme = OAuth2(
    flows=OAuthFlows(password=OAuthFlowPassword(tokenUrl="token", scopes=SCOPES)),
    scheme_name="OAuth2Password", description="People: log in with a username and password.", auto_error=False,
)
client_scheme = OAuth2(
    flows=OAuthFlows(clientCredentials=OAuthFlowClientCredentials(tokenUrl="token", scopes=SCOPES)),
    scheme_name="OAuth2ClientCredentials",
    description="Machine clients: a client id and secret (`genesis clients create`).", auto_error=False,
)


async def get_runtime(request: Request) -> Runtime:
    runtime = request.app.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def gatekeeper(request: Request) -> Gatekeeper:
    keeper = request.app.state.gatekeeper
    assert isinstance(keeper, Gatekeeper)
    return keeper


def rate_limits(request: Request) -> RateLimits:
    return gatekeeper(request).limits


async def current_principal(
    request: Request,
    _password: Annotated[str | None, Depends(password_scheme)] = None,
    _client: Annotated[str | None, Depends(client_scheme)] = None,
) -> Principal:
    """The authenticated caller (401 when there is none); the OAuth2 schemes are named for the OpenAPI document."""
    return await gatekeeper(request).principal(request.scope)


async def _scoped(
    security_scopes: SecurityScopes, principal: Annotated[Principal, Depends(current_principal)]
) -> Principal:
    missing = sorted(set(security_scopes.scopes) - principal.scopes)
    if missing:
        raise Forbidden(f"this operation needs the scope {' '.join(missing)}",
                        details={"scope_hint": " ".join(security_scopes.scopes)})
    return principal


def allow(*scopes: str, limit: str) -> Any:
    """The caller, holding every one of ``scopes``, counted against the ``limit`` group's rate limit."""

    async def limited(
        request: Request, response: Response, principal: Annotated[Principal, Security(_scoped)]
    ) -> Principal:
        await rate_limits(request).enforce(limit, principal.subject, response.headers)
        return principal

    limited.limit_group = limit  # type: ignore[attr-defined]  # read by the RouteTable
    return Security(limited, scopes=list(scopes))


async def record_intent(request: Request, runtime: RuntimeDep) -> None:
    """Commit a ``started`` audit event before a state-changing route does anything.

    The outcome event is written when the response starts, after the route's own writes have committed: were the
    audit store to fail only then, the change would stand unrecorded behind a 503. Committing the intent first
    means a failing store refuses the change up front (503, nothing done), and a crash in between leaves a
    ``started`` event without an outcome - visibly undecided, never silently missing.
    """
    await runtime.recorder.record(request_audit(request).intent_event(route_name(request.scope)))


RecordIntent = Annotated[None, Depends(record_intent)]


def public(limit: str) -> Any:
    """A dependency for public routes: rate-limited by client address."""

    async def dependency(request: Request, response: Response) -> None:
        await rate_limits(request).enforce(limit, f"ip:{request_audit(request).source_ip}", response.headers)

    dependency.limit_group = limit  # type: ignore[attr-defined]
    return Depends(dependency)
