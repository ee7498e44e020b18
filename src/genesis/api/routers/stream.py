"""Push streams: ``GET /ws`` (WebSocket), ``GET /stream`` (Server-Sent Events), ``POST /stream/tickets``.

Authentication never puts a bearer token in a URL: the ``Authorization`` header where the client
can send one; else a single-use ticket from ``POST /stream/tickets`` (``?ticket=``, valid
``GENESIS_PUSH_TICKET_TTL_SECONDS``, redeemed before the stream starts); or, on WebSocket, the
token in a first ``{"type": "auth"}`` message within ``GENESIS_PUSH_AUTH_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request, WebSocket
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from genesis.api.authentication import bearer_token
from genesis.api.deps import RuntimeDep, allow, gatekeeper
from genesis.api.middleware import correlation_from_headers
from genesis.api.request_audit import request_audit
from genesis.api.schemas import AUTHED_ERRORS
from genesis.api.streams import ORIGIN_REFUSED, StreamAudit, WebSocketSession, origin_allowed, sse_body
from genesis.errors import GenesisError, InvalidInput, RateLimited, Unauthenticated
from genesis.push import CloseReason, Connection, parse_cursor
from genesis.runtime import Runtime
from genesis.services.auth import Principal

router = APIRouter(tags=["push"])


class TicketRead(BaseModel):
    ticket: str = Field(description="Pass as `?ticket=` to /ws or /stream once, within `expires_in` seconds.")
    expires_in: float


@router.post("/stream/tickets", name="stream.ticket", response_model=TicketRead, status_code=201,
             responses=AUTHED_ERRORS)
async def ticket(runtime: RuntimeDep, principal: Annotated[Principal, allow(limit="default")]) -> TicketRead:
    """A single-use ticket that opens one stream as you, for clients that cannot send a header (browsers)."""
    return TicketRead(ticket=await runtime.tickets.issue(principal), expires_in=runtime.tickets.ttl_seconds)


async def _principal_of(request: Request, runtime: Runtime, ticket: str | None) -> Principal:
    facts = request_audit(request)
    if ticket is not None and bearer_token(request.headers.get("authorization")) is None:
        principal = await runtime.tickets.redeem(ticket)
        facts.actor, facts.audit = principal.subject, True
        return principal
    return await gatekeeper(request).principal(request.scope)


# Not in the OpenAPI document, like /ws: an endless event stream is no request/response operation (a client
# generated from it, or a fuzzer, would wait for the end of the body). docs/push.md describes both, in AsyncAPI.
@router.get("/stream", name="stream.sse", response_class=StreamingResponse, include_in_schema=False)
async def stream(
    request: Request, runtime: RuntimeDep,
    topics: Annotated[str, Query(max_length=4096, description="Comma-separated topics, e.g. anomalies.GOOG,audit")],
    ticket: Annotated[str | None, Query(max_length=128, description="A ticket from POST /stream/tickets.")] = None,
    last_event_id: Annotated[str | None, Query(max_length=8192, description="Resume after this cursor (else the "
                                                                              "Last-Event-ID header).")] = None,
) -> StreamingResponse:
    """Server-Sent Events of the topics; each event's `id` is a cursor to resume from with `Last-Event-ID`."""
    principal = await _principal_of(request, runtime, ticket)
    facts = request_audit(request)
    limits = runtime.hub.limits
    names = [t.strip() for t in topics.split(",") if t.strip()]
    if not names:
        raise InvalidInput("name at least one topic, e.g. topics=anomalies.GOOG")
    cursor = parse_cursor(last_event_id or request.headers.get("last-event-id", ""),
                          max_topics=limits.subscriptions_per_connection)
    audit = StreamAudit("sse", facts.source_ip, facts.user_agent, facts.correlation_id, request.url.path,
                        actor=principal.subject)
    try:
        conn = runtime.hub.connect(principal, expires_at=principal.token_expires_at)
    except RateLimited as exc:
        runtime.recorder.submit_quietly([audit.refused(exc.message)], what="a stream refusal")
        raise
    try:
        for name in names:
            await conn.subscribe(name, since=cursor.get(name))
            audit.topics.add(name)
    except GenesisError as exc:
        conn.close(CloseReason.CLIENT)
        if exc.http_status in (403, 413):
            runtime.recorder.submit_quietly([audit.refused(exc.message)], what="a stream refusal")
        raise
    facts.metadata.update({"topics": sorted(audit.topics), "resumed": bool(cursor)})
    return _HubStream(conn, sse_body(runtime, conn, principal, audit))


