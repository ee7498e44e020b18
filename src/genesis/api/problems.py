"""RFC 9457 problem details for every error response, from one registry of problem types.

Every error leaves as ``application/problem+json`` with ``type``, ``title``, ``status``, ``detail`` and
the request's ``correlation_id``; the token endpoint adds OAuth2's ``error`` and ``error_description``
(RFC 6749 5.2) to the same document. Each kind of problem has one type, one title and one status,
listed in :data:`PROBLEM_TYPES` (and in the OpenAPI document). Details never echo the input that was
refused, and no stack trace or internal text is ever sent.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from genesis import errors
from genesis.api.request_audit import request_audit
from genesis.audit.context import get_correlation_id
from genesis.audit.heads import HeadRefused
from genesis.errors import Forbidden, GenesisError, RateLimited, Unauthenticated, Unavailable
from genesis.services.auth import LoginThrottled, OAuthError
from genesis.services.market import PriceConflict

log = logging.getLogger("genesis.api")

PROBLEM_TYPE_BASE: Final = "https://genesis.dev/problems/"
PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
BODY_PARSE_ERROR: Final = "There was an error parsing the body"  # FastAPI's detail when a body cannot be decoded
NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@dataclass(frozen=True, slots=True)
class ProblemType:
    """One kind of problem: its ``type`` slug, the one status it is answered with, its title and meaning."""

    code: str
    status: int
    title: str
    description: str

    @property
    def uri(self) -> str:
        return PROBLEM_TYPE_BASE + self.code


def _from_error(cls: type[GenesisError], description: str) -> ProblemType:
    return ProblemType(cls.code, cls.http_status, cls.title, description)


PROBLEM_TYPES: Final[dict[str, ProblemType]] = {p.code: p for p in (
    ProblemType("validation-error", 422, "Request validation failed",
                "The request does not match the operation's schema; `errors` lists each field and why."),
    _from_error(errors.InvalidInput, "The request is well-formed but a rule the schema cannot state refuses it "
                                     "(e.g. a period longer than the series, an unknown name: `supported` lists "
                                     "the accepted values)."),
    ProblemType("unsupported-media-type", 415, "Unsupported media type",
                "The body is not in the media type the operation takes (JSON operations need "
                "`Content-Type: application/json`)."),
    _from_error(errors.NotFound, "No such resource, or no route at this path."),
    ProblemType("method-not-allowed", 405, "Method not allowed",
                "The path exists but not with this method; the `Allow` header lists the methods it takes."),
    _from_error(errors.Conflict, "The request conflicts with the stored state."),
    _from_error(HeadRefused, "No tree head was signed: the stored tree does not extend the largest head already "
                             "published (a rewritten or cut trail); see the server's ERROR log."),
    _from_error(PriceConflict, "A posted price differs from the one stored at its timestamp; nothing was stored; "
                               "`conflicts` holds the stored values (resend with `?on_conflict=replace` to replace "
                               "them, audited)."),
    _from_error(errors.Unauthenticated, "Credentials are missing, malformed, expired or revoked."),
    _from_error(errors.Forbidden, "The token lacks a scope the operation needs."),
    _from_error(errors.TooLarge, "The body (or a list in it) is larger than the limit for this operation."),
    ProblemType("request-header-fields-too-large", 431, "Request header fields too large",
                "More than 100 header fields, or more than 16 KiB of them."),
    ProblemType("request-timeout", 408, "Request timeout", "The request body did not arrive in time."),
    _from_error(errors.RateLimited, "Too many requests: retry after `Retry-After` seconds."),
    _from_error(LoginThrottled, "Too many login attempts for this account or from this address."),
    _from_error(errors.Unavailable, "A backing service (database, audit store, Redis) cannot serve now; "
                                    "`component` names it; retry after `Retry-After` seconds."),
    ProblemType("internal-error", 500, "Internal error",
                "An unexpected failure, recorded in the audit trail; quote the correlation id when reporting it."),
    *(ProblemType(code.replace("_", "-"), 401 if code == "invalid_client" else 400, "OAuth2 error",
                  f"RFC 6749 5.2 `{code}`: the token endpoint's error, also in the `error` member.")
      for code in ("invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
                   "unsupported_grant_type", "invalid_scope")),
)}
"""Every problem type Genesis answers with (``https://genesis.dev/problems/<code>``)."""


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
    status: int, detail: str, *, code: str, extra: dict[str, Any] | None = None, correlation_id: str | None = None,
) -> dict[str, Any]:
    """The RFC 9457 members of a problem of type ``code``: type, title, status, detail, correlation_id."""
    kind = PROBLEM_TYPES.get(code)
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": kind.title if kind is not None else "Error",
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
    status: int, detail: str, *, code: str, headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None,
) -> Response:
    """A problem-details response for ``status`` with a human ``detail``."""
    body = problem_document(status, detail, code=code, extra=extra)
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


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
    return problem_response(exc.http_status, exc.message, code=exc.code, headers=headers or None, extra=extra or None)


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    found = []
    for err in exc.errors():
        # Echoing "input" could reflect a password back: keep location, message and type only.
        found.append({"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", "")),
                      "type": str(err.get("type", ""))})
    return found


