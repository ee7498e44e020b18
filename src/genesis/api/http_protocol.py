"""The HTTP/1.1 protocol ``genesis serve`` runs: uvicorn's httptools protocol with a header deadline.

uvicorn arms its keep-alive timer only between requests and cancels it on the first byte
of the next one, and arms nothing when a connection opens, so a client that connects and
never finishes its request headers (slowloris) holds a connection for ever. This protocol
gives every request ``GENESIS_HEADER_TIMEOUT_SECONDS`` from the moment the connection opens,
or the request's first byte arrives, to the blank line that ends its headers — nginx's
``client_header_timeout`` — then answers 408 and closes. It also bounds what the parser
buffers before the headers end (``HARD_HEADER_BYTES``): the middleware answers 431 (and
audits it) for anything over its 16 KiB limit, this is the memory bound behind it.

Selected with ``uvicorn.run(http="genesis.api.http_protocol:HeaderDeadlineProtocol")``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from genesis.api.middleware import MAX_HEADER_BYTES

HARD_HEADER_BYTES: Final = 4 * MAX_HEADER_BYTES
_CLOSE: Final = b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"


def _answer(status_line: bytes, message: bytes) -> bytes:
    length = b"content-length: %d\r\n" % len(message)
    return b"HTTP/1.1 " + status_line + b"\r\n" + _CLOSE + length + b"\r\n" + message


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus a header-read deadline and a buffered-header bound."""

    header_timeout_seconds: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from genesis.config import get_settings

        self.header_timeout_seconds = get_settings().header_timeout_seconds
        self._awaiting_headers = False
        self._header_bytes = 0
        self._header_deadline: asyncio.TimerHandle | None = None

    # --- the deadline ----------------------------------------------------------
    def _arm(self) -> None:
        self._awaiting_headers = True
        self._header_bytes = 0
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self.header_timeout_seconds, self._headers_overdue)

    def _disarm(self) -> None:
        self._awaiting_headers = False
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _busy(self) -> bool:
        """A response is being produced or sent, or pipelined requests wait for one."""
        return (self.cycle is not None and not self.cycle.response_complete) or bool(self.pipeline)

    def _headers_overdue(self) -> None:
        self._header_deadline = None
        if not self._awaiting_headers:
            return
        if self._busy():
            # A pipelined request's headers may be stalled by us: uvicorn stops reading while earlier
            # requests are served. Its clock starts again once they are done.
            self._awaiting_headers = False
            self._arm()
            return
        self._refuse(b"408 Request Timeout", b"request headers not received in time")

    def _refuse(self, status_line: bytes, message: bytes) -> None:
        self._disarm()
        if self.transport.is_closing():
            return
        if not self._busy():  # never write into a response that is still being sent
            self.transport.write(_answer(status_line, message))
        self.transport.close()

    # --- uvicorn hooks -----------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never sends a byte is held to the deadline too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        was_awaiting = self._awaiting_headers
        super().data_received(data)
        if self.transport.is_closing():
            return
        if was_awaiting and self._awaiting_headers:
            # Counted per read: the bound is HARD_HEADER_BYTES plus at most one read.
            self._header_bytes += len(data)
            if self._header_bytes > HARD_HEADER_BYTES:
                self._refuse(b"431 Request Header Fields Too Large", b"request headers too large")
        elif not self._awaiting_headers and not self._busy():
            # Bytes that began no request (blank lines between requests are skipped by the parser
            # without on_message_begin) cancelled uvicorn's keep-alive timer: the deadline holds them.
            self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._awaiting_headers:
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
