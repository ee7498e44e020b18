"""The audit trail through the API: what gets recorded, query, verify, export, scopes, failure."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from genesis.api.app import create_app
from genesis.audit.exportfile import verify_export_file
from genesis.config import Settings
from genesis.services.audit_trail import log_verifier
from tests.conftest import ADMIN_PASSWORD, bearer, token_for


@pytest.fixture
def auditor(client: TestClient) -> dict[str, str]:
    admin = bearer(token_for(client)["access_token"])
    client.post("/users", json={"username": "audra", "role": "auditor", "password": "auditor-password"},
                headers=admin)
    client.post("/users", json={"username": "trent", "role": "trader", "password": "trader-password"},
                headers=admin)
    return bearer(token_for(client, "audra", "auditor-password")["access_token"])


def _events(client: TestClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    response = client.get("/audit/events", params={"limit": 1000, **params}, headers=headers)
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def test_logins_refusals_and_reads_are_recorded_before_the_response(
    client: TestClient, auditor: dict[str, str]
) -> None:
    client.post("/token", data={"grant_type": "password", "username": "ghost", "password": "Secret-Guess-1"})
    client.get("/me", headers={"X-Request-ID": "req-401"})
    trader = bearer(token_for(client, "trent", "trader-password")["access_token"])
    client.get("/users", headers={**trader, "X-Request-ID": "req-403"})
    client.get("/me", headers={**trader, "X-Request-ID": "req-200"})

    failed = _events(client, auditor, action="auth.login.failed")
    assert failed and failed[-1]["actor"] == "user:ghost" and failed[-1]["outcome"] == "failure"
    assert failed[-1]["metadata"]["grant_type"] == "password"
    issued = _events(client, auditor, action="auth.token.issue", actor="user:trent")
    assert issued and issued[-1]["outcome"] == "success" and issued[-1]["status"] == 200
    refused = _events(client, auditor, correlation_id="req-401")
    assert [(e["status"], e["outcome"], e["actor"]) for e in refused] == [(401, "denied", "anonymous")]
    forbidden = _events(client, auditor, correlation_id="req-403")
    assert [(e["action"], e["status"], e["outcome"], e["actor"]) for e in forbidden] == [
        ("admin.user.list", 403, "denied", "user:trent")]
    read = _events(client, auditor, correlation_id="req-200")
    assert read[0]["action"] == "auth.me" and read[0]["method"] == "GET" and read[0]["path"] == "/me"
    assert read[0]["source_ip"] == "203.0.113.7"
    everything = json.dumps(_events(client, auditor))
    assert "Secret-Guess-1" not in everything and ADMIN_PASSWORD not in everything
    assert "trader-password" not in everything


def test_query_filters_pagination_and_order(client: TestClient, auditor: dict[str, str]) -> None:
    for i in range(5):
        client.get("/health")  # public and not refused: not audited
        client.get("/me", headers={**auditor, "X-Request-ID": f"page-{i}"})
    mine = _events(client, auditor, actor="user:audra", action="auth.me")
    assert len(mine) == 5
    first = client.get("/audit/events", params={"actor": "user:audra", "action": "auth.me", "limit": 2},
                       headers=auditor).json()
    second = client.get("/audit/events", params={"actor": "user:audra", "action": "auth.me", "limit": 2,
                                                  "cursor": first["next_cursor"]}, headers=auditor).json()
    assert [e["seq"] for e in first["events"] + second["events"]] == [e["seq"] for e in mine[:4]]
    before = _events(client, auditor)
    newest = client.get("/audit/events", params={"order": "desc", "limit": 1}, headers=auditor).json()["events"][0]
    # The newest event is the audit record of the listing just made (reads of the trail are audited too).
    assert newest["seq"] == max(e["seq"] for e in before) + 1
    assert newest["action"] == "audit.query"
    empty = _events(client, auditor, start="2001-01-01T00:00:00Z", end="2001-01-02T00:00:00Z")
    assert empty == []
    one = client.get(f"/audit/events/{mine[0]['event_id']}", headers=auditor)
    assert one.status_code == 200 and one.json()["seq"] == mine[0]["seq"]
    assert client.get("/audit/events/nope", headers=auditor).status_code == 404
    assert client.get("/audit/events", params={"cursor": "x; drop"}, headers=auditor).status_code == 422
    bad_range = client.get("/audit/events", params={"start": "2024-01-02T00:00:00Z", "end": "2024-01-01T00:00:00Z"},
                           headers=auditor)
    assert bad_range.status_code == 422


def test_audit_routes_need_the_audit_scope(client: TestClient, auditor: dict[str, str]) -> None:
    trader = bearer(token_for(client, "trent", "trader-password")["access_token"])
    for path in ("/audit/events", "/audit/verify", "/audit/export", "/metrics"):
        assert client.get(path, headers=trader).status_code == 403, path
        assert client.get(path).status_code == 401, path
    assert client.get("/audit/verify", headers=auditor).status_code == 200
    admin = bearer(token_for(client)["access_token"])
    metrics = client.get("/metrics", headers=admin)
    assert metrics.status_code == 200 and "genesis_http_requests_total" in metrics.text
    assert "genesis_audit_chain_head_seq" in metrics.text


def test_verify_and_offline_verifiable_export(
    client: TestClient, auditor: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    report = client.get("/audit/verify", headers=auditor).json()
    assert report["ok"] is True and report["events_checked"] > 3 and report["kind"] is None
    exported = client.get("/audit/export", headers=auditor)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    path = tmp_path / "audit.ndjson"
    path.write_bytes(exported.content)
    log_key = log_verifier(settings.data_dir, settings.audit_log_origin)
    checked = verify_export_file(path, log_key=log_key)
    assert checked.ok and checked.heads_in_file == 1 and checked.trail.covered_size == checked.trail.last_seq
    lines = exported.content.splitlines()
    event_index = next(i for i, line in enumerate(lines) if b'"type":"event"' in line)
    lines[event_index] = lines[event_index].replace(b'"outcome":"success"', b'"outcome":"failure"', 1)
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert not verify_export_file(path, log_key=log_key).ok
    csv_export = client.get("/audit/export", params={"format": "csv"}, headers=auditor)
    assert csv_export.text.splitlines()[0].startswith("timestamp,seq,event_id")


def test_requests_fail_closed_with_503_while_the_audit_store_cannot_commit(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(database_url=f"sqlite:///{tmp_path / 'locked.db'}", database_timeout_seconds=1)
    with TestClient(create_app(settings)) as client:
        token = bearer(token_for(client)["access_token"])
        # Another process holds the database's write lock: the audit writer cannot commit.
        blocker = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            response = client.get("/me", headers=token)
            assert response.status_code == 503
            assert "audit" in response.json()["detail"]
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        # Nothing to restart: the next request is served and audited again.
        assert client.get("/me", headers=token).status_code == 200
        auditor = token
        assert client.get("/audit/verify", headers=auditor).json()["ok"] is True
