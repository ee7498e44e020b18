"""Many processes, one audit chain: workers and hosts on PostgreSQL + Redis, under load and faults."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from genesis.audit import CheckpointSigner
from genesis.storage.audit_sql import open_audit_store
from genesis.storage.migrate import upgrade_database
from tests.live import LiveServer, TcpProxy, wait_until
from tests.scaleout import chain_load

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
PASSWORD = "multiprocess-admin-password"


def _env(db_url: str, redis_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {"GENESIS_DATABASE_URL": db_url, "GENESIS_ADMIN_PASSWORD": PASSWORD,
           "GENESIS_SECRET_KEY": "k" * 48, "GENESIS_RATE_LIMITS_ENABLED": "false",
           "GENESIS_KEY_PREFIX": f"genesis-test-{secrets.token_hex(4)}", **extra}
    if redis_url:
        env["GENESIS_REDIS_URL"] = redis_url
    return env


def _token(base: str) -> dict[str, str]:
    body = httpx.post(f"{base}/token", data={"grant_type": "password", "username": "admin", "password": PASSWORD},
                      timeout=30).json()
    return {"Authorization": f"Bearer {body['access_token']}"}


class Load:
    """Threads sending authenticated GET /me with unique X-Request-IDs; records each outcome."""

    def __init__(self, bases: list[str], headers: dict[str, str], threads: int = 6) -> None:
        self.bases, self.headers = bases, headers
        self.ok: list[str] = []
        self.failed: list[str] = []
        self.unknown: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, index: int) -> None:
        with httpx.Client(timeout=10) as client:
            n = 0
            while not self._stop.is_set():
                rid = f"load-{index}-{n}-{uuid.uuid4().hex[:6]}"
                n += 1
                try:
                    r = client.get(f"{self.bases[n % len(self.bases)]}/me",
                                   headers={**self.headers, "X-Request-ID": rid})
                except httpx.HTTPError:
                    self.unknown.append(rid)
                    continue
                (self.ok if r.status_code == 200 else self.failed).append(rid)

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)


def _audited_ids(db_url: str) -> set[str]:
    store = open_audit_store(db_url)
    try:
        return {row[12] for row in store.iter_rows()}
    finally:
        store.close()


def _verify(data_dir: Path, db_url: str, extra_keys: str = "") -> dict[str, Any]:
    env = {**os.environ, "GENESIS_DATA_DIR": str(data_dir), "GENESIS_DATABASE_URL": db_url,
           "GENESIS_LOG_CONSOLE": "false", "GENESIS_AUDIT_PUBLIC_KEYS": extra_keys}
    out = subprocess.run([sys.executable, "-m", "genesis", "audit", "verify", "--json"], env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.stdout.strip(), out.stderr[-3000:]
    report: dict[str, Any] = json.loads(out.stdout)
    assert out.returncode == (0 if report["ok"] else 1)
    return report


def test_two_hosts_with_two_workers_each_write_one_gapless_chain(
    tmp_path: Path, pg_database_url: str, redis_url: str
) -> None:
    upgrade_database(pg_database_url)
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    CheckpointSigner.from_data_dir(a_dir)  # one signing key for the deployment, copied to each host
    b_dir.mkdir()
    shutil.copy2(a_dir / "audit-signing.key", b_dir / "audit-signing.key")
    env = _env(pg_database_url, redis_url)
    with LiveServer(data_dir=a_dir, env=env, workers=2) as a, LiveServer(data_dir=b_dir, env=env, workers=2) as b:
        headers = _token(a.base_url)
        with Load([a.base_url, b.base_url], headers) as load:
            time.sleep(4)
    assert len(load.ok) > 50 and not load.failed
    audited = _audited_ids(pg_database_url)
    assert set(load.ok) <= audited
    report = _verify(a_dir, pg_database_url)
    assert report["ok"], report
    assert report["events_checked"] >= len(load.ok)
    assert report["checkpoints_matched"] >= 1 and report["covered_seq"] == report["last_seq"]  # the last shutdown head


def test_a_worker_killed_under_load_loses_no_acknowledged_request(tmp_path: Path, pg_database_url: str) -> None:
    with LiveServer(data_dir=tmp_path, env=_env(pg_database_url), workers=2) as server:
        headers = _token(server.base_url)
        with Load([server.base_url], headers) as load:
            time.sleep(1.5)
            victim = server.worker_pids()[0]
            os.kill(victim, signal.SIGKILL)
            before = len(load.ok)
            time.sleep(2.5)
        assert len(load.ok) > before + 20  # the other worker (and the restarted one) kept serving
    audited = _audited_ids(pg_database_url)
    missing = set(load.ok) - audited
    assert not missing, f"{len(missing)} acknowledged requests have no audit event"
    assert _verify(tmp_path, pg_database_url)["ok"]


def test_postgresql_down_gives_503_and_recovers_without_restart(tmp_path: Path, pg_database_url: str) -> None:
    upgrade_database(pg_database_url)
    target = make_url(pg_database_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    via_proxy = target.set(port=proxy.port).render_as_string(hide_password=False)
    env = _env(via_proxy, GENESIS_DATABASE_TIMEOUT_SECONDS="2")
    try:
        with LiveServer(data_dir=tmp_path, env=env) as server:
            headers = _token(server.base_url)
            point = {"points": [{"timestamp": "2024-01-01T00:00:00Z", "price": 1.0}]}
            first = httpx.post(f"{server.base_url}/prices/PG", json=point, headers=headers, timeout=10)
            assert first.status_code == 200, first.text + server.output()[-3000:]
            proxy.cut()
            ready = httpx.get(f"{server.base_url}/ready", timeout=30)
            assert ready.status_code == 503 and "database" in ready.json()["detail"]
            write = httpx.post(f"{server.base_url}/prices/PG", json={"points": [
                {"timestamp": "2024-01-02T00:00:00Z", "price": 2.0}]}, headers=headers, timeout=30)
            assert write.status_code == 503
            assert write.headers.get("retry-after")
            proxy.restore()
            assert wait_until(lambda: httpx.get(f"{server.base_url}/ready", timeout=10).status_code == 200,
                              timeout=60)
            again = httpx.post(f"{server.base_url}/prices/PG", json={"points": [
                {"timestamp": "2024-01-03T00:00:00Z", "price": 3.0}]}, headers=headers, timeout=30)
            assert again.status_code == 200, again.text + server.output()[-4000:]
    finally:
        proxy.close()
    assert _verify(tmp_path, pg_database_url)["ok"]


def test_audit_appends_from_several_processes_form_one_chain(tmp_path: Path, pg_database_url: str) -> None:
    upgrade_database(pg_database_url)
    rate = chain_load.run(pg_database_url, processes=2, seconds=1.0, threads=2)
    assert rate > 0
    assert _verify(tmp_path, pg_database_url)["ok"]
