"""RFC 9457 problem details for every error response.

Each body keeps a ``detail`` member so clients written for FastAPI's
``{"detail": ...}`` keep working; no stack trace or internal text is ever sent.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from genesis.api.request_audit import request_audit
from genesis.audit.context import get_correlation_id
from genesis.errors import Forbidden, GenesisError, RateLimited, Unauthenticated, Unavailable
from genesis.services.auth import OAuthError

log = logging.getLogger("genesis.api")

PROBLEM_TYPE_BASE = "https://genesis.dev/problems/"
BODY_PARSE_ERROR = "There was an error parsing the body"  # FastAPI's detail when a body cannot be decoded
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class RequestRefused(StarletteHTTPException):
    """An error raised while a request body is being read (by the middleware's guarded ``receive``).

    FastAPI turns any exception raised during body parsing into a generic 400, except an
    HTTPException; this one carries the real error through, and the handlers below answer for
    ``error`` as if it had been raised by the route (a domain error, a database outage...).
    """

    def __init__(self, error: Exception) -> None:
        status = error.http_status if isinstance(error, GenesisError) else 500
        super().__init__(status, str(error))
        self.error = error


def problem_document(
    status: int, detail: str, *, code: str | None = None, extra: dict[str, Any] | None = None,
    correlation_id: str | None = None,
) -> dict[str, Any]:
    """The RFC 9457 members of a problem: type, title, status, detail, correlation_id (and ``extra``)."""
    phrase = HTTPStatus(status).phrase
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + (code or phrase.lower().replace(" ", "-")),
        "title": phrase,
        "status": status,
        "detail": detail,
    }
    correlation_id = correlation_id or get_correlation_id()
    if correlation_id:
        body["correlation_id"] = correlation_id
    if extra:
        body.update(extra)
    return body


def problem_response(
    status: int, detail: str, *, code: str | None = None, headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None, media_type: str = "application/problem+json",
) -> Response:
    """A problem-details response for ``status`` with a human ``detail``."""
    body = problem_document(status, detail, code=code, extra=extra)
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type=media_type)


def bearer_challenge(error: str | None = "invalid_token", description: str | None = None) -> dict[str, str]:
    value = "Bearer"
    if error:
        value += f' error="{error}"'
        if description:
            value += f', error_description="{description}"'
    return {"WWW-Authenticate": value}


def response_for(exc: GenesisError) -> Response:
    """Translate a domain error to its HTTP problem: status, type and title come from the error itself."""
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(exc, OAuthError):  # RFC 6749 5.2 members beside the problem members
        headers.update(NO_STORE)
        if exc.http_status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="genesis", Bearer'
        extra = {"error": exc.error, "error_description": exc.message}
    elif isinstance(exc, Unauthenticated):
        headers = bearer_challenge(description=exc.message)
    elif isinstance(exc, Forbidden):
        headers = bearer_challenge("insufficient_scope", exc.details.get("scope_hint"))
    elif isinstance(exc, RateLimited):
        headers = {"Retry-After": str(exc.retry_after)}
        if exc.limit is not None:
            headers.update({"RateLimit-Limit": str(exc.limit), "RateLimit-Remaining": "0",
                            "RateLimit-Reset": str(exc.retry_after)})
    elif isinstance(exc, Unavailable):
        headers = {"Retry-After": str(exc.retry_after)}
        extra = {"component": exc.component}
    for member in ("supported", "conflicts", "conflict_count"):  # the details meant for the caller
        if member in exc.details:
            extra[member] = exc.details[member]
    media_type = "application/json" if isinstance(exc, OAuthError) else "application/problem+json"
    return problem_response(exc.http_status, exc.message, code=exc.code, headers=headers or None, extra=extra or None,
                            media_type=media_type)


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for err in exc.errors():
        # Echoing "input" could reflect a password back: keep location, message and type only.
        errors.append({"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", "")),
                       "type": str(err.get("type", ""))})
    return errors


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path (for the ``Allow`` header of a 405)."""
    routes = request.app.router.routes
    return [method for method in HTTP_METHODS
            if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)]


Handler = Callable[[Request, Exception], Awaitable[Response]]
TOKEN_ROUTES = frozenset({"auth.token.issue", "auth.token.revoke"})


def _no_store_on_token_routes(handler: Handler) -> Handler:
    """Every answer of the token endpoints is ``no-store`` (RFC 6749 5.1), errors (422, 429, ...) included."""

    async def wrapped(request: Request, exc: Exception) -> Response:
        response = await handler(request, exc)
        if getattr(request.scope.get("route"), "name", None) in TOKEN_ROUTES:
            response.headers.update(NO_STORE)
        return response

    return wrapped


def install_problem_handlers(app: FastAPI) -> None:
    """Register handlers so that every error leaves as a problem document."""

    async def on_domain(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GenesisError)
        if exc.audit:  # what the auditor must know and the caller must not (e.g. "refused: not the owner")
            request_audit(request).metadata.update(exc.audit)
        return response_for(exc)

    async def on_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = _field_errors(exc)
        fields = ", ".join(".".join(e["loc"][1:] or e["loc"]) for e in errors[:10])
        return problem_response(
            422, f"request validation failed: {fields}" if fields else "request validation failed",
            code="validation-error", extra={"errors": errors},
        )

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if isinstance(exc, RequestRefused):
            return await handler_for(exc.error)(request, exc.error)
        headers = dict(exc.headers or {})
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 400 and detail == BODY_PARSE_ERROR:
            # A body that is not UTF-8 (or a broken form) is as malformed as broken JSON, which FastAPI answers
            # with 422: answer alike, so every operation documents one status for "unreadable body".
            return problem_response(422, "request body could not be parsed", code="validation-error",
                                    extra={"errors": [{"loc": ["body"], "msg": "unreadable body", "type": "body"}]})
        if exc.status_code == 405:
            # Starlette names only the methods of the first route on the path; RFC 9110 wants all of them.
            headers["Allow"] = ", ".join(allowed_methods(request))
        return problem_response(exc.status_code, detail, headers=headers)

    async def on_database(_: Request, exc: Exception) -> Response:
        # Connection-level failures (server down, pool timeout): the client may retry.
        log.error("database unavailable: %s", type(exc).__name__)
        return problem_response(503, "the database is unavailable; retry shortly", code="unavailable",
                                headers={"Retry-After": "2"}, extra={"component": "database"})

    async def on_unexpected(_: Request, exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc)
        return problem_response(500, "internal error; quote the correlation id when reporting it")

    handlers: list[tuple[type[Exception], Handler]] = [
        (GenesisError, on_domain), (RequestValidationError, on_validation), (StarletteHTTPException, on_http),
        (OperationalError, on_database), (InterfaceError, on_database), (SATimeoutError, on_database),
        (Exception, on_unexpected),
    ]
    def handler_for(error: Exception) -> Handler:
        return next(handler for exc_class, handler in handlers if isinstance(error, exc_class))

    for exc_class, handler in handlers:
        app.add_exception_handler(exc_class, _no_store_on_token_routes(handler))