class _HubStream(StreamingResponse):
    """The SSE response; its hub connection is released however the response ends, even before its body began
    (a client gone before the first byte: the body's own ``finally`` never runs then)."""

    def __init__(self, conn: Connection, body: AsyncIterator[bytes]) -> None:
        super().__init__(body, media_type="text/event-stream",
                         headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        self.conn = conn

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.conn.close(CloseReason.CLIENT)


@router.websocket("/ws", name="stream.ws")
async def websocket_stream(websocket: WebSocket) -> None:
    """WebSocket stream (see genesis.api.streams for the protocol)."""
    runtime: Runtime = websocket.app.state.runtime
    settings = runtime.settings
    client = websocket.client
    forwarded = websocket.headers.getlist("x-forwarded-for")
    audit = StreamAudit("websocket", websocket.app.state.client_resolver.resolve(client.host if client else None,
                                                                                   forwarded),
                        websocket.headers.get("user-agent"), correlation_from_headers(dict(websocket.scope["headers"])),
                        websocket.url.path)
    if not origin_allowed(websocket.headers, settings.push_allowed_origins):
        runtime.recorder.submit_quietly([audit.refused("origin not allowed",
                                                       origin=websocket.headers.get("origin", "")[:200])],
                                        what="a stream refusal")
        await websocket.close(code=ORIGIN_REFUSED)  # before accept: the upgrade is answered 403
        return
    principal: Principal | None = None
    try:
        token = bearer_token(websocket.headers.get("authorization"))
        if token is not None:
            principal = await runtime.auth.authenticate(token)
        elif websocket.query_params.get("ticket"):
            principal = await runtime.tickets.redeem(websocket.query_params["ticket"])
        elif "access_token" in websocket.query_params or "token" in websocket.query_params:
            raise Unauthenticated("tokens in the URL are refused: use a header, a ticket or a first auth message")
    except GenesisError as exc:
        await _refuse(runtime, websocket, audit, exc)
        return
    await websocket.accept()
    if principal is None:
        try:
            principal = await _first_message_auth(runtime, websocket)
        except GenesisError as exc:
            await _refuse(runtime, websocket, audit, exc, accepted=True)
            return
        except WebSocketDisconnect:
            return
    audit.actor = principal.subject
    try:
        conn = runtime.hub.connect(principal, expires_at=principal.token_expires_at)
    except GenesisError as exc:
        await _refuse(runtime, websocket, audit, exc, accepted=True)
        return
    try:
        await runtime.recorder.record(audit.opened())
    except GenesisError:
        conn.close(CloseReason.CLIENT)
        await websocket.close(code=1011, reason="the audit store is unavailable")
        return
    reason = "client-closed"
    try:
        reason = await WebSocketSession(runtime, websocket, conn, principal, audit).run()
    finally:
        runtime.recorder.submit_quietly([audit.closed(reason)], what="a stream close")


async def _first_message_auth(runtime: Runtime, websocket: WebSocket) -> Principal:
    try:
        async with asyncio.timeout(runtime.settings.push_auth_timeout_seconds):
            raw = await websocket.receive_text()
    except TimeoutError:
        raise Unauthenticated("no auth message in time: send {\"type\": \"auth\", \"token\": ...} first") from None
    except (RuntimeError, KeyError):
        raise Unauthenticated("send {\"type\": \"auth\", \"token\": ...} as a JSON text frame first") from None
    try:
        message = orjson.loads(raw[:8192])
    except orjson.JSONDecodeError:
        message = None
    if not isinstance(message, dict) or message.get("type") != "auth" or not isinstance(message.get("token"), str):
        raise Unauthenticated("the first message must be {\"type\": \"auth\", \"token\": ...}")
    return await runtime.auth.authenticate(message["token"])


async def _refuse(runtime: Runtime, websocket: WebSocket, audit: StreamAudit, exc: GenesisError, *,
                  accepted: bool = False) -> None:
    """Close with a code and a reason the client can read (accepting first so the reason reaches it)."""
    code = 1013 if isinstance(exc, RateLimited) else 1011 if exc.http_status >= 500 else 1008
    runtime.recorder.submit_quietly([audit.refused(exc.message, code=exc.code)], what="a stream refusal")
    if not accepted:
        await websocket.accept()
    await websocket.close(code=code, reason=f"{exc.code}: {exc.message}"[:120])
