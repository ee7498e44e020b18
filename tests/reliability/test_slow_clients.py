"""Slow and abusive clients against a live ``genesis serve``: 50 slowloris connections, oversized headers and
trickled bodies do not push a normal client's p99 past its bound, nor exhaust the server; bodies that do not
arrive in time get 408.
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD
from tests.live import LiveServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
SLOWLORIS = 50
P99_BOUND_SECONDS = float(os.environ.get("GENESIS_SLOW_CLIENT_P99_BOUND", "0.5"))
BODY_TIMEOUT = 2  # GENESIS_REQUEST_TIMEOUT_SECONDS of the server under test
HEADER_TIMEOUT = 3  # GENESIS_HEADER_TIMEOUT_SECONDS of the server under test


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {"GENESIS_ADMIN_PASSWORD": ADMIN_PASSWORD, "GENESIS_RATE_LIMITS_ENABLED": "false",
           "GENESIS_REQUEST_TIMEOUT_SECONDS": str(BODY_TIMEOUT), "GENESIS_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT)}
    with LiveServer(data_dir=tmp_path_factory.mktemp("slow") / "data", env=env) as live:
        yield live


def _token(server: LiveServer) -> str:
    response = httpx.post(f"{server.base_url}/token", timeout=30,
                          data={"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD})
    return str(response.json()["access_token"])


def _latencies(server: LiveServer, token: str, count: int) -> list[float]:
    times = []
    with httpx.Client(base_url=server.base_url, timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
        for _ in range(count):
            started = time.perf_counter()
            response = client.get("/me")
            times.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
    return times


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


class Attack:
    """Slowloris (headers one byte at a time), oversized headers and trickled bodies, all at once."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stop = threading.Event()
        self.slow: list[socket.socket] = []
        self.big_answers: list[bytes] = []
        self.body_answers: list[tuple[float, bytes]] = []
        self._threads = [threading.Thread(target=self._drip_headers, daemon=True),
                         threading.Thread(target=self._oversized, daemon=True),
                         *(threading.Thread(target=self._trickle_body, daemon=True) for _ in range(5))]

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.settimeout(10)
        return sock

    def _drip_headers(self) -> None:
        for _ in range(SLOWLORIS):
            sock = self._connect()
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            self.slow.append(sock)
        while not self.stop.is_set():
            for i, sock in enumerate(self.slow):
                with contextlib.suppress(OSError):
                    sock.send(b"X-Slow-%d: a\r\n" % i if i % 2 else b"a")  # never the blank line that ends headers
            self.stop.wait(0.2)

    def _oversized(self) -> None:
        while not self.stop.is_set():
            for request in (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n",
                            b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Many: b\r\n" * 20_000 + b"\r\n"):
                try:
                    with self._connect() as sock:
                        sock.sendall(request)
                        self.big_answers.append(sock.recv(64))
                except OSError as exc:  # the server may close before reading it all: a refusal too
                    self.big_answers.append(f"closed: {type(exc).__name__}".encode())

    def _trickle_body(self) -> None:
        while not self.stop.is_set():
            try:
                with self._connect() as sock:
                    sock.sendall(b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
                                 b"\r\nContent-Length: 1000\r\n\r\ngrant_type=")
                    started = time.monotonic()
                    sock.settimeout(0.3)
                    answer = b""
                    while not answer and time.monotonic() - started < 4 * BODY_TIMEOUT:
                        try:
                            answer = sock.recv(256)
                            break
                        except TimeoutError:
                            sock.send(b"a")
                    self.body_answers.append((time.monotonic() - started, answer))
            except OSError:
                pass

    def __enter__(self) -> Attack:
        for thread in self._threads:
            thread.start()
        deadline = time.monotonic() + 10
        while len(self.slow) < SLOWLORIS and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=20)
        for sock in self.slow:
            sock.close()


def test_slowloris_oversized_headers_and_trickled_bodies_leave_normal_clients_fast(server: LiveServer) -> None:
    token = _token(server)
    baseline = _latencies(server, token, 60)
    with Attack(server.port) as attack:
        assert len(attack.slow) == SLOWLORIS
        time.sleep(0.5)
        under_attack = _latencies(server, token, 150)
        time.sleep(max(0.0, 2.5 * BODY_TIMEOUT - 1))
    print(f"\nGET /me p50/p99 ms: baseline {statistics.median(baseline) * 1000:.1f}/{_p99(baseline) * 1000:.1f}, "
          f"under attack {statistics.median(under_attack) * 1000:.1f}/{_p99(under_attack) * 1000:.1f}; "
          f"oversized answers {len(attack.big_answers)}, trickled bodies {len(attack.body_answers)}")
    assert _p99(under_attack) < P99_BOUND_SECONDS, sorted(under_attack)[-5:]
    # Oversized headers are refused (431, or the connection is closed), never served.
    assert attack.big_answers
    assert all(answer.startswith(b"HTTP/1.1 431") or answer.startswith(b"closed") or answer == b""
               for answer in attack.big_answers), {a[:40] for a in attack.big_answers}
    # A body that does not arrive within the request timeout gets 408 and the connection is closed.
    assert attack.body_answers
    for elapsed, answer in attack.body_answers:
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert elapsed < BODY_TIMEOUT + 2
    # Not exhausted: the server answers at once afterwards and is still ready.
    with httpx.Client(base_url=server.base_url, timeout=5) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/ready").status_code == 200


