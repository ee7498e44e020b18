"""Access control: every route is either explicitly public or answers 401/403 by its OpenAPI security; two users per
resource type never reach each other's data; request bodies refuse unknown fields; responses carry no secrets.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from genesis.api.app import create_app
from genesis.security.scopes import SCOPES
from tests.conftest import bearer
from tests.reliability.conftest import Api, settings_for, strict_json

pytestmark = pytest.mark.timeout(300)

# Routes anyone may call. Every other route must declare an OAuth2 requirement in the OpenAPI document.
PUBLIC = {("GET", "/health"), ("GET", "/ready"), ("POST", "/token"), ("POST", "/token/revoke"),
          ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/docs/oauth2-redirect"), ("GET", "/redoc"),
          ("GET", "/console")}
PATH_VALUES = {"symbol": "BTC", "backtest_id": "00000000-0000-4000-8000-000000000000", "event_id": "nope",
               "name": "sma", "endpoint_id": "ep_nope", "msg_id": "msg_nope"}
# Endless event streams, described by the AsyncAPI document of docs/push.md instead of OpenAPI (tests/push checks
# their scopes per topic): here only that they refuse the anonymous.
STREAMS = {("GET", "/stream")}


def _http_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path template) of every HTTP route, including those left out of the OpenAPI document."""
    from fastapi import routing

    contexts = getattr(routing, "iter_route_contexts", None)  # FastAPI >= 0.16x wraps included routers
    routes = [ctx for ctx in contexts(app.routes)] if contexts else list(app.routes)
    for route in routes:
        methods = getattr(route, "methods", None) or getattr(getattr(route, "original_route", None), "methods", None)
        path = getattr(route, "path", None)
        if not methods or not path:
            continue
        for method in sorted(methods - {"HEAD"}):
            yield method, re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


def _security(app: FastAPI) -> dict[tuple[str, str], list[str] | None]:
    """The OAuth2 scopes each documented operation requires (None: no security requirement)."""
    found: dict[tuple[str, str], list[str] | None] = {}
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            requirements = operation.get("security")
            found[(method.upper(), path)] = (
                None if not requirements else sorted({s for req in requirements for s in req.get("OAuth2Password", [])})
            )
    return found


_APP = create_app(settings_for(Path("/nonexistent/genesis-route-listing")))  # builds routes only: no I/O
ROUTES = sorted(set(_http_routes(_APP)))
SECURITY = _security(_APP)


def test_route_listing_sees_every_documented_operation() -> None:
    # Guards the parametrisation below: a FastAPI upgrade that hides routes from the walk would make it vacuous.
    assert set(SECURITY) <= set(ROUTES)
    assert len(ROUTES) >= len(SECURITY) + 4


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_every_route_is_public_by_name_or_protected_by_its_documented_scopes(
    module_api: Api, method: str, path: str
) -> None:
    if (method, path) in PUBLIC:
        assert SECURITY.get((method, path)) is None, "a public route must not document a security requirement"
        return
    if (method, path) in STREAMS:
        refused = module_api.client.request(method, path, params={"topics": "audit"})
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        return
    assert (method, path) in SECURITY, f"{method} {path} is neither documented nor in the public list"
    required = SECURITY[(method, path)]
    assert required is not None, f"{method} {path} documents no security requirement but is not public"
    url = path.format(**PATH_VALUES)
    client = module_api.client
    body = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}

    anonymous = client.request(method, url, **body)
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    garbage = client.request(method, url, headers=bearer("not.a.token"), **body)
    assert garbage.status_code == 401, garbage.text

    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    module_api.user("scopes-admin", "admin")  # its own admin: DELETE /me/sessions must not end the module's admin

    def token(scopes: list[str]) -> dict[str, str]:
        user = client.portal.call(runtime.users.get, "scopes-admin")  # type: ignore[union-attr]
        return bearer(runtime.codec.issue(subject="user:scopes-admin", scopes=tuple(sorted(scopes)), ttl_seconds=600,
                                          generation=user.token_generation).token)

    for scope in required:
        without = client.request(method, url, headers=token(sorted(set(SCOPES) - {scope})), **body)
        assert without.status_code == 403, (scope, without.text)
        assert 'error="insufficient_scope"' in without.headers["www-authenticate"]
        assert scope in strict_json(without.content)["detail"]
    # Exactly the documented scopes are enough: the document and the enforcement agree.
    exact = client.request(method, url, headers=token(required), **body)
    assert exact.status_code not in (401, 403), exact.text


