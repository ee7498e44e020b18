"""Nothing holds the event loop: /health stays fast on a real `genesis serve` while another client sends a 16 MiB
price body or reads 100,000 prices (property 50).

Latency is measured open-loop: /health is due every INTERVAL seconds and each sample counts from the moment it was
due, not from when it could be sent, so a loop blocked for 600 ms shows as a run of slow samples rather than as one
(the coordinated-omission correction). The load comes from another process, so that it shares no GIL with the
sampler. The bound is relative to an idle baseline measured just before, with a floor: max(0.2 s, 10 x idle p99).
Other engineers' processes can stall a 2-core machine for a moment, so a measurement that misses the bound is taken
again, up to ATTEMPTS times: code that blocks the loop misses it every time (the code before this change: p99 0.3-0.4 s
while ingesting, 0.7-2.4 s while reading; after: 25-125 ms).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.live import LiveServer

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

PASSWORD = "loop-admin-password"
INTERVAL = 0.01
FLOOR = float(os.environ.get("GENESIS_LOOP_P99_FLOOR", "0.2"))
ATTEMPTS = 3
MAX_BODY = 16 * 1024 * 1024


def _price_body(points: int = 100_000, size: int = MAX_BODY - 4096) -> bytes:
    """100,000 OHLCV bars in the past, padded with blanks to just under the 16 MiB body limit."""
    start = 1_600_000_000
    bars = [{"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + 60 * i)), "open": 100.0 + i,
             "high": 101.5 + i, "low": 99.25 + i, "close": 100.75 + i, "volume": 1234.5 + i} for i in range(points)]
    body = orjson.dumps({"points": bars})
    assert len(body) < size
    return body[:-2] + b" " * (size - len(body)) + body[-2:]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {"GENESIS_ADMIN_PASSWORD": PASSWORD, "GENESIS_RATE_LIMITS_ENABLED": "false",
           "GENESIS_AUDIT_VERIFY_INTERVAL_SECONDS": "0", "GENESIS_REQUEST_TIMEOUT_SECONDS": "120"}
    with LiveServer(data_dir=tmp_path_factory.mktemp("loop"), env=env) as live:
        yield live


@pytest.fixture(scope="module")
def token(server: LiveServer) -> str:
    response = httpx.post(f"{server.base_url}/token", timeout=30,
                          data={"grant_type": "password", "username": "admin", "password": PASSWORD})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _health_p99(base: str, until: Callable[[], bool], *, deadline: float) -> tuple[float, int]:
    """p99 of /health latencies (from each sample's due time), sampling until ``until()`` or the deadline."""
    latencies: list[float] = []
    with httpx.Client(base_url=base, timeout=30) as client:
        start = time.perf_counter()
        due = start
        while not until() and time.perf_counter() - start < deadline:
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            assert client.get("/health").status_code == 200
            latencies.append(time.perf_counter() - due)
            due += INTERVAL
    latencies.sort()
    return latencies[int(len(latencies) * 0.99)], len(latencies)


LOAD_SCRIPT = """
import sys, httpx
base, token, kind, rounds, path = sys.argv[1:6]
headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
with httpx.Client(base_url=base, timeout=120) as client:
    for i in range(int(rounds)):
        if kind == "write":
            with open(path, "rb") as body:
                response = client.post(f"/prices/LOAD{i}", content=body.read(), headers=headers)
            ok = response.status_code == 200
        else:
            response = client.get("/prices/READ", params={"limit": 100000}, headers=headers)
            ok = response.status_code == 200 and response.content.startswith(b'{"symbol":"READ","count":100000,')
        print(response.status_code if ok else f"bad {response.status_code} {response.content[:200]!r}", flush=True)
"""


def _under_load(base: str, token: str, kind: str, rounds: int, body: Path) -> tuple[float, float, list[str]]:
    """/health p99 idle, then while another process (its own interpreter: no shared GIL) writes or reads."""
    idle, _ = _health_p99(base, lambda: False, deadline=3.0)
    load = subprocess.Popen([sys.executable, "-c", LOAD_SCRIPT, base, token, kind, str(rounds), str(body)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        busy, samples = _health_p99(base, lambda: load.poll() is not None, deadline=300.0)
        output, _ = load.communicate(timeout=300)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait(timeout=30)
    assert samples > 100
    return idle, busy, output.split()


def _bound(idle: float) -> float:
    return max(FLOOR, 10 * idle)


def _p99_stays_low(base: str, token: str, kind: str, rounds: int, body: Path, what: str) -> None:
    tries: list[tuple[float, float]] = []
    for _ in range(ATTEMPTS):
        idle, busy, statuses = _under_load(base, token, kind, rounds, body)
        assert statuses == ["200"] * rounds, statuses
        tries.append((idle, busy))
        print(f"\n/health p99 idle {idle * 1000:.1f} ms, while {what} {busy * 1000:.1f} ms")
        if busy <= _bound(idle):
            return
    pytest.fail(f"/health p99 (idle, busy) in seconds, every attempt over max({FLOOR}, 10 x idle): {tries}")


@pytest.fixture(scope="module")
def body_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("body") / "prices.json"
    path.write_bytes(_price_body())
    return path


def test_health_stays_fast_while_another_client_sends_16_mib_of_prices(
    server: LiveServer, token: str, body_file: Path
) -> None:
    _p99_stays_low(server.base_url, token, "write", 3, body_file, "16 MiB bodies are ingested")


def test_health_stays_fast_while_another_client_reads_100000_prices(
    server: LiveServer, token: str, body_file: Path
) -> None:
    seeded = httpx.post(f"{server.base_url}/prices/READ", content=body_file.read_bytes(), timeout=120,
                        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    assert seeded.status_code == 200, seeded.text
    _p99_stays_low(server.base_url, token, "read", 4, body_file, "100,000 prices are read")


def test_small_writes_and_reads_answer_as_before(server: LiveServer, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    points = [{"timestamp": f"2025-01-01T00:00:{i:02d}Z", "price": 10.0 + i} for i in range(12)]
    posted = httpx.post(f"{server.base_url}/prices/SMALL", json={"points": points}, headers=auth, timeout=30)
    assert posted.json() == {"symbol": "SMALL", "received": 12, "inserted": 12, "duplicates": 0}
    read = httpx.get(f"{server.base_url}/prices/SMALL", params={"limit": 5, "start": "2025-01-01T00:00:03Z"},
                     headers=auth, timeout=30).json()
    assert read["symbol"] == "SMALL" and read["count"] == 5
    assert [p["close"] for p in read["points"]] == [13.0, 14.0, 15.0, 16.0, 17.0]
    assert read["points"][0] == {"timestamp": "2025-01-01T00:00:03.000000Z", "close": 13.0, "open": None,
                                 "high": None, "low": None, "volume": None}


def _status_before_sending_the_body(server: LiveServer, request_head: bytes) -> int:
    """Send only a request's head (declaring a body) and read the status line the server answers with at once."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as conn:
        conn.sendall(request_head)
        status_line = conn.makefile("rb").readline()
    return int(status_line.split()[1])


def test_no_body_is_read_before_authentication_and_anonymous_bodies_are_capped(server: LiveServer) -> None:
    # 15,000,000 bytes declared and none sent: the answer comes anyway, so nothing of the body was waited for.
    anonymous = (b"POST /prices/BTC HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 15000000\r\n\r\n")
    assert _status_before_sending_the_body(server, anonymous) == 401
    forged = anonymous.replace(b"Host: x\r\n", b"Host: x\r\nAuthorization: Bearer not.a.token\r\n")
    assert _status_before_sending_the_body(server, forged) == 401
    token_route = b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n" \
                  b"Content-Length: 9000\r\n\r\n"
    assert _status_before_sending_the_body(server, token_route) == 413  # the routes without a token take 8 KiB
