"""The stream transports over one hub: a WebSocket session (``/ws``) and a Server-Sent Events body (``/stream``).

Both read a :class:`~genesis.push.Connection` and add what a transport owns: heartbeats, the
periodic re-check of the token (a revoked or expired token, or a disabled account, closes the
stream within ``revalidate_seconds``; expiry closes it on time), the client-message rate limit
(WebSocket), and the audit of the stream: one event when it opens (for SSE the request's own
outcome event, for WebSocket ``stream.ws.open`` recorded before the upgrade is accepted), one
when it closes (``stream.closed``, with the topics, message count, duration and reason), one per
refusal; never one per message.

WebSocket protocol (JSON text frames): the client sends ``{"type": "auth", "token": ...}`` (first,
only when neither a header nor a ticket authenticated it), ``{"type": "subscribe", "topic": ...,
"since": <id>?}``, ``{"type": "unsubscribe", "topic": ...}`` and ``{"type": "ping"}``; the server
sends envelopes (docs/push.md), and ``subscribed`` / ``unsubscribed`` / ``pong`` / ``heartbeat`` /
``error`` replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import orjson
from starlette.datastructures import Headers
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from genesis.audit import AuditEvent, new_event
from genesis.errors import GenesisError, Unauthenticated
from genesis.push import CloseReason, Connection, ConnectionClosed, PushLimits, RateBucket
from genesis.runtime import Runtime
from genesis.services.auth import Principal
from genesis.timeutil import now_us, rfc3339

log = logging.getLogger("genesis.api.streams")

MAX_CLIENT_MESSAGE_BYTES: Final = 4096
ORIGIN_REFUSED: Final = 4403  # application close code: the Origin is not allowed (sent before accept as HTTP 403)


@dataclass(slots=True)
class StreamAudit:
    """What the trail says about one stream."""

    transport: str
    source_ip: str
    user_agent: str | None
    correlation_id: str
    path: str
    actor: str = "anonymous"
    topics: set[str] = field(default_factory=set)
    messages: int = 0
    started: float = field(default_factory=time.monotonic)

    def _event(self, action: str, *, outcome: str, message: str, **metadata: Any) -> AuditEvent:
        return new_event(action, actor=self.actor, outcome=outcome, source_ip=self.source_ip,
                         user_agent=self.user_agent, method="GET", path=self.path,
                         correlation_id=self.correlation_id, message=message,
                         metadata={"transport": self.transport, **metadata})

    def opened(self) -> AuditEvent:
        return self._event("stream.ws.open", outcome="success", message=f"{self.transport} stream opened")

    def refused(self, reason: str, **metadata: Any) -> AuditEvent:
        return self._event("stream.refused", outcome="denied", message=f"{self.transport} stream: {reason}",
                           reason=reason, **metadata)

    def closed(self, reason: str) -> AuditEvent:
        return self._event("stream.closed", outcome="success", message=f"{self.transport} stream closed: {reason}",
                           topics=sorted(self.topics), messages=self.messages, reason=reason,
                           seconds=round(time.monotonic() - self.started, 3))


def origin_allowed(headers: Headers, allowed: list[str]) -> bool:
    """An ``Origin`` (sent by browsers) must be the server's own or allow-listed; clients without one pass."""
    origin = headers.get("origin")
    if origin is None:
        return True
    if origin.rstrip("/") in {a.rstrip("/") for a in allowed}:
        return True
    parts = urlsplit(origin)
    return bool(parts.netloc) and parts.netloc.lower() == headers.get("host", "").lower()


async def revalidated(runtime: Runtime, principal: Principal) -> Principal | CloseReason:
    """The principal checked again, or why its stream must close."""
    try:
        checked = await runtime.auth.recheck(principal)
    except Unauthenticated as exc:
        return CloseReason.EXPIRED if "expired" in exc.message else CloseReason.REVOKED
    except Exception as exc:  # the database is away: keep streaming, try again at the next check
        log.warning("stream token re-check failed: %s", type(exc).__name__)
        return principal
    return checked if checked.scopes >= principal.scopes else CloseReason.REVOKED


