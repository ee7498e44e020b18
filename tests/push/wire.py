"""Helpers for the push tests against real servers: login, a webhook receiver, WebSocket and SSE readers.

Everything binds to 127.0.0.1; readers and receivers stop in ``finally`` blocks / context managers.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from tests.conftest import ADMIN_PASSWORD
from tests.live import wait_until

# Settings for a live server under test: short heartbeats and re-checks, webhooks to loopback allowed.
PUSH_ENV = {
    "GENESIS_ADMIN_PASSWORD": ADMIN_PASSWORD,
    "GENESIS_RATE_LIMITS_ENABLED": "false",
    "GENESIS_PUSH_HEARTBEAT_SECONDS": "1",
    "GENESIS_PUSH_REVALIDATE_SECONDS": "1",
    "GENESIS_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1/32",
    "GENESIS_WEBHOOK_POLL_SECONDS": "0.2",
    "GENESIS_AUDIT_VERIFY_INTERVAL_SECONDS": "0",
}


def login(base: str, username: str = "admin", password: str = ADMIN_PASSWORD, **extra: str) -> str:
    response = httpx.post(f"{base}/token", data={"grant_type": "password", "username": username,
                                                 "password": password, **extra}, timeout=30)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


USER_PASSWORD = "user-Pa55word-1"


def create_user(base: str, admin_token: str, name: str, role: str, password: str = USER_PASSWORD) -> str:
    made = httpx.post(f"{base}/users", json={"username": name, "role": role, "password": password},
                      headers=auth(admin_token), timeout=30)
    assert made.status_code == 201, made.text
    return login(base, name, password)


def ws_url(base: str, query: str = "") -> str:
    return base.replace("http://", "ws://") + "/ws" + (f"?{query}" if query else "")


@contextmanager
def websocket(base: str, token: str | None = None, *, query: str = "", **options: Any) -> Iterator[ClientConnection]:
    headers = auth(token) if token else None
    with connect(ws_url(base, query), additional_headers=headers, open_timeout=20, **options) as ws:
        yield ws


def ws_subscribe(ws: ClientConnection, topic: str, since: str | None = None) -> dict[str, Any]:
    ws.send(json.dumps({"type": "subscribe", "topic": topic, **({"since": since} if since else {})}))
    return ws_next(ws, lambda m: m.get("type") in ("subscribed", "error"))


def ws_next(ws: ClientConnection, accept: Callable[[dict[str, Any]], bool], *, timeout: float = 30) -> dict[str, Any]:
    """The next message ``accept`` takes (heartbeats and others skipped)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, "no matching message in time"
        message: dict[str, Any] = json.loads(ws.recv(timeout=remaining))
        if accept(message):
            return message


def ws_collect(ws: ClientConnection, topic: str, count: int, *, timeout: float = 60) -> list[dict[str, Any]]:
    """The next ``count`` envelopes of ``topic`` (messages and gap notices), in arrival order."""
    return [ws_next(ws, lambda m: m.get("topic") == topic and "seq" in m, timeout=timeout) for _ in range(count)]


@dataclass
class SseReader:
    """Reads an SSE stream on a thread: ``events`` are (id, event, data) in arrival order."""

    url: str
    headers: dict[str, str]
    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    status: int | None = None
    error: BaseException | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> SseReader:
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert wait_until(lambda: self.status is not None or self.error is not None, timeout=30), "no SSE answer"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def _read(self) -> None:
        try:
            with httpx.stream("GET", self.url, headers=self.headers, timeout=httpx.Timeout(30, read=5)) as response:
                self.status = response.status_code
                if response.status_code != 200:
                    response.read()
                    return
                fields: dict[str, str] = {}
                for line in response.iter_lines():  # heartbeats (comments) every second give the loop control
                    if self._stop.is_set():
                        return
                    if not line:
                        if "data" in fields:
                            self.events.append((fields.get("id", ""), fields.get("event", "message"),
                                                json.loads(fields["data"])))
                        fields = {}
                    elif not line.startswith(":"):
                        name, _, value = line.partition(":")
                        fields[name] = value.removeprefix(" ")
        except BaseException as exc:  # reported to the test
            self.error = exc

    def of(self, topic: str) -> list[dict[str, Any]]:
        return [data for _, _, data in self.events if data.get("topic") == topic]


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that records every POST and answers ``status`` (a callable may vary it)."""

    def __init__(self, status: int | Callable[[int], int] = 204) -> None:
        self.received: list[Received] = []
        self.status = status
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
                    n = len(receiver.received)
                code = receiver.status(n) if callable(receiver.status) else receiver.status
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(r.body) for r in self.received]


def register_webhook(base: str, token: str, url: str, topics: list[str]) -> dict[str, Any]:
    made = httpx.post(f"{base}/webhooks", json={"url": url, "topics": topics, "description": "test"},
                      headers=auth(token), timeout=30)
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def drain(q: queue.Queue[Any]) -> list[Any]:
    out = []
    with suppress(queue.Empty):
        while True:
            out.append(q.get_nowait())
    return out
