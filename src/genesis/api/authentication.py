"""Who is calling, decided once per request and before any body is read.

FastAPI reads a request body before it resolves a route's dependencies, so a bearer check done
only in a dependency lets an anonymous client make the server read and parse megabytes first.
The :class:`Gatekeeper` is injected into the request middleware (as Starlette injects a backend
into its ``AuthenticationMiddleware``) and into the dependencies: the middleware asks it at the
first read of a body, the ``current_principal`` dependency for routes without one. Either way the
bearer token is verified once and the answer (a principal, or a refusal) is kept for the request.

A route needs a principal when its dependencies include ``current_principal``; the
:class:`RouteTable` finds out once, at start-up, from the routes themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import parse_qsl

from fastapi import routing as fastapi_routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.types import Scope

from genesis.api.ratelimit import RateLimits
from genesis.api.request_audit import STATE_KEY, RequestAudit
from genesis.audit.context import set_user
from genesis.errors import GenesisError, Unauthenticated
from genesis.services.auth import Principal

AUTH_KEY: Final = "genesis_auth"
DEFAULT_GROUP: Final = "default"


class Authenticator(Protocol):
    """Turns an access token into the principal behind it (``AuthService`` is one)."""

    async def authenticate(self, token: str) -> Principal: ...


@dataclass(frozen=True, slots=True)
class RouteRule:
    """What the gatekeeper needs to know about one route."""

    needs_principal: bool
    limit_group: str


class RouteTable:
    """Per route: does it need a principal, and which rate-limit group does it count against."""

    def __init__(self, rules: dict[Callable[..., Any], RouteRule]) -> None:
        self._rules = rules  # by endpoint function: the one object every copy of a route shares

    @classmethod
    def from_routes(cls, routes: Sequence[Any], *, principal_dependency: Callable[..., Any]) -> RouteTable:
        rules: dict[Callable[..., Any], RouteRule] = {}
        for route in _api_routes(routes):
            calls = [dep.call for dep in _walk(route.dependant) if dep.call is not None]
            group = next((c.limit_group for c in calls if hasattr(c, "limit_group")), DEFAULT_GROUP)
            rules[route.endpoint] = RouteRule(principal_dependency in calls, str(group))
        return cls(rules)

    def rule(self, scope: Scope) -> RouteRule | None:
        """The rule of the route that matched ``scope`` (None before routing or for other routes)."""
        route = scope.get("route")
        return None if route is None else self._rules.get(getattr(route, "endpoint", None))  # type: ignore[arg-type]


def _api_routes(routes: Sequence[Any]) -> Iterator[APIRoute]:
    contexts = getattr(fastapi_routing, "iter_route_contexts", None)  # FastAPI >= 0.16x wraps included routers
    for item in contexts(routes) if contexts else routes:
        route = getattr(item, "route", item)
        if isinstance(route, APIRoute):
            yield route


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _walk(sub)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if that is what it holds."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class Gatekeeper:
    """Authenticates each request at most once; anonymous refusals count against the route's limit by address."""

    def __init__(self, *, authenticator: Authenticator, limits: RateLimits, routes: RouteTable | None = None) -> None:
        self.authenticator = authenticator
        self.limits = limits
        self.routes = routes or RouteTable({})

    def needs_principal(self, scope: Scope) -> bool:
        rule = self.routes.rule(scope)
        return rule is not None and rule.needs_principal

    async def principal(self, scope: Scope) -> Principal:
        """The caller of ``scope``'s request; the first call decides, later ones repeat the answer.

        Raises:
            Unauthenticated: no usable bearer token (401).
            RateLimited: refused, and the address is over the route's limit (429).
        """
        state = scope.setdefault("state", {})
        decided = state.get(AUTH_KEY)
        if isinstance(decided, Principal):
            return decided
        if isinstance(decided, GenesisError):
            raise decided
        facts: RequestAudit | None = state.get(STATE_KEY)
        try:
            principal = await self._authenticate(scope)
        except Unauthenticated as refusal:
            error: GenesisError = refusal
            rule = self.routes.rule(scope)
            try:
                await self.limits.enforce(rule.limit_group if rule else DEFAULT_GROUP,
                                          f"ip:{facts.source_ip if facts else 'unknown'}")
            except GenesisError as limited:
                error = limited
            state[AUTH_KEY] = error
            raise error from None
        state[AUTH_KEY] = principal
        if facts is not None:
            facts.actor = principal.subject
            facts.audit = True
        set_user(principal.subject)
        return principal

    async def _authenticate(self, scope: Scope) -> Principal:
        query = scope.get("query_string", b"")
        if query and any(k == "access_token" for k, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True)):
            raise Unauthenticated("tokens in the URL are refused; send an Authorization: Bearer header")
        authorization = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        token = bearer_token(authorization)
        if token is None:
            raise Unauthenticated("missing bearer token")
        return await self.authenticator.authenticate(token)
