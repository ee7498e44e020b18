"""Several `genesis serve` processes (standing in for hosts) share PostgreSQL and Redis."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.live import LiveServer, RedisServer, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

PASSWORD = "scaleout-admin-password"


@pytest.fixture
def shared_env(pg_database_url: str, redis_url: str) -> dict[str, str]:
    return {
        "GENESIS_DATABASE_URL": pg_database_url,
        "GENESIS_REDIS_URL": redis_url,
        "GENESIS_KEY_PREFIX": f"genesis-test-{secrets.token_hex(4)}",
        "GENESIS_SECRET_KEY": secrets.token_urlsafe(48),
        "GENESIS_ADMIN_PASSWORD": PASSWORD,
        "GENESIS_RATE_LIMIT_HEALTH": "10/minute",
    }


@pytest.fixture
def two_hosts(tmp_path: Path, shared_env: dict[str, str]) -> Iterator[tuple[LiveServer, LiveServer]]:
    a = LiveServer(data_dir=tmp_path / "host-a", env=shared_env).start()
    try:
        b = LiveServer(data_dir=tmp_path / "host-b", env=shared_env).start()
        try:
            yield a, b
        finally:
            b.stop()
    finally:
        a.stop()


def _login(base: str, username: str = "admin", password: str = PASSWORD) -> dict[str, str]:
    response = httpx.post(f"{base}/token", data={"grant_type": "password", "username": username,
                                                 "password": password}, timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def test_users_tokens_revocation_and_refresh_families_are_shared(two_hosts: tuple[LiveServer, LiveServer]) -> None:
    a, b = two_hosts
    tokens = _login(a.base_url)
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert httpx.get(f"{b.base_url}/me", headers=auth, timeout=5).status_code == 200
    created = httpx.post(f"{a.base_url}/users", headers=auth, timeout=10,
                         json={"username": "hostuser", "role": "trader", "password": "hostuser-password"})
    assert created.status_code == 201
    _login(b.base_url, "hostuser", "hostuser-password")
    # A refresh on B spends the token A issued; replaying it on A revokes the family everywhere.
    refreshed = httpx.post(f"{b.base_url}/token", data={"grant_type": "refresh_token",
                                                         "refresh_token": tokens["refresh_token"]}, timeout=10)
    assert refreshed.status_code == 200
    replay = httpx.post(f"{a.base_url}/token", data={"grant_type": "refresh_token",
                                                     "refresh_token": tokens["refresh_token"]}, timeout=10)
    assert replay.status_code == 400
    newest = refreshed.json()["refresh_token"]
    assert httpx.post(f"{b.base_url}/token", data={"grant_type": "refresh_token", "refresh_token": newest},
                      timeout=10).status_code == 400
    # Revocation on A is seen by B at once.
    revoked = httpx.post(f"{a.base_url}/token/revoke", data={"token": tokens["access_token"]}, timeout=10)
    assert revoked.status_code == 200
    assert httpx.get(f"{b.base_url}/me", headers=auth, timeout=5).status_code == 401


def test_ending_sessions_on_one_host_ends_every_token_on_every_host(two_hosts: tuple[LiveServer, LiveServer]) -> None:
    a, b = two_hosts
    admin = {"Authorization": f"Bearer {_login(a.base_url)['access_token']}"}
    assert httpx.post(f"{a.base_url}/users", headers=admin, timeout=10, json={
        "username": "roamer", "role": "trader", "password": "roamer-password"}).status_code == 201
    tokens = _login(b.base_url, "roamer", "roamer-password")
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    for host in (a, b):  # both hosts have verified (and cached) the token
        assert httpx.get(f"{host.base_url}/me", headers=auth, timeout=5).status_code == 200
    ended = httpx.delete(f"{a.base_url}/users/roamer/sessions", headers=admin, timeout=10)
    assert ended.status_code == 200 and ended.json() == {"ended": 1}
    for host in (a, b):
        assert httpx.get(f"{host.base_url}/me", headers=auth, timeout=5).status_code == 401
        refreshed = httpx.post(f"{host.base_url}/token", timeout=10,
                               data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
        assert refreshed.status_code == 400


def test_prices_and_backtests_written_on_one_host_are_read_on_the_other(
    two_hosts: tuple[LiveServer, LiveServer],
) -> None:
    a, b = two_hosts
    auth = {"Authorization": f"Bearer {_login(a.base_url)['access_token']}"}
    points = [{"timestamp": f"2024-01-01T00:{i:02d}:00Z", "price": 100 + i} for i in range(40)]
    assert httpx.post(f"{a.base_url}/prices/X/Y", json={"points": points}, headers=auth, timeout=10).json()[
        "inserted"] == 40
    assert httpx.get(f"{b.base_url}/prices/X/Y", headers=auth, timeout=10).json()["count"] == 40
    assert httpx.get(f"{b.base_url}/anomalies/X/Y", params={"window": 10}, headers=auth,
                     timeout=10).json()["points"] == 40
    more = [{"timestamp": f"2024-01-01T01:{i:02d}:00Z", "price": 150 + i} for i in range(5)]
    httpx.post(f"{b.base_url}/prices/X/Y", json={"points": more}, headers=auth, timeout=10)
    # A's detector catches up with points B stored.
    assert httpx.get(f"{a.base_url}/anomalies/X/Y", params={"window": 10}, headers=auth,
                     timeout=10).json()["points"] == 45
    run = httpx.post(f"{a.base_url}/backtests", json={"strategy": "rsi", "symbol": "X/Y"}, headers=auth, timeout=10)
    assert run.status_code == 201
    assert httpx.get(f"{b.base_url}/backtests/{run.json()['id']}", headers=auth, timeout=10).status_code == 200


def test_rate_limit_is_exact_across_hosts(two_hosts: tuple[LiveServer, LiveServer]) -> None:
    a, b = two_hosts
    codes = [httpx.get(f"{(a, b)[i % 2].base_url}/health", timeout=5).status_code for i in range(30)]
    # Both hosts count against one Redis window: exactly the limit is admitted (start-up probes spent some).
    assert codes.count(429) >= 20
    assert 0 < codes.count(200) <= 10
    assert codes[-1] == 429


@pytest.mark.parametrize("mode", ["fail-open", "fail-closed"])
def test_redis_down_then_back(tmp_path: Path, pg_database_url: str, mode: str) -> None:
    if not RedisServer.available():
        pytest.skip("redis-server is not installed")
    redis_server = RedisServer().start()
    env = {"GENESIS_DATABASE_URL": pg_database_url, "GENESIS_REDIS_URL": redis_server.url,
           "GENESIS_REDIS_FAILURE_MODE": mode, "GENESIS_ADMIN_PASSWORD": PASSWORD,
           "GENESIS_RATE_LIMIT_DEFAULT": "1000/minute"}
    try:
        with LiveServer(data_dir=tmp_path, env=env) as server:
            auth = {"Authorization": f"Bearer {_login(server.base_url)['access_token']}"}
            assert httpx.get(f"{server.base_url}/me", headers=auth, timeout=5).status_code == 200
            redis_server.stop()
            during = httpx.get(f"{server.base_url}/me", headers=auth, timeout=10)
            ready = httpx.get(f"{server.base_url}/ready", timeout=10)
            assert ready.status_code == 503 and "redis" in ready.json()["detail"]
            if mode == "fail-open":
                assert during.status_code == 200
            else:
                assert during.status_code == 503
                assert during.json()["component"] == "redis"
            redis_server = RedisServer.__new__(RedisServer)
            redis_server.__dict__.update(port=int(env["GENESIS_REDIS_URL"].rsplit(":", 1)[1].split("/")[0]),
                                         url=env["GENESIS_REDIS_URL"], proc=None)
            redis_server.start()
            assert wait_until(lambda: httpx.get(f"{server.base_url}/me", headers=auth, timeout=5).status_code == 200,
                              timeout=20)
            assert wait_until(lambda: httpx.get(f"{server.base_url}/ready", timeout=5).status_code == 200, timeout=20)
            admin = {"Authorization": f"Bearer {_login(server.base_url)['access_token']}"}
            degraded = httpx.get(f"{server.base_url}/audit/events", params={"action": "ratelimit.degraded"},
                                 headers=admin, timeout=10).json()["events"]
            assert degraded and degraded[0]["metadata"]["mode"] == mode
            metrics = httpx.get(f"{server.base_url}/metrics", headers=admin, timeout=10).text
            assert f'genesis_rate_limit_degraded_total{{mode="{mode}"}} 1.0' in metrics
    finally:
        redis_server.stop()
