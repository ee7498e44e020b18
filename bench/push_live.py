"""Push figures against a live ``genesis serve`` (real sockets on 127.0.0.1), each with an anchor from the same run.

* Idle WebSocket subscribers: growth of the server process's RSS per connection, each subscribed to one topic
  (50 symbols). Anchor: the same number of bare Starlette WebSockets that only wait (``bench/hello_app.py``).
* Anomaly fan-out: subscribers of ``anomalies.FAN``; each round ingests 150 quiet prices, then one spike: exactly
  one anomaly. Latency per subscriber = its receipt time - the envelope's ``time`` (stamped inside the ingesting
  transaction, just before its commit, so this is from the commit or a little earlier). Anchor: the bare app
  broadcasting one timestamped message to as many WebSockets.
* Ingestion with subscribers: 10,000-point requests (3 spikes each) with subscribers of ``anomalies.ING``
  attached, against the same requests with none (best of two runs without, before and after).
* Webhook delivery: deliveries queued while the receiver is down are sent once it is up (in order, one endpoint);
  rate from the first to the last receipt. Anchor: the same bodies POSTed one by one to the same receiver over
  new connections with httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from bench.core import KB, Figure, Scale, Target, proc_status
from bench.servers import Server, admin_token, free_port, start_genesis, start_hello
from bench.wsload import LeanWebSocket, open_websocket

START_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def _rfc3339(us: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _quiet(n: int, start_us: int, price: float) -> tuple[list[dict[str, Any]], float]:
    """Prices that never score as anomalies: log returns alternate +a / -a (|z| stays 1)."""
    points = []
    for i in range(n):
        price *= 1.001 if i % 2 == 0 else 1 / 1.001
        points.append({"timestamp": _rfc3339(start_us + i * 1_000_000), "price": price})
    return points, price


def _rss(server: Server) -> int:
    return proc_status(server.proc.pid).get("VmRSS", 0)


async def _open(
    url: str, n: int, *, headers: dict[str, str] | None, topics: list[str] | None,
    on_text: Callable[[int, bytes, int], None] | None = None,
) -> list[LeanWebSocket]:
    """``n`` WebSockets (100 handshakes at a time), each subscribed to its topic when ``topics`` is given."""
    gate = asyncio.Semaphore(100)
    loop = asyncio.get_running_loop()

    async def one(i: int) -> LeanWebSocket:
        subscribed: asyncio.Future[None] = loop.create_future()

        def handle(payload: bytes, now: int) -> None:
            if not subscribed.done() and b'"subscribed"' in payload:
                subscribed.set_result(None)
            elif on_text is not None:
                on_text(i, payload, now)

        async with gate:
            ws = await open_websocket(url, handle, headers=headers)
            if topics is not None:
                ws.send_text(json.dumps({"type": "subscribe", "topic": topics[i % len(topics)]}))
                await asyncio.wait_for(subscribed, 60)
            return ws

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def _close(conns: list[LeanWebSocket]) -> None:
    for ws in conns:
        ws.close()
    await asyncio.sleep(0.5)  # let the closes go out before the loop ends


class _Receipts:
    """Latencies of one round: receipt time - the message's own timestamp; done when every subscriber has one."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.latencies: list[float] = []
        self.done = asyncio.Event()

    def __call__(self, i: int, payload: bytes, now: int) -> None:
        # Cheap on purpose (no JSON parse): a thousand of these share the server's two cores.
        if payload.startswith(b'{"time_ns": '):
            sent = int(payload[12:-1]) / 1e9
        elif b'"type":"anomaly"' in payload:
            at = payload.find(b'"time":"') + 8
            sent = datetime.fromisoformat(payload[at : at + 27].decode()).timestamp()
        else:
            return
        self.latencies.append(now / 1e9 - sent)
        if len(self.latencies) >= self.n:
            self.done.set()

    async def round(self) -> list[float]:
        await asyncio.wait_for(self.done.wait(), 120)
        out, self.latencies = self.latencies, []
        self.done.clear()
        return out


def _settle(server: Server, seconds: float = 1.0) -> int:
    time.sleep(seconds)  # let the server finish what the handshakes started before reading its RSS
    return _rss(server)


