"""Signed tree heads and proofs over HTTP: what a client holding only the log key can check."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from genesis.audit.exportfile import verify_export_file
from genesis.audit.headlog import read as read_head_log
from genesis.audit.merkle import leaf_hash, verify_inclusion
from genesis.audit.note import SignedCheckpoint, open_checkpoint
from genesis.audit.verifier import check_consistency, check_inclusion
from genesis.config import Settings
from genesis.services.audit_trail import log_verifier
from tests.conftest import bearer, token_for

COLUMNS = ("seq", "event_id", "occurred_at_us", "level", "action", "outcome", "actor", "source_ip", "user_agent",
           "method", "path", "status", "correlation_id", "request_id", "message", "metadata", "prev_hash", "hash")


@pytest.fixture
def auditor(client: TestClient) -> dict[str, str]:
    admin = bearer(token_for(client)["access_token"])
    client.post("/users", json={"username": "audra", "role": "auditor", "password": "auditor-password"},
                headers=admin)
    client.post("/users", json={"username": "trent", "role": "trader", "password": "trader-password"},
                headers=admin)
    return bearer(token_for(client, "audra", "auditor-password")["access_token"])


def head(client: TestClient, auditor: dict[str, str], settings: Settings) -> SignedCheckpoint:
    made = client.post("/audit/heads", headers=auditor)
    assert made.status_code == 200, made.text
    response = client.get("/audit/checkpoint", headers=auditor)
    assert response.status_code == 200 and response.headers["content-type"] == "text/plain; charset=utf-8"
    opened = open_checkpoint(response.text, log_verifier(settings.data_dir, settings.audit_log_origin))
    assert opened.size == made.json()["tree_size"]
    return opened


def test_the_latest_head_verifies_and_is_published_to_the_head_log(
    client: TestClient, auditor: dict[str, str], settings: Settings
) -> None:
    opened = head(client, auditor, settings)
    as_json = client.get("/audit/heads/latest", headers=auditor).json()
    assert as_json["note"] == opened.note and as_json["tree_size"] == opened.size
    assert base64.b64decode(as_json["sha256_root_hash"]) == opened.root and as_json["reason"] == "on-demand"
    assert opened.note in read_head_log(settings.head_log_path).notes
    listed = client.get("/audit/heads", params={"min_size": 0}, headers=auditor).json()
    assert listed[-1]["note"] == opened.note
    made = client.get("/audit/events", params={"action": "audit.heads.make"}, headers=auditor).json()["events"]
    assert {e["outcome"] for e in made} >= {"started", "success"}  # an on-demand head is an audited action


def test_an_event_proves_its_inclusion_by_seq_and_by_id(
    client: TestClient, auditor: dict[str, str], settings: Settings
) -> None:
    events = client.get("/audit/events", params={"limit": 5}, headers=auditor).json()["events"]
    opened = head(client, auditor, settings)
    for event in events:
        for params in ({"seq": event["seq"]}, {"event_id": event["event_id"]}):
            proof = client.get("/audit/proofs/inclusion", params={"tree_size": opened.size, **params},
                               headers=auditor)
            assert proof.status_code == 200, proof.text
            body = proof.json()
            assert body["leaf_index"] == event["seq"] - 1 and body["event"]["event_id"] == event["event_id"]
            path = [base64.b64decode(h) for h in body["audit_path"]]
            leaf_input = base64.b64decode(body["leaf_input"])  # what a client hashes, and reads the event from
            verify_inclusion(leaf_hash(leaf_input), body["leaf_index"], opened.size, path, opened.root)
            stored = json.loads(leaf_input)
            assert (stored["event_id"], stored["seq"], stored["actor"]) == (event["event_id"], event["seq"],
                                                                            event["actor"])
            check_inclusion(opened, tuple({**stored, "hash": body["hash"]}[c] for c in COLUMNS), path)


def test_a_later_head_proves_it_extends_an_earlier_one(
    client: TestClient, auditor: dict[str, str], settings: Settings
) -> None:
    first = head(client, auditor, settings)
    for _ in range(5):
        client.get("/me", headers=auditor)
    second = head(client, auditor, settings)
    assert second.size > first.size
    body = client.get("/audit/proofs/consistency", params={"first": first.size, "second": second.size},
                      headers=auditor).json()
    check_consistency(first, second, [base64.b64decode(h) for h in body["consistency"]])


@pytest.mark.parametrize(("path", "params"), [
    ("/audit/proofs/inclusion", {"tree_size": 10**9, "seq": 1}),
    ("/audit/proofs/inclusion", {"tree_size": 2, "seq": 5}),
    ("/audit/proofs/inclusion", {"tree_size": 2}),
    ("/audit/proofs/inclusion", {"tree_size": 2, "seq": 1, "event_id": "x"}),
    ("/audit/proofs/inclusion", {"tree_size": 0, "seq": 1}),
    ("/audit/proofs/inclusion", {"tree_size": "many", "seq": 1}),
    ("/audit/proofs/consistency", {"first": 5, "second": 2}),
    ("/audit/proofs/consistency", {"first": 1, "second": 10**9}),
    ("/audit/proofs/consistency", {"first": -1, "second": 2}),
])  # fmt: skip
def test_bad_proof_requests_are_422_problems(
    client: TestClient, auditor: dict[str, str], path: str, params: dict[str, Any]
) -> None:
    response = client.get(path, params=params, headers=auditor)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def test_unknown_event_ids_are_404_and_the_routes_need_the_audit_scope(
    client: TestClient, auditor: dict[str, str], settings: Settings
) -> None:
    opened = head(client, auditor, settings)
    missing = client.get("/audit/proofs/inclusion", params={"tree_size": opened.size, "event_id": "nope"},
                         headers=auditor)
    assert missing.status_code == 404
    trader = bearer(token_for(client, "trent", "trader-password")["access_token"])
    for method, path in (("GET", "/audit/checkpoint"), ("GET", "/audit/heads/latest"), ("POST", "/audit/heads"),
                         ("GET", "/audit/proofs/consistency?first=1&second=2")):
        assert client.request(method, path, headers=trader).status_code == 403
        assert client.request(method, path).status_code == 401


def test_the_export_ends_with_a_fresh_head_and_carries_proofs_on_request(
    client: TestClient, auditor: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    key = log_verifier(settings.data_dir, settings.audit_log_origin)
    exported = client.get("/audit/export", params={"proofs": "true"}, headers=auditor)
    assert exported.status_code == 200
    lines = exported.content.splitlines()
    final = open_checkpoint(json.loads(lines[-2])["note"], key)
    events = [json.loads(line) for line in lines if b'"type":"event"' in line]
    assert final.size == events[-1]["seq"] == json.loads(lines[-1])["last_seq"]  # the head covers its last event
    for event in events:
        check_inclusion(final, tuple(event[c] for c in COLUMNS), [base64.b64decode(h) for h in event["proof"]])
    path = tmp_path / "audit.ndjson"
    path.write_bytes(exported.content)
    assert verify_export_file(path, log_key=key).ok
    path.write_bytes(b"\n".join([*lines[:-4], *lines[-2:]]) + b"\n")  # the last events cut, head and trailer kept
    report = verify_export_file(path, log_key=key)
    assert (report.trail.kind, report.trail.first_bad_seq) == ("truncated", final.size - 1)


def test_the_openapi_documents_the_tree_endpoints(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/audit/checkpoint", "/audit/heads", "/audit/heads/latest", "/audit/proofs/inclusion",
                 "/audit/proofs/consistency"):
        assert path in paths
    assert "text/plain" in paths["/audit/checkpoint"]["get"]["responses"]["200"]["content"]
    assert any(p["name"] == "proofs" for p in paths["/audit/export"]["get"]["parameters"])