def _line_and_column(document: object, position: int) -> tuple[int, int]:
    text = document if isinstance(document, str) else ""
    before = text[:position]
    return before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1


def _is_json(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def validation_problem(request: Request, exc: RequestValidationError) -> Response:
    """422 naming each field, or the precise reason a body could not be read at all."""
    raw = exc.errors()
    if raw and raw[0].get("type") == "json_invalid":
        position = raw[0].get("loc", ("body", 0))[-1]
        line, column = _line_and_column(getattr(exc, "body", ""), position if isinstance(position, int) else 0)
        reason = str((raw[0].get("ctx") or {}).get("error", "invalid JSON"))
        return problem_response(422, f"the body is not valid JSON: {reason} at line {line}, column {column}",
                                code="validation-error", extra={"errors": [
                                    {"loc": ["body"], "msg": f"{reason} (line {line}, column {column})",
                                     "type": "json_invalid"}]})
    found = _field_errors(exc)
    body_is_whole = any(e["loc"] == ["body"] for e in found)
    if body_is_whole and request.method in ("POST", "PUT", "PATCH") and not _is_json(request):
        return problem_response(415, "send the body as JSON with Content-Type: application/json",
                                code="unsupported-media-type")
    fields = ", ".join(".".join(e["loc"][1:] or e["loc"]) for e in found[:10])
    detail = f"request validation failed: {fields}" if fields else "request validation failed"
    return problem_response(422, detail, code="validation-error", extra={"errors": found})


HTTP_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path (for the ``Allow`` header of a 405)."""
    routes = request.app.router.routes
    return [method for method in HTTP_METHODS
            if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)]


def _routed(scope: dict[str, Any], request: Request) -> bool:
    return any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes)


def http_problem(request: Request, exc: StarletteHTTPException) -> Response:
    """Starlette's own refusals (no route, wrong method, unreadable body, body timeout), in our vocabulary."""
    headers = dict(exc.headers or {})
    status = exc.status_code
    # The method and path are the caller's text: named by what they are, never quoted back (a path can hold a
    # token, markup or a control character).
    path = request.url.path
    if status == 400 and exc.detail == BODY_PARSE_ERROR:
        # A body that is not UTF-8 (or a broken form) is as malformed as broken JSON, which FastAPI answers
        # with 422: answer alike, so every operation documents one status for "unreadable body".
        return problem_response(422, "the request body could not be read (not UTF-8, or a malformed form)",
                                code="validation-error",
                                extra={"errors": [{"loc": ["body"], "msg": "unreadable body", "type": "body"}]})
    if status == 404:
        hint = ""
        if path.endswith("/") and len(path) > 1 and _routed({**request.scope, "path": path.rstrip("/")}, request):
            hint = "; the same path without its trailing slash exists"
        return problem_response(404, f"no route matches this method and path{hint}; see /docs for the operations",
                                code="not-found", headers=headers or None)
    if status == 405:
        # Starlette names only the methods of the first route on the path; RFC 9110 wants all of them.
        allowed = allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        return problem_response(405, f"this method is not allowed on this path; allowed: {', '.join(allowed)}",
                                code="method-not-allowed", headers=headers)
    if status == 408:
        return problem_response(408, str(exc.detail), code="request-timeout", headers=headers or None)
    kind = next((p for p in PROBLEM_TYPES.values() if p.status == status), None)
    detail = exc.detail if isinstance(exc.detail, str) else (kind.title if kind else "error")
    return problem_response(status, detail, code=kind.code if kind else "error", headers=headers or None)


Handler = Callable[[Request, Exception], Awaitable[Response]]
TOKEN_ROUTES: Final = frozenset({"auth.token.issue", "auth.token.revoke"})


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

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return validation_problem(request, exc)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if isinstance(exc, RequestRefused):
            return await handler_for(exc.error)(request, exc.error)
        return http_problem(request, exc)

    async def on_database(_: Request, exc: Exception) -> Response:
        # Connection-level failures (server down, pool timeout): the client may retry.
        log.error("database unavailable: %s", type(exc).__name__)
        return problem_response(503, "the database is unavailable; retry shortly", code="unavailable",
                                headers={"Retry-After": "2"}, extra={"component": "database"})

    async def on_unexpected(_: Request, exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc)
        return problem_response(500, "internal error; quote the correlation id when reporting it",
                                code="internal-error")

    handlers: list[tuple[type[Exception], Handler]] = [
        (GenesisError, on_domain), (RequestValidationError, on_validation), (StarletteHTTPException, on_http),
        (OperationalError, on_database), (InterfaceError, on_database), (SATimeoutError, on_database),
        (Exception, on_unexpected),
    ]

    def handler_for(error: Exception) -> Handler:
        return next(handler for exc_class, handler in handlers if isinstance(error, exc_class))

    for exc_class, handler in handlers:
        app.add_exception_handler(exc_class, _no_store_on_token_routes(handler))
