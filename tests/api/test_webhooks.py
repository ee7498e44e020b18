"""The webhook API: registration (secret once), listing without secrets, changes, rotation, deletion,
deliveries with attempts and redelivery; the SSRF policy; scopes; every change audited, never the secret."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import orjson
import pytest
from fastapi.testclient import TestClient

from genesis.api.app import create_app
from genesis.config import Settings
from tests.conftest import bearer, token_for
from tests.live import wait_until
from tests.push.wire import WebhookReceiver


@pytest.fixture
def hooks(make_settings: Callable[..., Settings], database_url: str) -> Iterator[TestClient]:
    settings = make_settings(database_url=database_url, webhook_allowed_hosts=["127.0.0.1/32"],
                             webhook_poll_seconds=0.1, rate_limits_enabled=False)
    with TestClient(create_app(settings), client=("203.0.113.7", 50000)) as client:
        yield client


def admin(client: TestClient) -> dict[str, str]:
    return bearer(token_for(client)["access_token"])


def test_an_endpoint_is_registered_with_a_secret_shown_once_and_listed_without_it(hooks: TestClient) -> None:
    headers = admin(hooks)
    made = hooks.post("/webhooks", json={"url": "http://127.0.0.1:9/hook?key=abc", "topics": ["anomalies.*", "audit"],
                                         "description": "risk"}, headers=headers)
    assert made.status_code == 201, made.text
    body = made.json()
    secret = body["secret"]
    assert secret.startswith("whsec_") and body["topics"] == ["anomalies.*", "audit"] and body["enabled"]
    listed = hooks.get("/webhooks", headers=headers)
    assert listed.status_code == 200 and secret not in listed.text and "secret" not in listed.json()[0]
    one = hooks.get(f"/webhooks/{body['id']}", headers=headers).json()
    assert one["url"] == "http://127.0.0.1:9/hook?key=abc" and "secret" not in one
    rotated = hooks.post(f"/webhooks/{body['id']}/rotate-secret", headers=headers).json()
    assert rotated["secret"] != secret and rotated["rotating"] is True
    patched = hooks.patch(f"/webhooks/{body['id']}", json={"enabled": False, "topics": ["audit"]}, headers=headers)
    assert patched.json()["enabled"] is False and patched.json()["disabled_reason"] == "disabled by request"
    assert hooks.delete(f"/webhooks/{body['id']}", headers=headers).status_code == 204
    assert hooks.get(f"/webhooks/{body['id']}", headers=headers).status_code == 404
    trail = hooks.get("/audit/events", params={"limit": 500}, headers=headers)
    assert secret not in trail.text and rotated["secret"] not in trail.text and "key=abc" not in trail.text
    changes = {e["action"]: e for e in trail.json()["events"] if e["action"].startswith("webhooks.")
               and e["outcome"] == "success" and e["method"] != "GET"}
    assert set(changes) == {"webhooks.create", "webhooks.rotate_secret", "webhooks.update", "webhooks.delete"}
    assert changes["webhooks.create"]["metadata"] == {"endpoint_id": body["id"], "url": "http://127.0.0.1:9/hook",
                                                      "topics": ["anomalies.*", "audit"]}


@pytest.mark.parametrize(("url", "reason"), [
    ("http://10.0.0.8/hook", "http"),  # http and private, not allow-listed
    ("https://10.0.0.8/hook", "private"),
    ("https://169.254.169.254/latest/meta-data", "link-local"),
    ("https://user:pw@example.com/hook", "user name"),
    ("ftp://example.com/hook", "https"),
])
def test_registration_refuses_what_the_ssrf_policy_refuses(hooks: TestClient, url: str, reason: str) -> None:
    refused = hooks.post("/webhooks", json={"url": url, "topics": ["audit"]}, headers=admin(hooks))
    assert refused.status_code == 422 and reason in refused.json()["detail"], refused.text


def test_topics_and_scopes_are_checked(hooks: TestClient) -> None:
    headers = admin(hooks)
    bad = hooks.post("/webhooks", json={"url": "http://127.0.0.1:9/h", "topics": ["nope"]}, headers=headers)
    assert bad.status_code == 422 and "unknown topic" in bad.json()["detail"]
    narrow = bearer(token_for(hooks, scope="webhooks:manage")["access_token"])  # a provisioning token
    forbidden = hooks.post("/webhooks", json={"url": "http://127.0.0.1:9/h", "topics": ["audit"]}, headers=narrow)
    assert forbidden.status_code == 403 and "audit:read" in forbidden.json()["detail"]
    hooks.post("/users", json={"username": "tina", "role": "trader", "password": "trader-Pa55word"}, headers=headers)
    trader = bearer(token_for(hooks, "tina", "trader-Pa55word")["access_token"])
    assert hooks.get("/webhooks", headers=trader).status_code == 403


def test_deliveries_are_listed_with_attempts_and_redelivered(hooks: TestClient) -> None:
    headers = admin(hooks)
    with WebhookReceiver() as receiver:
        made = hooks.post("/webhooks", json={"url": receiver.url, "topics": ["prices.DLV"]}, headers=headers).json()
        points = [{"timestamp": "2026-01-01T00:00:00Z", "price": 1.0}, {"timestamp": "2026-01-01T00:01:00Z",
                                                                       "price": 2.0}]
        assert hooks.post("/prices/DLV", json={"points": points}, headers=headers).status_code == 200
        assert wait_until(lambda: len(receiver.received) == 1, timeout=30)
        body = orjson.loads(receiver.received[0].body)
        assert body["type"] == "price" and [p["close"] for p in body["data"]["points"]] == [1.0, 2.0]
        page = hooks.get(f"/webhooks/{made['id']}/deliveries", headers=headers).json()
        assert wait_until(lambda: hooks.get(f"/webhooks/{made['id']}/deliveries", headers=headers).json()
                          ["deliveries"][0]["status"] == "delivered", timeout=30)
        page = hooks.get(f"/webhooks/{made['id']}/deliveries", headers=headers).json()
        delivery = page["deliveries"][0]
        assert delivery["id"] == receiver.received[0].headers["webhook-id"]
        assert delivery["attempt_log"][0]["status"] == 204 and delivery["attempt_log"][0]["duration_ms"] >= 0
        again = hooks.post(f"/webhooks/{made['id']}/deliveries/{delivery['id']}/redeliver", headers=headers)
        assert again.status_code == 202
        assert wait_until(lambda: len(receiver.received) == 2, timeout=30)
        assert receiver.received[1].headers["webhook-id"] == delivery["id"]
        one = hooks.get(f"/webhooks/{made['id']}/deliveries/{delivery['id']}", headers=headers).json()
        assert len(one["attempt_log"]) == 2
        missing = hooks.post(f"/webhooks/{made['id']}/deliveries/msg_nothere/redeliver", headers=headers)
        assert missing.status_code == 404
