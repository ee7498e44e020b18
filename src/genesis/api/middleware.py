"""Pure ASGI middleware: correlation ids, body limits, metrics and the durable audit of each request.

A response is sent only after its request's audit event is committed: the
``http.response.start`` message is held until the audit writer confirms the
event; if the audit store cannot take it, the client gets a 503 instead of an
acknowledgement that was never recorded.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genesis.api.clientip import ClientAddressResolver
from genesis.api.metrics import REQUEST_LATENCY, REQUESTS
from genesis.api.request_audit import STATE_KEY, RequestAudit
from genesis.audit.context import bind_request

log = logging.getLogger("genesis.api.access")

REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+=-]{0,127}$")
TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
REFUSALS = frozenset({401, 403, 429})
MAX_HEADER_COUNT = 100
MAX_HEADER_BYTES = 16 * 1024  # h11's default limit for the whole header block

AuditCallback = Callable[[RequestAudit, dict[str, Any]], Awaitable[None]]


def correlation_from_headers(headers: dict[bytes, bytes]) -> str:
    """A validated X-Request-ID, else the trace id of a valid traceparent, else a new id."""
    raw = headers.get(b"x-request-id")
    if raw:
        text = raw.decode("latin-1").strip()
        if REQUEST_ID.match(text):
            return text
    trace = trace_from_headers(headers)
    return trace[0] if trace is not None else uuid.uuid4().hex


def trace_from_headers(headers: dict[bytes, bytes]) -> tuple[str, str] | None:
    """``(trace_id, parent_span_id)`` of a valid W3C traceparent (all-zero ids are invalid), else None."""
    raw = headers.get(b"traceparent")
    if raw:
        match = TRACEPARENT.match(raw.decode("latin-1").strip().lower())
        if match and match.group(1) != "0" * 32 and match.group(2) != "0" * 16:
            return match.group(1), match.group(2)
    return None


def outcome_of(status: int) -> str:
    if status < 400:
        return "success"
    return "denied" if status in REFUSALS else "failure"


class RequestMiddleware:
    """Binds correlation context, enforces the body limit, audits and measures every request."""

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, resolver: ClientAddressResolver, audit: AuditCallback,
        body_timeout: float = 30.0,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.resolver = resolver
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        correlation_id = correlation_from_headers(headers)
        request_id = uuid.uuid4().hex
        client = scope.get("client")
        peer = client[0] if client else None
        forwarded = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"]
        record = RequestAudit(
            source_ip=self.resolver.resolve(peer, forwarded), correlation_id=correlation_id, request_id=request_id
        )
        scope.setdefault("state", {})[STATE_KEY] = record
        status_holder = [500]
        with bind_request(correlation_id=correlation_id, request_id=request_id, trace=trace_from_headers(headers)):
            try:
                await self._handle(scope, receive, send, headers, record, status_holder)
            finally:
                self._observe(scope, record, status_holder[0], started)

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

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[bytes, bytes], record: RequestAudit,
        status_holder: list[int],
    ) -> None:
        correlation_header = (b"x-request-id", record.correlation_id.encode("latin-1"))
        raw_headers = scope["headers"]
        if len(raw_headers) > MAX_HEADER_COUNT or sum(len(k) + len(v) for k, v in raw_headers) > MAX_HEADER_BYTES:
            # uvicorn's httptools parser sets no limit of its own: refuse before any work is done.
            await self._reject(send, 431, f"request headers exceed {MAX_HEADER_COUNT} fields or "
                               f"{MAX_HEADER_BYTES} bytes", correlation_header, status_holder)
            return
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_body_bytes
            except ValueError:
                too_big = False
            if too_big:
                await self._reject(send, 413, "request body is larger than the configured limit",
                                   correlation_header, status_holder)
                return

        received = 0
        body_done = False
        body_deadline: float | None = None

        async def limited_receive() -> Message:
            nonlocal received, body_done, body_deadline
            if body_done:  # after the body, receive() only waits for a disconnect: no deadline then
                return await receive()
            loop = asyncio.get_running_loop()
            if body_deadline is None:
                body_deadline = loop.time() + self.body_timeout
            try:
                # A client that trickles its body (slowloris on the body) would hold the request forever.
                message = await asyncio.wait_for(receive(), timeout=max(body_deadline - loop.time(), 0.0))
            except TimeoutError:
                raise HTTPException(408, "the request body did not arrive in time", {"Connection": "close"}) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # An HTTPException passes FastAPI's body parsing untouched and becomes a 413 problem.
                    raise HTTPException(413, "request body is larger than the configured limit")
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        suppressed = False

        async def audited_send(message: Message) -> None:
            nonlocal suppressed
            if suppressed:
                return
            if message["type"] == "http.response.start":
                status = int(message["status"])
                status_holder[0] = status
                if record.audit or status in REFUSALS:
                    try:
                        await self.audit(record, self._event_fields(scope, headers, record, status))
                    except Exception as exc:  # audit store unavailable: never acknowledge unaudited
                        log.error("audit write failed; answering 503", exc_info=exc)
                        suppressed = True
                        await self._reject(send, 503, "the audit store is unavailable; nothing was acknowledged",
                                           correlation_header, status_holder, retry_after=True)
                        return
                message["headers"] = [*message.get("headers", []), correlation_header]
            await send(message)

        await self.app(scope, limited_receive, audited_send)

    @staticmethod
    def _event_fields(scope: Scope, headers: dict[bytes, bytes], record: RequestAudit, status: int) -> dict[str, Any]:
        route = scope.get("route")
        action = record.action or getattr(route, "name", None) or f"http.{scope['method'].lower()}"
        if status == 401:
            action = record.action or "auth.refused"
        return {
            "action": action,
            "outcome": outcome_of(status),
            "actor": record.actor or "anonymous",
            "source_ip": record.source_ip,
            "user_agent": headers.get(b"user-agent", b"").decode("latin-1")[:512] or None,
            "method": scope["method"],
            "path": scope["path"][:2048],
            "status": status,
            "correlation_id": record.correlation_id,
            "request_id": record.request_id,
            "message": record.message or f"{scope['method']} {scope['path'][:200]} -> {status}",
            "metadata": record.metadata,
        }

    @staticmethod
    async def _reject(
        send: Send, status: int, detail: str, correlation_header: tuple[bytes, bytes], status_holder: list[int],
        *, retry_after: bool = False,
    ) -> None:
        status_holder[0] = status
        body = orjson.dumps({"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status,
                             "detail": detail, "correlation_id": correlation_header[1].decode("latin-1")})
        response_headers = [(b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode()), correlation_header]
        if retry_after:
            response_headers.append((b"retry-after", b"1"))
        if status in (413, 431):
            response_headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})
