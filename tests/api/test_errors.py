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


# --- one vocabulary -----------------------------------------------------------------------------------------------


def test_malformed_json_names_the_line_and_column(client: TestClient) -> None:
    admin = bearer(token_for(client)["access_token"])
    response = client.post("/strategy/calculate", content=b'{\n  "strategy_name": "sma",\n  "prices": [1, 2,]\n}',
                           headers={**admin, "Content-Type": "application/json"})
    assert response.status_code == 422
    body = response.json()
    assert body["type"].endswith("/validation-error")
    assert "line 3, column" in body["detail"] and "not valid JSON" in body["detail"]


def test_a_body_sent_without_a_json_content_type_is_415_saying_so(client: TestClient) -> None:
    admin = bearer(token_for(client)["access_token"])
    # What `curl -d '{...}'` sends when -H 'Content-Type: application/json' is forgotten.
    response = client.post("/strategy/calculate", content=b'{"strategy_name": "sma", "prices": [1, 2], "period": 1}',
                           headers={**admin, "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415
    body = response.json()
    assert body["type"].endswith("/unsupported-media-type") and "Content-Type: application/json" in body["detail"]
    assert response.headers["content-type"].startswith("application/problem+json")


def test_unknown_routes_and_methods_say_what_exists(client: TestClient) -> None:
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and "no route matches this method and path" in missing.json()["detail"]
    assert "nowhere" not in missing.text  # the caller's path is not quoted back
    assert missing.json()["type"].endswith("/not-found")
    wrong = client.delete("/health")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET"
    assert wrong.json()["type"].endswith("/method-not-allowed") and "allowed: GET" in wrong.json()["detail"]


def test_a_trailing_slash_is_not_redirected(client: TestClient) -> None:
    admin = bearer(token_for(client)["access_token"])
    response = client.post("/strategy/calculate/", json={"strategy_name": "sma", "prices": [1.0, 2.0], "period": 1},
                           headers=admin, follow_redirects=False)
    assert response.status_code == 404  # no 307 built from the Host header
    assert "the same path without its trailing slash exists" in response.json()["detail"]
    assert "strategy" not in response.json()["detail"]  # named, not quoted back


def test_every_problem_type_has_one_status_and_every_domain_error_is_registered() -> None:
    from genesis import errors
    from genesis.api.problems import PROBLEM_TYPES
    from genesis.services.auth import LoginThrottled

    def subclasses(cls: type) -> list[type]:
        return [cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))]

    for cls in subclasses(errors.GenesisError):
        # The base class, OAuthError (its code is the RFC 6749 error of each instance, registered below) and
        # ConfigurationError (it stops the start; no request is ever answered with it).
        if cls.code not in ("error", "configuration"):
            assert cls.code in PROBLEM_TYPES, cls
            assert PROBLEM_TYPES[cls.code].status == cls.http_status, cls
    assert PROBLEM_TYPES[LoginThrottled.code].status == 429
    for oauth in ("invalid_request", "invalid_client", "invalid_grant", "invalid_scope", "unsupported_grant_type"):
        assert PROBLEM_TYPES[oauth.replace("_", "-")].status == (401 if oauth == "invalid_client" else 400)
    assert all(code == code.lower() and "_" not in code for code in PROBLEM_TYPES)  # one spelling: kebab-case


def test_the_readme_lists_every_problem_type_with_its_status() -> None:
    import re
    from pathlib import Path

    from genesis.api.problems import PROBLEM_TYPES

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Errors", 1)[1].split("\n## ", 1)[0]
    listed = {m.group(1): int(m.group(2)) for m in re.finditer(r"^\| `([a-z-]+)` \| (\d{3}) \|", section, re.M)}
    assert listed == {code: p.status for code, p in PROBLEM_TYPES.items()}
