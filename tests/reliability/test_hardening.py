"""The smaller hardening points: headers on every answer, no slash redirects, rate-limited documentation, private
performance, problems that never echo what the caller sent, a private data directory.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from genesis.api.app import create_app
from genesis.config import Settings
from tests.conftest import bearer, token_for
from tests.reliability.conftest import Api

pytestmark = pytest.mark.timeout(300)


def test_every_answer_carries_nosniff_and_is_not_stored_unless_it_says_otherwise(module_api: Api) -> None:
    client = module_api.client
    answers = {
        "health": client.get("/health"),
        "docs": client.get("/docs"),
        "openapi": client.get("/openapi.json"),
        "me": client.get("/me", headers=module_api.admin),
        "401": client.get("/me"),
        "404": client.get("/no/such/route"),
        "405": client.delete("/health"),
        "413": client.post("/prices/X", content=b"x", headers={**module_api.admin, "Content-Length": str(1 << 30)}),
        "422": client.get("/audit/events", params={"limit": "x"}, headers=module_api.admin),
        "431": client.get("/health", headers={f"x-filler-{i}": "y" for i in range(120)}),
        "export": client.get("/audit/export", params={"format": "csv"}, headers=module_api.admin),
    }
    for name, response in answers.items():
        assert response.headers.get("x-content-type-options") == "nosniff", name
        assert response.headers.get("cache-control") == "no-store", name


def test_a_trailing_slash_is_a_plain_404_never_a_redirect_built_from_the_host_header(module_api: Api) -> None:
    for path, status in (("/health/", 404), ("/token/", 404), ("/me/", 404), ("/audit/events/", 404),
                         ("/prices/", 422)):  # ("/prices/{symbol:path}": an empty symbol is refused)
        response = module_api.client.get(path, headers={"Host": "evil.example", **module_api.admin},
                                         follow_redirects=False)
        assert response.status_code == status, (path, response.status_code)
        assert "location" not in response.headers
        assert "evil.example" not in response.text


def test_the_documentation_routes_are_rate_limited_per_address(fresh_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(fresh_settings(rate_limit_docs="3/minute")), client=("198.51.100.1", 1)) as client:
        codes = [client.get(path).status_code for path in ("/openapi.json", "/docs", "/redoc", "/openapi.json")]
        assert codes == [200, 200, 200, 429]
        assert client.get("/docs/oauth2-redirect").status_code == 429
    with TestClient(create_app(fresh_settings(rate_limit_docs="3/minute")), client=("198.51.100.2", 1)) as other:
        assert other.get("/openapi.json").status_code == 200  # another address has its own budget


def test_performance_shows_only_the_callers_own_backtests_and_admins_see_all(module_api: Api) -> None:
    client = module_api.client
    body = {"strategy": "sma_crossover", "params": {"fast": 2, "slow": 3}, "prices": [1.0, 2.0, 3.0, 2.5, 2.0, 3.5]}
    alice, bob = module_api.user("perf-alice", "trader"), module_api.user("perf-bob", "trader")
    assert client.post("/backtests", json=body, headers=alice).status_code == 201
    mine = client.get("/performance", headers=alice).json()
    assert mine and all(len(row["history"]) >= 1 for row in mine)
    assert client.get("/performance", headers=bob).json() == []
    everyone = {row["strategy_name"]: len(row["history"]) for row in client.get("/performance",
                                                                                headers=module_api.admin).json()}
    assert everyone["sma_crossover"] >= 1


SENTINEL = "Zq7Sentinel"


def test_problems_never_echo_the_values_the_caller_sent(module_api: Api) -> None:
    client, admin = module_api.client, module_api.admin
    trader = module_api.user("echo-trader", "trader")
    s = SENTINEL
    answers = [
        client.get(f"/prices/{s}..", headers=trader),  # an invalid symbol
        client.get(f"/prices/{s}", headers=trader),  # a symbol nobody stored
        client.get(f"/anomalies/{s}", headers=trader),
        client.get(f"/backtests/{s}", headers=trader),
        client.get(f"/audit/events/{s}", headers=admin),
        client.get("/audit/events", params={"cursor": s}, headers=admin),
        client.get("/audit/events", params={"start": s}, headers=admin),
        client.get("/audit/events", params={"outcome": s}, headers=admin),
        client.get("/prices/X", params={"limit": s}, headers=trader),
        client.post("/users", json={"username": f"-{s}", "role": "viewer", "password": "long-enough-pw"},
                    headers=admin),
        client.post("/users", json={"username": "echo-trader", "role": s, "password": "long-enough-pw"},
                    headers=admin),
        client.post("/users", json={"username": "echo-trader", "role": "viewer", "password": "long-enough-pw"},
                    headers=admin),
        client.get(f"/users/{s}/sessions", headers=admin),
        client.post("/prices/X", json={"points": [{"timestamp": s, "price": 1.0}]}, headers=trader),
        client.post("/prices/X", json={"points": [{"timestamp": "2026-02-30T00:00:00Z", "price": 1.0}]},
                    headers=trader),
        client.post("/backtests", json={"strategy": s, "prices": [1.0, 2.0]}, headers=trader),
        client.post("/backtests", json={"strategy": "sma_crossover", "symbol": s}, headers=trader),
        client.post(f"/indicators/{s}", json={"prices": [1.0, 2.0]}, headers=trader),
        client.post("/strategy/calculate", json={"strategy_name": s, "prices": [1.0, 2.0]}, headers=trader),
        client.post("/token", data={"grant_type": s}),
        client.post("/token", data={"grant_type": "password", "username": s, "password": s}),
        client.post("/token", data={"grant_type": "refresh_token", "refresh_token": s}),
        client.post("/token", data={"grant_type": "client_credentials", "client_id": s, "client_secret": s}),
        client.get(f"/{s}", headers=trader),  # no such route
        client.get(f"/health/{s}/"),
        client.request(s.upper(), "/health"),  # no such method
        client.post("/backtests", content=b"{}", headers={**trader, "Content-Type": f"text/{s}"}),  # not JSON
    ]
    for response in answers:
        assert 400 <= response.status_code < 500, (response.request.url, response.text)
        assert SENTINEL not in response.text, (response.request.url, response.text)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_directory_is_0700_and_the_database_and_key_files_0600(tmp_path: Path) -> None:
    data = tmp_path / "fresh" / "data"
    old_umask = os.umask(0o022)  # the usual umask, which would make them 0755 and 0644
    try:
        settings = Settings(_env_file=None, data_dir=data, admin_password="admin-Pa55word-for-tests",  # type: ignore[call-arg]
                            log_console=False)
        with TestClient(create_app(settings)) as client:
            token_for(client)  # writes: the -wal and -shm files exist now
            files = {name: data / name for name in ("genesis.db", "genesis.db-wal", "genesis.db-shm", "secret.key",
                                                    "audit-signing.key")}
            modes = {name: _mode(path) for name, path in files.items()}
            dirs = {name: _mode(path) for name, path in {"data": data, "logs": data / "logs"}.items()}
    finally:
        os.umask(old_umask)
    assert dirs == {"data": 0o700, "logs": 0o700}
    assert modes == dict.fromkeys(files, 0o600)


def test_a_database_left_world_readable_by_an_earlier_version_is_made_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = Settings(_env_file=None, data_dir=data, admin_password="admin-Pa55word-for-tests",  # type: ignore[call-arg]
                        log_console=False)
    with TestClient(create_app(settings)) as client:
        token_for(client)
    (data / "genesis.db").chmod(0o644)
    with TestClient(create_app(settings)) as client:
        assert client.get("/me", headers=bearer(token_for(client)["access_token"])).status_code == 200
    assert _mode(data / "genesis.db") == 0o600