# --- two users per resource type ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def people(module_api: Api) -> dict[str, dict[str, str]]:
    return {name: module_api.user(name, role) for name, role in
            (("alice", "trader"), ("bob", "trader"), ("victor", "viewer"), ("audrey", "auditor"))}


def test_backtests_are_readable_by_their_owner_only(module_api: Api, people: dict[str, dict[str, str]]) -> None:
    client = module_api.client
    created = client.post("/backtests", headers=people["alice"],
                          json={"strategy": "sma_crossover", "params": {"fast": 2, "slow": 4},
                                "prices": [10.0 + (i % 7) for i in range(30)]})
    assert created.status_code == 201, created.text
    backtest_id = created.json()["id"]
    assert client.get(f"/backtests/{backtest_id}", headers=people["alice"]).status_code == 200
    for intruder in ("bob", "victor"):  # another trader; a viewer holding backtests:read
        response = client.get(f"/backtests/{backtest_id}", headers=people[intruder])
        assert response.status_code in (403, 404), response.text
        assert backtest_id not in response.text or response.status_code == 404
        assert "sma_crossover" not in response.text
    assert client.get(f"/backtests/{backtest_id}", headers=people["audrey"]).status_code == 403
    assert client.get(f"/backtests/{backtest_id}", headers=module_api.admin).status_code == 200


def test_prices_written_by_one_user_cannot_be_changed_by_another(
    module_api: Api, people: dict[str, dict[str, str]]
) -> None:
    client = module_api.client
    points = [{"timestamp": f"2025-03-01T00:0{i}:00Z", "price": 100.0 + i} for i in range(5)]
    assert client.post("/prices/ACL/USD", json={"points": points}, headers=people["alice"]).status_code == 200
    before = client.get("/prices/ACL/USD", headers=people["victor"])
    assert before.status_code == 200 and before.json()["count"] == 5
    overwrite = [{**p, "price": 1.0} for p in points]
    assert client.post("/prices/ACL/USD", json={"points": overwrite}, headers=people["victor"]).status_code == 403
    attempt = client.post("/prices/ACL/USD", json={"points": overwrite}, headers=people["bob"])
    assert attempt.status_code == 409  # stored points are never silently overwritten: a conflict, nothing stored
    assert [c["stored"]["close"] for c in attempt.json()["conflicts"]] == [100.0 + i for i in range(5)]
    assert client.get("/prices/ACL/USD", headers=people["alice"]).json() == before.json()
    assert client.get("/prices/ACL/USD", headers=people["audrey"]).status_code == 403


def test_the_audit_trail_is_readable_by_auditors_only_and_changeable_by_no_one(
    module_api: Api, people: dict[str, dict[str, str]]
) -> None:
    client = module_api.client
    client.get("/me", headers={**people["alice"], "X-Request-ID": "acl-alice-own"})
    for name in ("alice", "bob", "victor"):
        for url in ("/audit/events?actor=user:alice", "/audit/events?correlation_id=acl-alice-own", "/audit/verify",
                    "/audit/export"):
            assert client.get(url, headers=people[name]).status_code == 403, (name, url)
    mine = client.get("/audit/events", params={"correlation_id": "acl-alice-own"}, headers=people["audrey"])
    assert mine.status_code == 200 and [e["actor"] for e in mine.json()["events"]] == ["user:alice"]
    event_id = mine.json()["events"][0]["event_id"]
    assert client.get(f"/audit/events/{event_id}", headers=people["alice"]).status_code == 403
    for method in ("PUT", "PATCH", "DELETE", "POST"):  # no route changes an event, for anyone
        response = client.request(method, f"/audit/events/{event_id}", headers=module_api.admin)
        assert response.status_code == 405, (method, response.text)
    for url, body in (("/users", {"username": "x1", "role": "admin", "password": "password-123"}),
                      ("/prices/ACL/USD", {"points": [{"timestamp": "2025-01-01T00:00:00Z", "price": 1.0}]})):
        assert client.post(url, json=body, headers=people["audrey"]).status_code == 403


