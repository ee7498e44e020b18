"""Bad input gets a clear problem document, never a 500."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from genesis.api.app import create_app
from genesis.config import Settings
from tests.conftest import bearer, token_for


def test_oversized_body_is_refused_with_413_before_parsing(make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(make_settings(max_body_bytes=2048))) as client:
        token = token_for(client)["access_token"]
        response = client.post("/users", content=b"{" + b" " * 5000 + b"}",
                               headers={**bearer(token), "Content-Type": "application/json"})
        assert response.status_code == 413
        assert response.json()["status"] == 413


def test_oversized_chunked_body_is_refused(make_settings: Callable[..., Settings]) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b" " * 1024

    with TestClient(create_app(make_settings(max_body_bytes=2048))) as client:
        token = token_for(client)["access_token"]
        response = client.post("/users", content=chunks(), headers={**bearer(token),
                                                                    "Content-Type": "application/json"})
        assert response.status_code == 413


def test_malformed_json_is_422_listing_the_problem(client: TestClient) -> None:
    token = token_for(client)["access_token"]
    response = client.post("/users", content=b'{"username": ', headers={**bearer(token),
                                                                        "Content-Type": "application/json"})
    assert response.status_code == 422
    body = response.json()
    assert body["type"].endswith("validation-error")
    assert body["errors"]


def test_validation_errors_name_the_fields_and_never_echo_input(client: TestClient) -> None:
    token = token_for(client)["access_token"]
    response = client.post("/users", json={"username": "bad name!", "role": "emperor", "password": "Zq9x"},
                           headers=bearer(token))
    assert response.status_code == 422
    body = response.json()
    fields = {tuple(e["loc"]) for e in body["errors"]}
    assert ("body", "username") in fields and ("body", "role") in fields and ("body", "password") in fields
    assert "Zq9x" not in response.text
    assert "username" in body["detail"]


def test_unknown_route_and_wrong_method_are_problems(client: TestClient) -> None:
    missing = client.get("/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    wrong = client.delete("/health")
    assert wrong.status_code == 405
    assert "GET" in wrong.headers["allow"]


def test_correlation_id_is_echoed_and_validated(client: TestClient) -> None:
    echoed = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    injected = client.get("/health", headers={"X-Request-ID": "bad\tvalue" + "x" * 300})
    assert injected.headers["x-request-id"] != "bad\tvalue" + "x" * 300
    assert len(injected.headers["x-request-id"]) <= 128
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    traced = client.get("/health", headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"})
    assert traced.headers["x-request-id"] == trace


def test_health_reports_status_and_rfc3339_timestamp(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["status"] == "healthy"
    assert body["timestamp"].endswith("Z") or "+00:00" in body["timestamp"]


def test_ready_names_the_database_when_it_is_unreachable(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(database_url="postgresql://nobody@127.0.0.1:1/none", database_timeout_seconds=1)
    with TestClient(create_app(settings, migrate=False)) as client:
        response = client.get("/ready")
    assert response.status_code == 503
    assert "database" in response.json()["detail"]
    assert response.headers["retry-after"]


def test_ready_is_ok_when_everything_answers(client: TestClient) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json()["checks"]["database"] == "ok"