class Ticker:
    """One timer per stream for its heartbeats and token re-checks, re-armed only when it fires.

    Messages do not touch it (a timeout around every receive would cost a timer per message and subscriber);
    when it fires it pokes the connection, whose reader then asks :meth:`due` what to do.
    """

    __slots__ = ("_conn", "_handle", "_heartbeat", "_loop", "_recheck", "_revalidate", "last_sent")

    def __init__(self, limits: PushLimits, conn: Connection) -> None:
        self._loop = asyncio.get_running_loop()
        self._conn = conn
        self._heartbeat = limits.heartbeat_seconds
        self._revalidate = limits.revalidate_seconds
        now = self._loop.time()
        self.last_sent = now
        self._recheck = now + self._revalidate
        self._handle: asyncio.TimerHandle | None = None
        self.arm()

    def sent(self) -> None:
        self.last_sent = self._loop.time()

    def due(self) -> tuple[bool, bool]:
        """(a heartbeat is due, a token re-check is due); a due re-check is scheduled again."""
        now = self._loop.time()
        recheck = now >= self._recheck
        if recheck:
            self._recheck = now + self._revalidate
        return now - self.last_sent >= self._heartbeat, recheck

    def arm(self) -> None:
        self.cancel()
        self._handle = self._loop.call_at(min(self.last_sent + self._heartbeat, self._recheck), self._conn.poke)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


class WebSocketSession:
    """One ``/ws`` connection after it was accepted and authenticated.

    Two tasks share the socket (this one reads, the pump writes) without a lock: an ASGI server writes each
    ``websocket.send`` as one whole frame (uvicorn waits for the transport to be writable, then writes it at
    once), so frames from both never interleave.
    """

    __slots__ = ("audit", "bucket", "conn", "principal", "runtime", "strikes", "ws")

    def __init__(self, runtime: Runtime, websocket: WebSocket, conn: Connection, principal: Principal,
                 audit: StreamAudit) -> None:
        self.runtime = runtime
        self.ws = websocket
        self.conn = conn
        self.principal = principal
        self.audit = audit
        limits = runtime.hub.limits
        self.bucket = RateBucket(limits.client_messages_per_second, limits.client_messages_burst)
        self.strikes = 0

    async def send(self, text: str) -> None:
        await self.ws.send_text(text)

    async def run(self) -> str:
        """Serve until either side ends; returns why it closed."""
        pump = asyncio.create_task(self._pump())
        try:
            reason = await self._read()
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
        closed = self.conn.close_reason
        if closed is not None and closed is not CloseReason.CLIENT:
            reason = str(closed)
        self.conn.close(CloseReason.CLIENT)
        return reason

    async def _close(self, code: int, reason: str) -> None:
        if self.ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await self.ws.close(code=code, reason=reason[:120])

    async def _pump(self) -> None:
        """Hub to client: messages, gap notices, heartbeats; the token re-checked on schedule."""
        ticker = Ticker(self.runtime.hub.limits, self.conn)
        try:
            while True:
                item = await self.conn.receive()
                if item is not None:
                    await self.send(item.payload.decode())
                    self.audit.messages += 1
                    ticker.sent()
                    continue
                heartbeat, recheck = ticker.due()
                if recheck:
                    checked = await revalidated(self.runtime, self.principal)
                    if isinstance(checked, CloseReason):
                        self.conn.close(checked)
                        continue
                    self.principal = checked
                if heartbeat:
                    await self.send(_json({"type": "heartbeat", "time": rfc3339(now_us())}))
                    ticker.sent()
                ticker.arm()
        except ConnectionClosed as closed:
            await self._close(closed.reason.ws_code, str(closed.reason))
        except Exception:  # the client went away mid-send
            self.conn.close(CloseReason.CLIENT)
            await self._close(1011, "internal error")
        finally:
            ticker.cancel()

    async def _read(self) -> str:
        """Client to hub: subscribe, unsubscribe, ping; rate-limited."""
        while True:
            try:
                raw = await self.ws.receive_text()
            except WebSocketDisconnect:
                return "client-closed"
            except (RuntimeError, KeyError):  # a binary frame, or the socket closed by the pump
                if self.conn.closed:
                    return str(self.conn.close_reason)
                await self._close(1003, "send JSON text frames")
                return "unsupported-data"
            if self.conn.closed:
                return str(self.conn.close_reason)
            if not self.bucket.take():
                self.strikes += 1
                if self.strikes > self.runtime.hub.limits.client_messages_burst:
                    self.runtime.recorder.submit_quietly([self.audit.refused("too many client messages")],
                                                         what="a stream refusal")
                    await self._close(1008, "too many client messages")
                    return "too-many-messages"
                await self.send(_json({"type": "error", "code": "rate-limited",
                                       "detail": f"at most {self.runtime.hub.limits.client_messages_per_second:g} "
                                                 "messages a second", "retry_after": self.bucket.retry_after()}))
                continue
            self.strikes = 0
            await self._handle(raw)

    async def _handle(self, raw: str) -> None:
        try:
            if len(raw) > MAX_CLIENT_MESSAGE_BYTES:
                raise ValueError(f"a client message has at most {MAX_CLIENT_MESSAGE_BYTES} bytes")
            message = orjson.loads(raw)
            if not isinstance(message, dict):
                raise ValueError("a client message is a JSON object with a 'type'")
        except (ValueError, orjson.JSONDecodeError) as exc:
            await self.send(_json({"type": "error", "code": "invalid-input", "detail": str(exc)[:200]}))
            return
        kind = message.get("type")
        topic = message.get("topic")
        try:
            if kind == "subscribe":
                newest = await self.conn.subscribe(topic, since=message.get("since"))  # type: ignore[arg-type]
                self.audit.topics.add(str(topic))
                await self.send(_json({"type": "subscribed", "topic": topic, "id": newest}))
            elif kind == "unsubscribe":
                found = self.conn.unsubscribe(str(topic))
                await self.send(_json({"type": "unsubscribed", "topic": topic, "was_subscribed": found}))
            elif kind == "ping":
                await self.send(_json({"type": "pong", "time": rfc3339(now_us())}))
            elif kind == "auth":
                await self.send(_json({"type": "error", "code": "invalid-input", "detail": "already authenticated"}))
            else:
                await self.send(_json({"type": "error", "code": "invalid-input",
                                       "detail": "type is one of subscribe, unsubscribe, ping"}))
        except GenesisError as exc:
            if exc.http_status in (403, 413, 429):  # a refusal (scope, limit): audited; bad input is not
                self.runtime.recorder.submit_quietly([self.audit.refused(exc.message, topic=str(topic)[:64])],
                                                     what="a stream refusal")
            await self.send(_json({"type": "error", "code": exc.code, "detail": exc.message, "topic": topic,
                                   **({"details": exc.details} if exc.details else {})}))


