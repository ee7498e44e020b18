"""Pure ASGI middleware: correlation ids, size and time limits, authentication before the body, the audit of
each request, metrics.

A response is sent only after its request's audit event is committed: the
``http.response.start`` message is held until the recorder confirms the event; if the audit
store cannot take it, the client gets a 503 instead of an acknowledgement that was never
recorded. A request the application fails on (an exception no handler answered) is recorded
too, with outcome ``error``, and answered with a 500 problem document here.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Final

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genesis.api.authentication import Gatekeeper
from genesis.api.clientip import ClientAddressResolver
from genesis.api.metrics import REQUEST_LATENCY, REQUESTS
from genesis.api.problems import RequestRefused, problem_document
from genesis.api.request_audit import REFUSALS, STATE_KEY, RequestAudit, route_name
from genesis.audit import AuditRecorder
from genesis.audit.context import bind_request, new_correlation_id
from genesis.errors import TooLarge, Unavailable

log = logging.getLogger("genesis.api.access")

REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+=-]{0,127}$")
TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
MAX_HEADER_COUNT: Final = 100
MAX_HEADER_BYTES: Final = 16 * 1024  # h11's default limit for the whole header block
AUDIT_DOWN: Final = "the audit store is unavailable; nothing was acknowledged"
ANONYMOUS_BODY_BYTES: Final = 8 * 1024
"""Largest body of a route that takes no token (``/token``, ``/token/revoke``): a few form fields."""
TOKEN_PATHS: Final = frozenset({"/token", "/token/revoke"})
NOSNIFF: Final = (b"x-content-type-options", b"nosniff")
NO_STORE: Final = ((b"cache-control", b"no-store"), (b"pragma", b"no-cache"))


def security_headers(path: str, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` with ``nosniff`` always, and ``no-store`` unless the response chose its caching.

    The token endpoints are ``no-store`` / ``no-cache`` whatever else they say (RFC 6749 5.1): every answer,
    the 413, 431, 405 and 500 answered before or outside the route included.
    """
    names = {name.lower() for name, _ in headers}
    out = list(headers)
    if b"x-content-type-options" not in names:
        out.append(NOSNIFF)
    if path in TOKEN_PATHS:
        out = [(k, v) for k, v in out if k.lower() not in (b"cache-control", b"pragma")]
        out.extend(NO_STORE)
    elif b"cache-control" not in names:
        out.append(NO_STORE[0])
    return out


def correlation_from_headers(headers: dict[bytes, bytes]) -> str:
    """A validated X-Request-ID, else the trace id of a valid traceparent, else a new id."""
    raw = headers.get(b"x-request-id")
    if raw:
        text = raw.decode("latin-1").strip()
        if REQUEST_ID.match(text):
            return text
    trace = trace_from_headers(headers)
    return trace[0] if trace is not None else new_correlation_id()


def trace_from_headers(headers: dict[bytes, bytes]) -> tuple[str, str] | None:
    """``(trace_id, parent_span_id)`` of a valid W3C traceparent (all-zero ids are invalid), else None."""
    raw = headers.get(b"traceparent")
    if raw:
        match = TRACEPARENT.match(raw.decode("latin-1").strip().lower())
        if match and match.group(1) != "0" * 32 and match.group(2) != "0" * 16:
            return match.group(1), match.group(2)
    return None


