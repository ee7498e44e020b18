"""/ws and /stream against a live server: authentication, origins, revocation, privacy, limits, resumption, audit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.live import LiveServer, wait_until
from tests.push.wire import (
    PUSH_ENV,
    SseReader,
    auth,
    create_user,
    login,
    websocket,
    ws_collect,
    ws_next,
    ws_subscribe,
)

pytestmark = pytest.mark.slow

ENV = {**PUSH_ENV, "GENESIS_PUSH_CONNECTIONS_PER_PRINCIPAL": "3", "GENESIS_PUSH_SUBSCRIPTIONS_PER_CONNECTION": "3",
       "GENESIS_PUSH_CLIENT_MESSAGES_PER_SECOND": "1", "GENESIS_PUSH_CLIENT_MESSAGES_BURST": "4",
       "GENESIS_PUSH_AUTH_TIMEOUT_SECONDS": "1", "GENESIS_PUSH_ALLOWED_ORIGINS": "https://console.example"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data: Path = tmp_path_factory.mktemp("streams")
    with LiveServer(data_dir=data, env=ENV) as live:
        yield live


@pytest.fixture(scope="module")
def admin(server: LiveServer) -> str:
    return login(server.base_url)


def ingest(base: str, token: str, symbol: str, prices: list[float], start_minute: int = 0) -> None:
    points = [{"timestamp": f"2026-01-01T{(start_minute + i) // 60:02d}:{(start_minute + i) % 60:02d}:00Z",
               "price": p} for i, p in enumerate(prices)]
    response = httpx.post(f"{base}/prices/{symbol}", json={"points": points}, headers=auth(token), timeout=30)
    assert response.status_code == 200, response.text


def audit_events(base: str, token: str, action: str) -> list[dict[str, Any]]:
    page = httpx.get(f"{base}/audit/events", params={"action": action, "limit": 500}, headers=auth(token), timeout=30)
    assert page.status_code == 200, page.text
    events: list[dict[str, Any]] = page.json()["events"]
    return events


def close_code(ws: Any) -> tuple[int | None, str | None]:
    with pytest.raises(ConnectionClosed):
        for _ in range(1000):
            ws.recv(timeout=30)
    return ws.close_code, ws.close_reason


def test_a_header_a_single_use_ticket_or_a_first_message_authenticates(server: LiveServer, admin: str) -> None:
    base = server.base_url
    with websocket(base, admin) as ws:
        assert ws_subscribe(ws, "prices.HDR")["type"] == "subscribed"
    ticket = httpx.post(f"{base}/stream/tickets", headers=auth(admin), timeout=30).json()["ticket"]
    with websocket(base, query=f"ticket={ticket}") as ws:
        assert ws_subscribe(ws, "prices.TKT")["type"] == "subscribed"
    with websocket(base, query=f"ticket={ticket}") as ws:  # spent
        code, reason = close_code(ws)
        assert code == 1008 and "ticket" in (reason or "")
    with websocket(base) as ws:
        ws.send(json.dumps({"type": "auth", "token": admin}))
        assert ws_subscribe(ws, "prices.MSG")["type"] == "subscribed"
    with websocket(base) as ws:  # no auth message within the timeout
        code, reason = close_code(ws)
        assert code == 1008 and "auth" in (reason or "")
    with websocket(base, query=f"access_token={admin}") as ws:  # a token in the URL is refused, not used
        assert close_code(ws)[0] == 1008
    sse_ticket = httpx.post(f"{base}/stream/tickets", headers=auth(admin), timeout=30).json()["ticket"]
    with SseReader(f"{base}/stream?topics=prices.TKT&ticket={sse_ticket}", {}) as sse:
        assert sse.status == 200
    with SseReader(f"{base}/stream?topics=prices.TKT&ticket={sse_ticket}", {}) as sse:
        assert sse.status == 401
    with SseReader(f"{base}/stream?topics=prices.TKT", {}) as sse:
        assert sse.status == 401


def test_a_foreign_origin_is_refused_before_the_upgrade(server: LiveServer, admin: str) -> None:
    with pytest.raises(InvalidStatus) as refused, websocket(server.base_url, admin, origin="https://evil.example"):
        pass
    assert refused.value.response.status_code == 403
    with websocket(server.base_url, admin, origin="https://console.example") as ws:  # allow-listed
        assert ws_subscribe(ws, "prices.OK")["type"] == "subscribed"
    host = server.base_url.removeprefix("http://")
    with websocket(server.base_url, admin, origin=f"http://{host}") as ws:  # the server's own origin
        assert ws_subscribe(ws, "prices.OK")["type"] == "subscribed"
    refusals = audit_events(server.base_url, admin, "stream.refused")
    assert any(e["metadata"].get("reason") == "origin not allowed" for e in refusals)


def test_a_revoked_token_closes_its_streams_within_the_recheck_interval(server: LiveServer, admin: str) -> None:
    base = server.base_url
    token = login(base)
    with websocket(base, token) as ws, SseReader(f"{base}/stream?topics=prices.REV", auth(token)) as sse:
        ws_subscribe(ws, "prices.REV")
        assert httpx.post(f"{base}/token/revoke", data={"token": token}, timeout=30).status_code == 200
        code, reason = close_code(ws)
        assert code == 1008 and reason == "token-revoked"
        assert wait_until(lambda: any(e == "close" for _, e, _ in sse.events), timeout=20)
        assert sse.events[-1][2] == {"reason": "token-revoked"}
    closed = audit_events(base, admin, "stream.closed")
    assert {"websocket", "sse"} <= {e["metadata"]["transport"] for e in closed if e["metadata"]["reason"] ==
                                    "token-revoked"}


def test_topics_need_their_scope_and_private_backtests_stay_private(server: LiveServer, admin: str) -> None:
    base = server.base_url
    alice = create_user(base, admin, "alice", "trader")
    bob = create_user(base, admin, "bob", "trader")
    with websocket(base, alice) as wa, websocket(base, admin) as wadmin:
        refused = ws_subscribe(wa, "audit")
        assert refused["type"] == "error" and refused["code"] == "forbidden"
        assert ws_subscribe(wa, "backtests")["type"] == "subscribed"
        assert ws_subscribe(wadmin, "backtests")["type"] == "subscribed"
        run = {"strategy": "sma_crossover", "params": {"fast": 2, "slow": 3}, "prices": [1, 2, 3, 2, 1, 2, 3, 4]}
        for who in (bob, alice, bob):
            assert httpx.post(f"{base}/backtests", json=run, headers=auth(who), timeout=30).status_code == 201
        mine = ws_collect(wa, "backtests", 1)
        assert mine[0]["data"]["owner"] == "user:alice" and mine[0]["seq"] == 1
        everyone = ws_collect(wadmin, "backtests", 3)
        assert [m["data"]["owner"] for m in everyone] == ["user:bob", "user:alice", "user:bob"]
        wa.send(json.dumps({"type": "ping"}))
        assert ws_next(wa, lambda m: m.get("type") in ("pong", "error") or "seq" in m)["type"] == "pong"
    refusals = audit_events(base, admin, "stream.refused")
    assert any(e["actor"] == "user:alice" and e["metadata"].get("topic") == "audit" for e in refusals)


def test_limits_refuse_with_a_code_and_a_reason(server: LiveServer, admin: str) -> None:
    base = server.base_url
    carol = create_user(base, admin, "carol", "viewer")
    with websocket(base, carol) as a, websocket(base, carol) as b, websocket(base, carol) as c:
        for ws in (a, b, c):
            ws_subscribe(ws, "prices.L")
        with websocket(base, carol) as d:  # a fourth stream of one principal
            code, reason = close_code(d)
            assert code == 1013 and "at most 3" in (reason or "")
        with SseReader(f"{base}/stream?topics=prices.L", auth(carol)) as sse:
            assert sse.status == 429
        for topic in ("prices.L2", "prices.L3"):
            ws_subscribe(a, topic)
        too_many = ws_subscribe(a, "prices.L4")
        assert too_many["code"] == "too-large" and too_many["details"]["limit"] == "subscriptions_per_connection"
    with websocket(base, carol) as flood:
        for _ in range(12):
            flood.send(json.dumps({"type": "ping"}))
        code, reason = close_code(flood)
        assert code == 1008 and reason == "too many client messages"
    assert any(e["actor"] == "user:carol" for e in audit_events(base, admin, "stream.refused"))


def test_resumption_from_since_and_last_event_id_and_gap_notices(server: LiveServer, admin: str) -> None:
    base = server.base_url
    with websocket(base, admin) as ws:
        ws_subscribe(ws, "prices.RES")
        ingest(base, admin, "RES", [1.0, 2.0, 3.0])
        first = ws_collect(ws, "prices.RES", 1)[0]
        assert [p["close"] for p in first["data"]["points"]] == [1.0, 2.0, 3.0]
    ingest(base, admin, "RES", [4.0], start_minute=10)
    ingest(base, admin, "RES", [5.0], start_minute=11)
    with websocket(base, admin) as ws:  # resumes after the last id it handled
        ws_subscribe(ws, "prices.RES", since=first["id"])
        again = ws_collect(ws, "prices.RES", 2)
        assert [m["seq"] for m in again] == [first["seq"] + 1, first["seq"] + 2]
        stale = "someotherepoch:3"  # a token of another epoch: an explicit gap notice, not reused numbers
        ws_subscribe(ws, "prices.RES", since=stale)
        gap = ws_collect(ws, "prices.RES", 1)[0]
        assert gap["type"] == "gap" and gap["data"]["reason"] == "epoch"
    with SseReader(f"{base}/stream?topics=prices.RES", {**auth(admin), "Last-Event-ID": f"prices.RES@{first['id']}"}
                   ) as sse:
        assert wait_until(lambda: len(sse.of("prices.RES")) >= 2, timeout=20)
        assert [m["seq"] for m in sse.of("prices.RES")] == [first["seq"] + 1, first["seq"] + 2]
        assert sse.events[-1][0] == f"prices.RES@{again[-1]['id']}"  # the cursor names the topic's position
    with SseReader(f"{base}/stream?topics=prices.RES", {**auth(admin), "Last-Event-ID": "garbage"}) as sse:
        assert sse.status == 422


def test_stream_open_and_close_are_audited_with_actor_and_topics(server: LiveServer, admin: str) -> None:
    base = server.base_url
    with websocket(base, admin) as ws:
        ws_subscribe(ws, "anomalies.AUD")
        ws_subscribe(ws, "prices.AUD")
    with SseReader(f"{base}/stream?topics=prices.AUD,audit", auth(admin)) as sse:
        assert sse.status == 200
    assert wait_until(lambda: any(e["metadata"].get("topics") == ["audit", "prices.AUD"] for e in
                                  audit_events(base, admin, "stream.closed")), timeout=20)
    opened = audit_events(base, admin, "stream.ws.open")
    assert opened and opened[-1]["actor"] == "user:admin"
    closed = [e for e in audit_events(base, admin, "stream.closed") if e["metadata"]["transport"] == "websocket"]
    assert closed[-1]["metadata"]["topics"] == ["anomalies.AUD", "prices.AUD"]
    sse_open = audit_events(base, admin, "stream.sse")
    assert sse_open[-1]["metadata"]["topics"] == ["audit", "prices.AUD"] and sse_open[-1]["status"] == 200


def test_the_audit_topic_streams_committed_events(server: LiveServer, admin: str) -> None:
    base = server.base_url
    with websocket(base, admin) as ws:
        ws_subscribe(ws, "audit")
        assert httpx.get(f"{base}/me", headers=auth(admin), timeout=30).status_code == 200
        seen = ws_next(ws, lambda m: m.get("topic") == "audit" and m["data"]["path"] == "/me")
        assert seen["type"] == "audit.event" and seen["data"]["actor"] == "user:admin" and seen["data"]["seq"] > 0


def test_metrics_show_the_hub(server: LiveServer, admin: str) -> None:
    def connections() -> float:
        text = httpx.get(f"{server.base_url}/metrics", headers=auth(admin), timeout=30).text
        line = next(x for x in text.splitlines() if x.startswith('genesis_push_hub{what="connections"}'))
        return float(line.split()[-1])

    with websocket(server.base_url, admin) as a, websocket(server.base_url, admin) as b:
        ws_subscribe(a, "prices.MET")
        ws_subscribe(b, "prices.MET")
        assert connections() >= 2
    assert wait_until(lambda: connections() == 0, timeout=20)


def test_two_sqlite_workers_run_one_relay_and_deliver_each_webhook_once(tmp_path: Path) -> None:
    from tests.push.wire import WebhookReceiver, register_webhook

    with WebhookReceiver() as receiver, LiveServer(data_dir=tmp_path / "data", env=ENV, workers=2) as live:
        token = login(live.base_url)
        register_webhook(live.base_url, token, receiver.url, ["prices.ONCE"])
        for day in range(1, 7):  # requests spread over both workers by the kernel
            points = [{"timestamp": f"2026-02-{day:02d}T00:00:00Z", "price": float(day)}]
            response = httpx.post(f"{live.base_url}/prices/ONCE", json={"points": points}, headers=auth(token),
                                  timeout=30)
            assert response.status_code == 200, response.text
        assert wait_until(lambda: len(receiver.received) >= 6, timeout=60)
        assert not wait_until(lambda: len(receiver.received) > 6, timeout=3)  # and no second copy follows
        ids = [r.headers["webhook-id"] for r in receiver.received]
        assert len(set(ids)) == 6
        assert sorted(b["data"]["points"][0]["close"] for b in receiver.bodies()) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
