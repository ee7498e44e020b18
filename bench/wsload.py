"""A lean WebSocket client for the load side of the push benchmarks.

Thousands of subscribers in one Python process on the server's own two cores: a full client
library (``websockets``: an assembler, a queue and a task per connection) would measure mostly
itself. This one is an ``asyncio.Protocol`` that does the handshake and RFC 6455 framing
(unmasked server frames in, masked client frames out, pings answered) and hands each text
message to a callback, with the receipt time taken as the bytes arrive.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from collections.abc import Callable
from urllib.parse import urlsplit

OnText = Callable[[bytes, int], None]  # payload, receipt time (time.time_ns())


class LeanWebSocket(asyncio.Protocol):
    def __init__(self, on_text: OnText) -> None:
        self.on_text = on_text
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buf = bytearray()
        self._upgraded = False

    # --- asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("connection lost before the upgrade"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        buf = self._buf
        buf += data
        if not self._upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[:end]).split(b"\r\n", 1)[0]
            del buf[: end + 4]
            if b" 101 " not in status:
                self.opened.set_exception(ConnectionError(status.decode(errors="replace")))
                return
            self._upgraded = True
            self.opened.set_result(None)
        while len(buf) >= 2:
            opcode, length, start = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if length == 126:
                if len(buf) < 4:
                    return
                length, start = struct.unpack_from(">H", buf, 2)[0], 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length, start = struct.unpack_from(">Q", buf, 2)[0], 10
            if len(buf) < start + length:
                return
            payload = bytes(buf[start : start + length])
            del buf[: start + length]
            if opcode == 1:
                self.on_text(payload, now)
            elif opcode == 9:
                self._frame(0xA, payload)
            elif opcode == 8 and self.transport is not None:
                self.transport.close()

    # --- sending -------------------------------------------------------------------------------------
    def _frame(self, opcode: int, payload: bytes) -> None:
        assert self.transport is not None
        mask = os.urandom(4)
        n = len(payload)
        header = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else
                                           b"\xfe" + struct.pack(">H", n) if n < 65536 else
                                           b"\xff" + struct.pack(">Q", n))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))  # clients send only a few small frames
        self.transport.write(header + mask + masked)

    def send_text(self, text: str) -> None:
        self._frame(0x1, text.encode())

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._frame(0x8, struct.pack(">H", 1000))
            self.transport.close()


async def open_websocket(url: str, on_text: OnText, *, headers: dict[str, str] | None = None) -> LeanWebSocket:
    """Connect and upgrade; returns once the server accepted the WebSocket."""
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(lambda: LeanWebSocket(on_text), parts.hostname, parts.port or 80)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1",
             f"Host: {parts.netloc}", "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
             "Sec-WebSocket-Version: 13", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    assert protocol.transport is not None
    protocol.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await protocol.opened
    return protocol