def idle_figure(genesis: Server, hello: Server, token: str, n: int) -> Figure:
    async def measure(server: Server, url: str, headers: dict[str, str] | None, topics: list[str] | None) -> float:
        before = _settle(server, 0.2)
        conns = await _open(url, n, headers=headers, topics=topics)
        after = await asyncio.to_thread(_settle, server)
        await _close(conns)
        return (after - before) / n / KB

    ours = asyncio.run(measure(genesis, genesis.base.replace("http", "ws") + "/ws",
                               {"Authorization": f"Bearer {token}"}, [f"anomalies.S{i}" for i in range(50)]))
    anchor = asyncio.run(measure(hello, hello.base.replace("http", "ws") + "/ws", None, None))
    return Figure(f"idle WebSocket subscriber, server RSS ({n:,} on one worker)", ours, "KB",
                  "bare Starlette WebSocket", anchor, "KB", Target("value", "<=", 20, "KB"),
                  note="RSS growth of the worker process / connections; each subscribed to one of 50 topics")


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else values[0]


def fanout_figure(genesis: Server, hello: Server, token: str, n: int, rounds: int) -> Figure:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def ours() -> list[float]:
        receipts = _Receipts(n)
        conns = await _open(genesis.base.replace("http", "ws") + "/ws", n, headers={"Authorization": f"Bearer {token}"},
                            topics=["anomalies.FAN"], on_text=receipts)
        latencies: list[float] = []
        price, start = 100.0, START_US
        async with httpx.AsyncClient(timeout=60) as http:
            for _ in range(rounds):
                quiet, price = _quiet(150, start, price)
                start += 150 * 1_000_000
                price *= 1.5
                spike = {"timestamp": _rfc3339(start), "price": price}
                start += 1_000_000
                url = f"{genesis.base}/prices/FAN"
                (await http.post(url, json={"points": quiet}, headers=headers)).raise_for_status()
                (await http.post(url, json={"points": [spike]}, headers=headers)).raise_for_status()
                latencies += await receipts.round()
        await _close(conns)
        return latencies

    async def anchor() -> list[float]:
        receipts = _Receipts(n)
        conns = await _open(hello.base.replace("http", "ws") + "/ws", n, headers=None, topics=None, on_text=receipts)
        await asyncio.sleep(0.5)  # every socket registered with the app
        latencies: list[float] = []
        async with httpx.AsyncClient(timeout=60) as http:
            for _ in range(rounds):
                (await http.post(f"{hello.base}/broadcast")).raise_for_status()
                latencies += await receipts.round()
        await _close(conns)
        return latencies

    value = _p99(asyncio.run(ours())) * 1000
    base = _p99(asyncio.run(anchor())) * 1000
    return Figure(f"anomaly fan-out p99, commit to receipt ({n:,} WebSocket subscribers)", value, "ms",
                  "bare app broadcast p99", base, "ms", Target("value", "<", 50, "ms"),
                  note=f"{rounds} rounds, one anomaly each; the subscribers in one process on the same machine")