def sse_format(event: str, data: bytes, event_id: str) -> bytes:
    """One SSE event (the data is one line of JSON: it holds no raw newline)."""
    return b"id: " + event_id.encode() + b"\nevent: " + event.encode() + b"\ndata: " + data + b"\n\n"


async def sse_body(
    runtime: Runtime, conn: Connection, principal: Principal, audit: StreamAudit,
) -> AsyncIterator[bytes]:
    """The body of ``/stream``: events with cursor ids, comment heartbeats, re-checks; the close is audited."""
    ticker = Ticker(runtime.hub.limits, conn)
    reason = "client-closed"
    try:
        yield b"retry: 2000\n\n"
        while True:
            try:
                item = await conn.receive()
            except ConnectionClosed as closed:
                reason = str(closed.reason)
                yield b"event: close\ndata: " + _json({"reason": reason}).encode() + b"\n\n"
                return
            if item is not None:
                yield sse_format(item.event, item.payload, conn.cursor())
                audit.messages += 1
                ticker.sent()
                continue
            heartbeat, recheck = ticker.due()
            if recheck:
                checked = await revalidated(runtime, principal)
                if isinstance(checked, CloseReason):
                    conn.close(checked)
                    continue
                principal = checked
            if heartbeat:
                yield b": heartbeat\n\n"
                ticker.sent()
            ticker.arm()
    finally:
        ticker.cancel()
        conn.close(CloseReason.CLIENT)
        runtime.recorder.submit_quietly([audit.closed(reason)], what="a stream close")