def _answer_and_close(sock: socket.socket, *, drip: bool) -> tuple[float, bytes]:
    """Wait for the server to answer and close, sending a header byte every 0.3 s when ``drip``."""
    started = time.monotonic()
    sock.settimeout(0.3)
    answer = b""
    while time.monotonic() - started < HEADER_TIMEOUT + 5:
        try:
            chunk = sock.recv(256)
        except TimeoutError:
            if drip:
                sock.send(b"a")
            continue
        except OSError:
            break
        if not chunk:
            break
        answer += chunk
    return time.monotonic() - started, answer


class _Responses:
    """Whole responses (Content-Length bodies) read off one socket, keeping what arrives early."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending = b""

    def _more(self) -> None:
        chunk = self.sock.recv(4096)
        if not chunk:
            raise AssertionError(f"connection closed with {self.pending[:80]!r} unread")
        self.pending += chunk

    def next(self) -> bytes:
        while b"\r\n\r\n" not in self.pending:
            self._more()
        head, _, rest = self.pending.partition(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length"))
        self.pending = rest
        while len(self.pending) < length:
            self._more()
        body, self.pending = self.pending[:length], self.pending[length:]
        return head + b"\r\n\r\n" + body


def test_a_request_that_never_finishes_its_headers_gets_408_and_is_closed(server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        elapsed, answer = _answer_and_close(sock, drip=True)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"connection: close" in answer.lower()
    assert HEADER_TIMEOUT - 0.5 < elapsed < HEADER_TIMEOUT + 2


def test_a_connection_that_sends_nothing_is_closed_at_the_header_deadline(server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        elapsed, answer = _answer_and_close(sock, drip=False)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert elapsed < HEADER_TIMEOUT + 2


def test_the_header_deadline_restarts_for_each_request_on_a_kept_alive_connection(server: LiveServer) -> None:
    # Requests on one connection spanning more than the deadline in total are all served.
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        started = time.monotonic()
        while time.monotonic() - started < HEADER_TIMEOUT + 1:
            assert client.get("/health").status_code == 200
            time.sleep(0.5)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        responses = _Responses(sock)
        for _ in range(2):
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert responses.next().startswith(b"HTTP/1.1 200")
            time.sleep(HEADER_TIMEOUT * 0.7)  # idle between requests: keep-alive's business, not ours
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # then a request that stalls mid-headers
        _, answer = _answer_and_close(sock, drip=True)
    assert answer.startswith(b"HTTP/1.1 408"), answer


def test_blank_lines_between_requests_do_not_escape_the_deadline(server: LiveServer) -> None:
    # The parser skips CRLFs between requests without beginning a message, and uvicorn cancels its keep-alive
    # timer on any byte: without our arming on idle bytes, one CRLF would hold the connection for ever.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _Responses(sock).next().startswith(b"HTTP/1.1 200")
        sock.sendall(b"\r\n")
        elapsed, answer = _answer_and_close(sock, drip=False)
    assert elapsed < HEADER_TIMEOUT + 2, (elapsed, answer)


def test_pipelined_requests_are_all_answered(server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
        responses = _Responses(sock)
        answers = [responses.next() for _ in range(3)]
    assert all(a.startswith(b"HTTP/1.1 200") for a in answers)


def test_headers_past_the_hard_bound_are_refused_before_they_are_buffered(server: LiveServer) -> None:
    answer: bytes | None = None
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        with contextlib.suppress(OSError):  # the server may close while we still send: a refusal
            for _ in range(64):  # 4 MiB offered in 64 KiB pieces, no end of line
                sock.sendall(b"a" * 65536)
        sock.settimeout(5)
        try:
            answer = sock.recv(256)
        except TimeoutError:
            answer = None  # still reading: not refused
        except OSError:
            answer = b""  # reset: refused
    assert answer is not None, "the server kept buffering 4 MiB of headers"
    assert answer.startswith(b"HTTP/1.1 431") or answer == b"", answer


def test_body_timeout_setting_reaches_the_server(server: LiveServer) -> None:
    # Guards the test above against a server that ignores GENESIS_REQUEST_TIMEOUT_SECONDS.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: 10\r\n\r\n")
        started = time.monotonic()
        answer = sock.recv(256)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert BODY_TIMEOUT - 0.5 < time.monotonic() - started < BODY_TIMEOUT + 2