# --- mass assignment and secrets in responses ------------------------------------------------------------------

VALID_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/users"): {"username": "mass-user", "role": "viewer", "password": "viewer-password-1"},
    ("POST", "/clients"): {"client_id": "mass-bot", "role": "viewer"},
    ("POST", "/strategy/calculate"): {"strategy_name": "sma", "prices": [1.0, 2.0, 3.0], "period": 2},
    ("POST", "/indicators/{name}"): {"prices": [1.0, 2.0, 3.0], "params": {"period": 2}},
    ("POST", "/prices/{symbol}"): {"points": [{"timestamp": "2025-01-01T00:00:00Z", "price": 1.0}]},
    ("POST", "/backtests"): {"strategy": "sma_crossover", "prices": [1.0, 2.0, 3.0, 4.0], "params": {"fast": 1,
                                                                                                  "slow": 2}},
    ("POST", "/webhooks"): {"url": "https://93.184.215.14/hook", "topics": ["audit"]},
    ("PATCH", "/webhooks/{endpoint_id}"): {"description": "renamed"},
}


def _json_bodies(app: FastAPI) -> list[tuple[str, str]]:
    ops = []
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                ops.append((method.upper(), path))
    return sorted(ops)


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_every_json_request_schema_forbids_unknown_fields_at_every_level() -> None:
    spec = _APP.openapi()
    seen: set[str] = set()

    def walk(schema: dict[str, Any], where: str) -> None:
        schema = _resolve(spec, schema)
        if schema.get("type") == "object" and "properties" in schema:
            key = schema.get("title", where)
            if key in seen:
                return
            seen.add(key)
            assert schema.get("additionalProperties") is False, f"{where} ({key}) accepts unknown fields"
            for name, prop in schema["properties"].items():
                walk(prop, f"{where}.{name}")
        for keyword in ("anyOf", "oneOf", "allOf"):
            for sub in schema.get(keyword, []):
                walk(sub, where)
        if "items" in schema:
            walk(schema["items"], f"{where}[]")

    for method, path in _json_bodies(_APP):
        body = spec["paths"][path][method.lower()]["requestBody"]["content"]["application/json"]["schema"]
        walk(body, f"{method} {path}")
    assert {"UserCreate", "ClientCreate", "PricesIn", "PointIn", "BacktestCreate"} <= seen


@pytest.mark.parametrize(("method", "path"), _json_bodies(_APP), ids=lambda v: str(v))
def test_extra_fields_such_as_role_admin_are_refused(module_api: Api, method: str, path: str) -> None:
    assert (method, path) in VALID_BODIES, f"add a valid body for {method} {path} to VALID_BODIES"
    url = path.format(**PATH_VALUES)
    valid = VALID_BODIES[(method, path)]
    for extra in ({"role": "admin"}, {"is_admin": True}, {"scopes": ["admin"]}, {"owner": "user:admin"}):
        if set(extra) <= set(valid):
            continue
        response = module_api.client.request(method, url, json={**valid, **extra}, headers=module_api.admin)
        assert response.status_code == 422, (extra, response.text)
        assert any(next(iter(extra)) in err["loc"] for err in strict_json(response.content)["errors"])


def test_responses_carry_no_password_or_secret_hashes(module_api: Api, people: dict[str, dict[str, str]]) -> None:
    client = module_api.client
    created = client.post("/clients", json={"client_id": "hash-bot", "role": "viewer"}, headers=module_api.admin)
    secret = created.json()["client_secret"]
    for url in ("/users", "/clients", "/me", "/audit/export", "/audit/events?limit=1000", "/metrics"):
        text = client.get(url, headers=module_api.admin).text
        assert "$argon2" not in text, url
        assert secret not in text, url
    listed = client.get("/users", headers=module_api.admin).json()
    assert all(set(user) == {"username", "role", "disabled"} for user in listed)
