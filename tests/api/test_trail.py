"""A complete and clean trail: the right actor, refusals an auditor can tell apart, no secret in any field."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import bearer, token_for


def _events(client: TestClient, admin: str, **filters: str) -> list[dict[str, Any]]:
    response = client.get("/audit/events", params={"limit": "1000", **filters}, headers=bearer(admin))
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def test_refresh_reuse_detection_and_revocation_name_the_tokens_subject_as_actor(client: TestClient) -> None:
    admin = token_for(client)
    client.post("/users", json={"username": "tina", "role": "trader", "password": "trader-password"},
                headers=bearer(admin["access_token"]))
    tina = token_for(client, "tina", "trader-password")
    rotated = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": tina["refresh_token"]})
    assert rotated.status_code == 200
    replay = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": tina["refresh_token"]})
    assert replay.status_code == 400
    other = token_for(client, "tina", "trader-password")
    assert client.post("/token/revoke", data={"token": other["refresh_token"]}).status_code == 200
    assert client.post("/token/revoke", data={"token": "not-a-token"}).status_code == 200

    found = _events(client, admin["access_token"], actor="user:tina")
    by_action = {(e["action"], e["outcome"]) for e in found}
    assert ("auth.token.refresh", "success") in by_action
    assert ("auth.token.reuse_detected", "failure") in by_action
    assert ("auth.token.revoke", "success") in by_action
    reuse = next(e for e in found if e["action"] == "auth.token.reuse_detected")
    assert reuse["metadata"]["reason"] == "reuse" and reuse["metadata"]["error"] == "invalid_grant"
    revoke = next(e for e in found if e["action"] == "auth.token.revoke")
    assert revoke["metadata"]["revoked"] == "refresh_token" and revoke["metadata"]["session"]
    # A token the server does not know has no subject to name.
    unknown = [e for e in _events(client, admin["access_token"], action="auth.token.revoke")
               if e["actor"] == "anonymous"]
    assert len(unknown) == 1


def test_a_refused_read_of_another_users_backtest_is_told_apart_from_a_missing_one(client: TestClient) -> None:
    admin = token_for(client)["access_token"]
    for name in ("alice", "bob"):
        client.post("/users", json={"username": name, "role": "trader", "password": f"{name}-password"},
                    headers=bearer(admin))
    alice = token_for(client, "alice", "alice-password")["access_token"]
    bob = token_for(client, "bob", "bob-password")["access_token"]
    created = client.post("/backtests", json={"strategy": "sma_crossover", "params": {"fast": 2, "slow": 3},
                                               "prices": [1.0, 2.0, 3.0, 2.5, 2.0, 3.5]}, headers=bearer(alice))
    assert created.status_code == 201, created.text
    backtest_id = created.json()["id"]
    missing_id = "00000000-0000-4000-8000-000000000000"
    refused = client.get(f"/backtests/{backtest_id}", headers=bearer(bob))
    missing = client.get(f"/backtests/{missing_id}", headers=bearer(bob))
    # The requester cannot tell them apart...
    assert refused.status_code == missing.status_code == 404
    assert refused.json()["detail"] == missing.json()["detail"]
    assert "owner" not in refused.text and "alice" not in refused.text
    # ...the auditor can.
    reads = {e["metadata"]["backtest_id"]: e for e in _events(client, admin, actor="user:bob", action="backtests.read")}
    assert reads[backtest_id]["metadata"]["refused"] == "owner"
    assert reads[backtest_id]["metadata"]["owner"] == "user:alice"
    assert "refused" not in reads[missing_id]["metadata"]
    assert reads[backtest_id]["status"] == reads[missing_id]["status"] == 404


def test_a_token_in_the_path_user_agent_or_request_id_never_reaches_the_trail(client: TestClient) -> None:
    admin = token_for(client)
    secret = admin["refresh_token"]  # a live credential: the worst thing to keep
    signature = secret.rsplit(".", 1)[1]
    hostile = {"User-Agent": f"curl/8 Bearer {secret}", "X-Request-ID": secret}
    client.get(f"/prices/{secret}", headers=hostile)  # anonymous: a 401, audited
    client.get(f"/prices/{secret}", headers={**hostile, **bearer(admin["access_token"])})  # authenticated: 422
    client.get(f"/backtests/token={signature}", headers=bearer(admin["access_token"]))
    client.post("/token", data={"grant_type": "password", "username": secret, "password": "x"})
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    store = runtime.audit.store
    rows = [str(row) for row in store.iter_rows(start_seq=1, end_seq=store.head().seq)]
    assert rows and not [row for row in rows if signature in row]
    assert any("[REDACTED]" in row and "/prices/" in row for row in rows)


def test_a_cursor_past_64_bits_is_refused_with_422_not_500(client: TestClient) -> None:
    admin = token_for(client)["access_token"]
    for cursor in ("9223372036854775808", "99999999999999999999", "²"):
        response = client.get("/audit/events", params={"cursor": cursor}, headers=bearer(admin))
        assert response.status_code == 422, (cursor, response.text)
    assert client.get("/audit/events", params={"cursor": "9223372036854775807"},
                      headers=bearer(admin)).status_code == 200


def test_a_crash_is_answered_with_a_500_problem_and_recorded_once_with_outcome_error(client: TestClient) -> None:
    async def boom() -> None:
        raise RuntimeError("a bug, not a refusal")

    client.app.add_api_route("/boom", boom)  # type: ignore[attr-defined]
    crashed = client.get("/boom", headers={"X-Request-ID": "crash-1"})
    assert crashed.status_code == 500
    assert crashed.headers["content-type"] == "application/problem+json"
    assert "a bug" not in crashed.text and crashed.json()["correlation_id"] == "crash-1"
    admin = token_for(client)["access_token"]
    recorded = _events(client, admin, correlation_id="crash-1")
    assert [(e["status"], e["outcome"], e["path"]) for e in recorded] == [(500, "error", "/boom")]