def ingest_figures(genesis: Server, token: str, n: int, requests: int, points: int) -> list[Figure]:
    """Requests to a symbol with ``n`` subscribers interleaved with the same requests to one with none (drift on a
    shared machine hits both alike); the best of each."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    state = {"price": 100.0, "start": START_US + 10**13}

    def body(spike: bool) -> bytes:
        batch, state["price"] = _quiet(points, state["start"], state["price"])
        if spike:
            batch[points // 2]["price"] *= 1.3  # two anomalies (the spike and its return) for every subscriber
        state["start"] += points * 1_000_000
        return json.dumps({"points": batch}).encode()

    def post(symbol: str, raw: bytes) -> float:
        began = time.perf_counter()
        response = httpx.post(f"{genesis.base}/prices/{symbol}", content=raw, headers=headers, timeout=120)
        response.raise_for_status()
        return time.perf_counter() - began

    def measure(spike: bool) -> tuple[float, float]:
        watched, alone = [], []
        for _ in range(requests):
            raw = body(spike)  # the same points for both symbols
            watched.append(post("ING", raw))
            alone.append(post("ALONE", raw))
        return min(watched), min(alone)

    async def attached() -> tuple[tuple[float, float], tuple[float, float]]:
        conns = await _open(genesis.base.replace("http", "ws") + "/ws", n, headers={"Authorization": f"Bearer {token}"},
                            topics=["anomalies.ING"], on_text=lambda i, payload, now: None)
        try:
            await asyncio.to_thread(post, "WARMUP", body(False))
            return await asyncio.to_thread(measure, False), await asyncio.to_thread(measure, True)
        finally:
            await _close(conns)

    (quiet_with, quiet_none), (spiky_with, spiky_none) = asyncio.run(attached())
    name = f"{n:,} anomaly subscribers attached ({points:,}-point requests"
    return [
        Figure(f"ingestion with {name}, no anomaly)", quiet_with * 1000, "ms/request", "the same, a symbol with none",
               quiet_none * 1000, "ms/request", Target("ratio", "<=", 1.2),
               note=f"best of {requests}, interleaved: what attaching subscribers costs ingestion"),
        Figure(f"ingestion with {name}, 2 anomalies each)", spiky_with * 1000, "ms/request",
               "the same, a symbol with none", spiky_none * 1000, "ms/request", Target("ratio", "<=", 1.2),
               note=f"best of {requests}, interleaved; the worker also sends {2 * n:,} messages per request"),
    ]


class _Receiver:
    def __init__(self, port: int) -> None:
        self.times: list[float] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.times.append(time.perf_counter())
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def _receiving(port: int) -> Iterator[_Receiver]:
    receiver = _Receiver(port)
    try:
        yield receiver
    finally:
        receiver.close()


def webhook_figure(genesis: Server, token: str, points: int) -> Figure:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with _receiving(free_port()) as receiver:
        url = f"http://127.0.0.1:{receiver.server.server_address[1]}/hook"
        made = httpx.post(f"{genesis.base}/webhooks", json={"url": url, "topics": ["prices.HOOK"]}, headers=headers,
                          timeout=30)
        made.raise_for_status()
        endpoint = made.json()["id"]
        quiet, _ = _quiet(points, START_US + 2 * 10**13, 100.0)
        # One request: its price messages (16 KiB each) are queued as deliveries in one transaction.
        httpx.post(f"{genesis.base}/prices/HOOK", json={"points": quiet}, headers=headers,
                   timeout=120).raise_for_status()
        pending = f"{genesis.base}/webhooks/{endpoint}/deliveries"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            page = httpx.get(pending, params={"status": "pending", "limit": 1}, headers=headers, timeout=30).json()
            if not page["deliveries"]:
                break
            time.sleep(0.2)
        got = len(receiver.times)
        ours = (got - 1) / (receiver.times[-1] - receiver.times[0]) if got > 1 else float("nan")
        body = json.dumps({"type": "price", "timestamp": _rfc3339(START_US), "topic": "prices.HOOK",
                           "data": {"points": quiet[:150]}}).encode()
        n = min(got, 200)
        # A new connection for each, as the sender (no keep-alive: see services/webhook_sender.py).
        with httpx.Client(timeout=15, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            began = time.perf_counter()
            for _ in range(n):
                client.post(url, content=body, headers={"content-type": "application/json"})
            anchor = n / (time.perf_counter() - began)
    return Figure("webhook delivery, one endpoint (price messages of 64 points)", ours, "deliveries/s",
                  "bare httpx POST loop", anchor, "deliveries/s", Target("value", ">=", 50, "deliveries/s"),
                  note=f"{got:,} deliveries queued by one request; signed, SSRF-checked, each attempt recorded; one "
                       "endpoint's deliveries go in order, one at a time")


def run(scale: Scale) -> list[Figure]:
    idle = scale.pick(5000, 40)
    fan = scale.pick(1000, 20)
    env = {
        "GENESIS_MAX_CONNECTIONS": str(idle + 200), "GENESIS_PUSH_CONNECTIONS_PER_PRINCIPAL": str(idle + 100),
        "GENESIS_PUSH_HEARTBEAT_SECONDS": "120", "GENESIS_PUSH_REVALIDATE_SECONDS": "300",
        "GENESIS_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1/32", "GENESIS_WEBHOOK_POLL_SECONDS": "0.2",
        "GENESIS_AUDIT_VERIFY_INTERVAL_SECONDS": "0",
    }
    with tempfile.TemporaryDirectory(prefix="genesis-bench-push-") as name:
        tmp = Path(name)
        with start_genesis(tmp / "genesis", env=env) as genesis, \
                start_hello(tmp / "hello", max_connections=idle + 200) as hello:
            token = admin_token(genesis)
            return [
                idle_figure(genesis, hello, token, idle),
                fanout_figure(genesis, hello, token, fan, scale.pick(20, 2)),
                *ingest_figures(genesis, token, fan, scale.pick(7, 1), scale.pick(10_000, 300)),
                webhook_figure(genesis, token, scale.pick(75_000, 1_500)),
            ]