class RequestMiddleware:
    """Binds correlation context, enforces limits, authenticates before the body, audits and measures."""

    def __init__(
        self, app: ASGIApp, *, recorder: AuditRecorder, gatekeeper: Gatekeeper, resolver: ClientAddressResolver,
        max_body_bytes: int, body_timeout: float = 30.0,
    ) -> None:
        self.app = app
        self.recorder = recorder
        self.gatekeeper = gatekeeper
        self.resolver = resolver
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        correlation_id = correlation_from_headers(headers)
        request_id = new_correlation_id()
        client = scope.get("client")
        forwarded = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"]
        record = RequestAudit(
            source_ip=self.resolver.resolve(client[0] if client else None, forwarded),
            correlation_id=correlation_id, request_id=request_id, method=scope["method"], path=scope["path"],
            user_agent=headers.get(b"user-agent", b"").decode("latin-1") or None,
        )
        scope.setdefault("state", {})[STATE_KEY] = record
        exchange = _Exchange(self, scope, receive, send, headers, record)
        with bind_request(correlation_id=correlation_id, request_id=request_id, trace=trace_from_headers(headers)):
            try:
                await exchange.run()
            finally:
                self._observe(scope, record, exchange.status, started)

    @staticmethod
    def _observe(scope: Scope, record: RequestAudit, status: int, started: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "<unmatched>"
        elapsed = time.perf_counter() - started
        REQUESTS.labels(scope["method"], template, str(status)).inc()
        REQUEST_LATENCY.labels(scope["method"], template).observe(elapsed)
        log.info(
            "http.request",
            extra={"method": scope["method"], "route": template, "path": scope["path"], "status": status,
                   "duration_ms": round(elapsed * 1000, 3), "client_ip": record.source_ip, "actor": record.actor},
        )


class _Exchange:
    """One request/response: the guarded ``receive``, the audited ``send`` and the failure path."""

    def __init__(
        self, mw: RequestMiddleware, scope: Scope, receive: Receive, send: Send, headers: dict[bytes, bytes],
        record: RequestAudit,
    ) -> None:
        self.mw, self.scope, self._receive, self._send = mw, scope, receive, send
        self.headers, self.record = headers, record
        self.status = 500
        self.started = False  # http.response.start was sent (or answered for)
        self.suppressed = False
        self.received = 0
        self.body_done = False
        self.deadline: float | None = None
        self.body_limit = mw.max_body_bytes
        self.correlation_header = (b"x-request-id", record.correlation_id.encode("latin-1"))

    async def run(self) -> None:
        raw_headers = self.scope["headers"]
        if len(raw_headers) > MAX_HEADER_COUNT or sum(len(k) + len(v) for k, v in raw_headers) > MAX_HEADER_BYTES:
            # uvicorn's httptools parser sets no limit of its own: refuse before any work is done.
            await self.reject(431, f"request headers exceed {MAX_HEADER_COUNT} fields or {MAX_HEADER_BYTES} bytes",
                              code="request-header-fields-too-large")
            return
        if self.declared_length() > self.mw.max_body_bytes:
            await self.reject(413, "request body is larger than the configured limit", code=TooLarge.code)
            return
        try:
            await self.mw.app(self.scope, self.receive, self.send)
        except Exception as exc:  # nothing answered it: record the failure, answer 500 if we still can
            log.error("unhandled error", exc_info=exc)
            if self.started:
                raise
            await self.audit(500)
            await self.reject(500, "internal error; quote the correlation id when reporting it", code="internal-error",
                              audited=True)

    def declared_length(self) -> int:
        try:
            return int(self.headers.get(b"content-length", b"0"))
        except ValueError:
            return 0

    # --- receive: deadline, size caps, authentication before the first byte of the body ------------------------
    async def receive(self) -> Message:
        if self.body_done:  # after the body, receive() only waits for a disconnect: no deadline then
            return await self._receive()
        loop = asyncio.get_running_loop()
        if self.deadline is None:
            self.deadline = loop.time() + self.mw.body_timeout
            await self.admit_body()
        try:
            # A client that trickles its body (slowloris on the body) would hold the request forever.
            message = await asyncio.wait_for(self._receive(), timeout=max(self.deadline - loop.time(), 0.0))
        except TimeoutError:
            raise HTTPException(408, "the request body did not arrive in time", {"Connection": "close"}) from None
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.body_limit:
                # An HTTPException passes FastAPI's body parsing untouched and becomes a 413 problem.
                raise RequestRefused(TooLarge("request body is larger than the limit for this route"))
            self.body_done = not message.get("more_body", False)
        else:
            self.body_done = True
        return message

    async def admit_body(self) -> None:
        """Before reading any body: the caller must be authenticated where the route needs it (else 401, unread)."""
        gatekeeper = self.mw.gatekeeper
        if gatekeeper.needs_principal(self.scope):
            self.body_limit = self.mw.max_body_bytes
            try:
                await gatekeeper.principal(self.scope)
            except Exception as refusal:  # a refusal, or the database is away: answered as the route would be
                raise RequestRefused(refusal) from refusal
        else:
            self.body_limit = ANONYMOUS_BODY_BYTES
            if self.declared_length() > ANONYMOUS_BODY_BYTES:
                raise RequestRefused(TooLarge(f"this route takes at most {ANONYMOUS_BODY_BYTES} bytes of body"))

    # --- send: nothing leaves before its audit event is committed --------------------------------------------
    async def send(self, message: Message) -> None:
        if self.suppressed:
            return
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            self.started = True
            if not await self.audit(self.status):
                self.suppressed = True
                await self.reject(503, AUDIT_DOWN, code=Unavailable.code, retry_after=True, audited=True)
                return
            message["headers"] = security_headers(self.scope["path"],
                                                  [*message.get("headers", []), self.correlation_header])
        await self._send(message)

    async def audit(self, status: int) -> bool:
        """Record the outcome when the policy says so; False when it had to be recorded and could not be.

        A 5xx acknowledges nothing, so failing to record it (the audit store may be why it failed) does not
        change the answer; every other audited status is withheld when its event cannot be committed.
        """
        record = self.record
        if not (record.audit or status in REFUSALS or status >= 500):
            return True
        event = record.outcome_event(route_name(self.scope), status)
        try:
            if status == 429:  # a flood of refusals must not become a flood of durable writes
                await self.mw.recorder.record_refusal(event)
            else:
                await self.mw.recorder.record(event)
        except Exception as exc:  # audit store unavailable: never acknowledge unaudited
            if status >= 500:
                log.error("could not record a %d answer in the audit trail: %s", status, type(exc).__name__)
                return True
            log.error("audit write failed; answering 503", exc_info=exc)
            return False
        return True

    async def reject(
        self, status: int, detail: str, *, code: str, retry_after: bool = False, audited: bool = False
    ) -> None:
        """Answer with a problem document from here (the application never saw or could not answer the request)."""
        if not audited and not await self.audit(status):
            status, detail, code, retry_after = 503, AUDIT_DOWN, Unavailable.code, True
        self.status = status
        self.started = True
        body = orjson.dumps(problem_document(status, detail, code=code, correlation_id=self.record.correlation_id))
        response_headers = [(b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode()), self.correlation_header]
        if retry_after:
            response_headers.append((b"retry-after", b"1"))
        if status in (413, 431):
            response_headers.append((b"connection", b"close"))
        await self._send({"type": "http.response.start", "status": status,
                          "headers": security_headers(self.scope["path"], response_headers)})
        await self._send({"type": "http.response.body", "body": body})
