"""Rate limits: counted per principal or client address, refused with 429 and standard headers."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi.testclient import TestClient

from genesis.api.app import create_app
from genesis.config import Settings
from tests.conftest import bearer, token_for


def test_public_limit_answers_429_with_retry_after_and_ratelimit_headers(
    make_settings: Callable[..., Settings],
) -> None:
    with TestClient(create_app(make_settings(rate_limit_health="3/minute"))) as client:
        first = client.get("/health")
        assert first.status_code == 200
        assert first.headers["ratelimit-limit"] == "3"
        assert first.headers["ratelimit-remaining"] == "2"
        assert int(first.headers["ratelimit-reset"]) >= 1
        assert [client.get("/health").status_code for _ in range(2)] == [200, 200]
        refused = client.get("/health")
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["ratelimit-remaining"] == "0"
        assert refused.json()["status"] == 429


def test_forged_forwarded_for_does_not_bypass_the_limit(make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(make_settings(rate_limit_health="2/minute"))) as client:
        codes = [client.get("/health", headers={"X-Forwarded-For": f"10.0.0.{i}"}).status_code for i in range(4)]
    assert codes == [200, 200, 429, 429]


def test_forwarded_for_is_believed_from_a_trusted_proxy(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(rate_limit_health="2/minute", trusted_proxies="127.0.0.0/8")
    with TestClient(create_app(settings), client=("127.0.0.1", 40000)) as client:
        codes = [client.get("/health", headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code for i in range(4)]
        same = [client.get("/health", headers={"X-Forwarded-For": "198.51.100.9"}).status_code for _ in range(3)]
    assert codes == [200, 200, 200, 200]
    assert same == [200, 200, 429]


def test_authenticated_limit_is_keyed_by_principal(make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(make_settings(rate_limit_default="3/minute"))) as client:
        token = token_for(client)["access_token"]
        codes = [client.get("/me", headers=bearer(token)).status_code for _ in range(4)]
        # Another client address does not get a fresh budget for the same principal.
        other = TestClient(client.app, client=("198.51.100.1", 1))  # same app and runtime, no second lifespan
        assert other.get("/me", headers=bearer(token)).status_code == 429
    assert codes == [200, 200, 200, 429]


def test_login_is_throttled_per_account(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(login_failures_per_account_per_hour=3, login_attempts_per_ip_per_minute=100,
                             rate_limit_token="100/minute")
    with TestClient(create_app(settings)) as client:
        codes = [client.post("/token", data={"grant_type": "password", "username": "admin",
                                             "password": "wrong-password"}).status_code for _ in range(4)]
        # Even the right password is refused while the account is throttled.
        right = client.post("/token", data={"grant_type": "password", "username": "admin",
                                            "password": settings.admin_password.get_secret_value()})  # type: ignore[union-attr]
    assert codes == [400, 400, 400, 429]
    assert right.status_code == 429
    assert int(right.headers["retry-after"]) >= 1


def test_login_is_throttled_per_address(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(login_attempts_per_ip_per_minute=3, rate_limit_token="100/minute")
    with TestClient(create_app(settings)) as client:
        codes = [client.post("/token", data={"grant_type": "password", "username": f"user{i}",
                                             "password": "wrong-password"}).status_code for i in range(4)]
    assert codes == [400, 400, 400, 429]


def test_a_flood_of_429s_costs_one_audit_row_per_window_plus_one_summary(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(rate_limit_health="2/minute", audit_refusal_window_seconds=60)
    with TestClient(create_app(settings)) as client:
        statuses = [client.get("/health", headers={"X-Request-ID": f"flood-{i}"}).status_code for i in range(12)]
        assert statuses == [200, 200] + [429] * 10
    with TestClient(create_app(settings)) as client:  # the first app's shutdown wrote the pending count
        auditor = bearer(token_for(client)["access_token"])
        events = client.get("/audit/events", params={"action": "health", "limit": 100}, headers=auditor).json()
        refused = [e for e in events["events"] if e["status"] == 429]
        assert [e["correlation_id"] for e in refused] == ["flood-2"]  # the first refusal, in full
        summaries = client.get("/audit/events", params={"action": "ratelimit.refused.summary"},
                               headers=auditor).json()["events"]
        assert len(summaries) == 1
        (summary,) = summaries
        assert summary["metadata"]["refused"] == 9 and summary["status"] == 429
        assert summary["source_ip"] == refused[0]["source_ip"] and summary["path"] == "/health"
        assert client.get("/audit/verify", headers=auditor).json()["ok"] is True


def test_a_zero_refusal_window_audits_every_429(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(rate_limit_health="1/minute", audit_refusal_window_seconds=0)
    with TestClient(create_app(settings)) as client:
        assert [client.get("/health").status_code for _ in range(4)] == [200, 429, 429, 429]
        auditor = bearer(token_for(client)["access_token"])
        events = client.get("/audit/events", params={"action": "health"}, headers=auditor).json()["events"]
        assert sum(e["status"] == 429 for e in events) == 3


def test_a_closed_window_is_summarised_while_the_server_runs(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(rate_limit_health="1/minute", audit_refusal_window_seconds=1)
    with TestClient(create_app(settings)) as client:
        assert [client.get("/health").status_code for _ in range(5)] == [200, 429, 429, 429, 429]
        auditor = bearer(token_for(client)["access_token"])
        deadline = time.monotonic() + 10
        summaries: list[dict[str, object]] = []
        while not summaries and time.monotonic() < deadline:
            time.sleep(0.2)
            summaries = client.get("/audit/events", params={"action": "ratelimit.refused.summary"},
                                   headers=auditor).json()["events"]
        assert [s["metadata"]["refused"] for s in summaries] == [3]  # type: ignore[index]


def test_a_first_refusal_that_could_not_be_audited_leaves_no_window_open(
    make_settings: Callable[..., Settings],
) -> None:
    from genesis.audit import AuditEvent
    from genesis.errors import Unavailable

    settings = make_settings(rate_limit_health="1/minute", audit_refusal_window_seconds=60)
    with TestClient(create_app(settings)) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        assert client.get("/health").status_code == 200
        recorder = runtime.recorder
        real = recorder.record
        calls = 0

        async def failing_once(event: AuditEvent) -> AuditEvent:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise Unavailable("audit store away", component="audit")
            return await real(event)

        recorder.record = failing_once
        assert client.get("/health").status_code == 503  # refused, and its refusal not recorded
        assert client.get("/health").status_code == 429  # recorded in full, not merely counted
        assert calls == 2
