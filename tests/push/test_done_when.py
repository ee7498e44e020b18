"""Issue 14's "Done when": GOOG with injected spikes reaches a WebSocket client, an SSE client and a webhook
receiver as exactly the anomalies the detector finds, in order, with valid signatures; on one server (SQLite),
and on two servers sharing PostgreSQL and Redis with the subscriber on the other one, one of them killed mid-stream.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from standardwebhooks import Webhook

from genesis.analytics import scan
from genesis.push.signing import verify
from genesis.timeutil import rfc3339
from tests.conftest import PG_SKIP, REDIS_SKIP
from tests.live import LiveServer, wait_until
from tests.push.wire import (
    PUSH_ENV,
    SseReader,
    WebhookReceiver,
    auth,
    login,
    register_webhook,
    websocket,
    ws_collect,
    ws_subscribe,
)

pytestmark = pytest.mark.slow

SPIKES = (500, 1200, 1800)
BATCHES = 4
START_US = 1_092_873_600_000_000  # 2004-08-19, GOOG's first bar


def goog_with_spikes() -> tuple[list[int], np.ndarray[Any, np.dtype[np.float64]]]:
    from backtesting.test import GOOG

    closes = GOOG.Close.to_numpy(dtype=np.float64).copy()
    for index in SPIKES:
        closes[index] *= 1.5
    stamps = [int(ts.value // 1000) for ts in GOOG.index]
    return stamps, closes


def expected_anomalies(closes: np.ndarray[Any, np.dtype[np.float64]], stamps: list[int]) -> list[str]:
    """The oracle: the detector's anomalies over the whole series at once (the REST defaults), as timestamps."""
    found = scan(closes, threshold=3.0, window_size=100, method="log_return_zscore").anomalies()
    assert set(SPIKES) <= set(found.tolist())  # every injected spike is among them
    return [rfc3339(stamps[i]) for i in found]


def ingest(base: str, token: str, stamps: list[int], closes: np.ndarray[Any, np.dtype[np.float64]],
           part: slice) -> None:
    points = [{"timestamp": rfc3339(t), "price": float(c)} for t, c in zip(stamps[part], closes[part], strict=True)]
    response = httpx.post(f"{base}/prices/GOOG", json={"points": points}, headers=auth(token), timeout=120)
    assert response.status_code == 200, response.text


def parts(n: int) -> list[slice]:
    size = -(-n // BATCHES)
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def check_webhooks(receiver: WebhookReceiver, secret: str, expected: list[str]) -> None:
    assert wait_until(lambda: len(receiver.received) >= len(expected), timeout=60), len(receiver.received)
    bodies = receiver.bodies()
    assert [b["data"]["timestamp"] for b in bodies] == expected
    assert {b["type"] for b in bodies} == {"anomaly"} and {b["topic"] for b in bodies} == {"anomalies.GOOG"}
    reference = Webhook(secret)
    for item in receiver.received:
        verify([secret], item.headers, item.body)  # ours
        reference.verify(item.body, item.headers)  # and the Standard Webhooks reference library
    assert len({r.headers["webhook-id"] for r in receiver.received}) == len(expected)


def test_goog_anomalies_reach_websocket_sse_and_webhook_exactly_in_order(tmp_path: Path) -> None:
    stamps, closes = goog_with_spikes()
    expected = expected_anomalies(closes, stamps)
    with WebhookReceiver() as receiver, LiveServer(data_dir=tmp_path / "data", env=PUSH_ENV) as server:
        base = server.base_url
        token = login(base)
        hook = register_webhook(base, token, receiver.url, ["anomalies.GOOG"])
        assert hook["secret"].startswith("whsec_")
        with websocket(base, token) as ws, SseReader(f"{base}/stream?topics=anomalies.GOOG", auth(token)) as sse:
            assert sse.status == 200
            assert ws_subscribe(ws, "anomalies.GOOG")["type"] == "subscribed"
            for part in parts(len(closes)):
                ingest(base, token, stamps, closes, part)
            got_ws = ws_collect(ws, "anomalies.GOOG", len(expected))
            assert [m["data"]["timestamp"] for m in got_ws] == expected
            assert [m["seq"] for m in got_ws] == list(range(1, len(expected) + 1))
            assert {m["type"] for m in got_ws} == {"anomaly"}
            assert all(m["data"]["score"] > 3 or m["data"]["score"] < -3 for m in got_ws)
            assert wait_until(lambda: len(sse.of("anomalies.GOOG")) >= len(expected), timeout=60)
            got_sse = sse.of("anomalies.GOOG")
            assert [m["data"]["timestamp"] for m in got_sse] == expected
            assert [m["id"] for m in got_sse] == [m["id"] for m in got_ws]
        check_webhooks(receiver, hook["secret"], expected)


@pytest.mark.postgres
@pytest.mark.redis
def test_two_servers_on_postgresql_and_redis_one_killed_mid_stream_lose_nothing(
    tmp_path: Path, pg_database_url: str, redis_url: str, redis_prefix: str,
) -> None:
    if PG_SKIP or REDIS_SKIP:
        pytest.skip(PG_SKIP or REDIS_SKIP)
    stamps, closes = goog_with_spikes()
    expected = expected_anomalies(closes, stamps)
    env = {**PUSH_ENV, "GENESIS_DATABASE_URL": pg_database_url, "GENESIS_REDIS_URL": redis_url,
           "GENESIS_KEY_PREFIX": redis_prefix, "GENESIS_SECRET_KEY": "k" * 48}
    batches = parts(len(closes))
    with WebhookReceiver() as receiver, LiveServer(data_dir=tmp_path / "a", env=env) as a, \
            LiveServer(data_dir=tmp_path / "b", env=env) as b:
        token = login(a.base_url)
        hook = register_webhook(a.base_url, token, receiver.url, ["anomalies.GOOG"])
        got: list[dict[str, Any]] = []
        with websocket(b.base_url, token) as ws, SseReader(f"{b.base_url}/stream?topics=anomalies.GOOG",
                                                           auth(token)) as sse:
            ws_subscribe(ws, "anomalies.GOOG")
            ingest(a.base_url, token, stamps, closes, batches[0])  # ingested on A, streamed by B
            first = sum(1 for t in expected if t <= rfc3339(stamps[batches[0].stop - 1]))
            got += ws_collect(ws, "anomalies.GOOG", first)
            assert wait_until(lambda: len(sse.of("anomalies.GOOG")) >= first, timeout=30)
            last_sse_id = sse.events[-1][0]
        b.stop(signal.SIGKILL)  # the subscribers' server dies mid-stream
        for part in batches[1:]:
            ingest(a.base_url, token, stamps, closes, part)
        with LiveServer(data_dir=tmp_path / "b2", env=env) as b2:  # a fresh server, the same Redis
            with websocket(b2.base_url, token) as ws:
                assert ws_subscribe(ws, "anomalies.GOOG", since=got[-1]["id"])["type"] == "subscribed"
                got += ws_collect(ws, "anomalies.GOOG", len(expected) - len(got))
            with SseReader(f"{b2.base_url}/stream?topics=anomalies.GOOG",
                           {**auth(token), "Last-Event-ID": last_sse_id}) as sse:
                assert wait_until(lambda: len(sse.of("anomalies.GOOG")) >= len(expected) - first, timeout=30)
                resumed = sse.of("anomalies.GOOG")
        assert [m["data"]["timestamp"] for m in got] == expected
        assert [m["seq"] for m in got] == list(range(1, len(expected) + 1))
        assert [m["data"]["timestamp"] for m in resumed] == expected[first:]
        check_webhooks(receiver, hook["secret"], expected)
