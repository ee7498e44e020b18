"""A witness and a remote verifier against a real `genesis serve` (HTTP on 127.0.0.1), on both backends.

The operator's side: a machine client with the auditor role, `genesis audit monitor --url` from cron
and `genesis audit verify --url`; then an attacker cuts the trail in the database, heads and tree
included, and the server's heads, the witness and the verifier all refuse to go along.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD, PG_SKIP
from tests.live import LiveServer


def genesis(env: dict[str, str], *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "genesis", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def _run(server: LiveServer, env: dict[str, str], tmp_path: Path, cut: Any) -> None:
    created = json.loads(genesis(env, "clients", "create", "witness-bot", "--role", "auditor", "--json",
                                 check=True).stdout.strip().splitlines()[-1])
    vkey = genesis(env, "audit", "public-key", "--vkey", check=True).stdout.strip()
    remote = {**env, "GENESIS_MONITOR_CLIENT_SECRET": created["client_secret"]}
    monitor = ["audit", "monitor", "--url", server.base_url, "--state", str(tmp_path / "witness.json"),
               "--client-id", "witness-bot", "--once"]
    token = httpx.post(f"{server.base_url}/token", data={"grant_type": "client_credentials"},
                       auth=("witness-bot", created["client_secret"])).json()["access_token"]
    auditor = {"Authorization": f"Bearer {token}"}
    assert httpx.post(f"{server.base_url}/audit/heads", headers=auditor).status_code == 200
    first = genesis(remote, *monitor, "--key", vkey)
    assert first.returncode == 0 and "trusted" in first.stderr, first.stderr
    for _ in range(5):
        httpx.get(f"{server.base_url}/me", headers=auditor)
    made = httpx.post(f"{server.base_url}/audit/heads", headers=auditor).json()
    second = genesis(remote, *monitor)
    assert second.returncode == 0 and "advanced" in second.stderr, second.stderr
    verified = genesis(remote, "audit", "verify", "--url", server.base_url, "--key", vkey, "--client-id",
                       "witness-bot", "--json", "--against", str(server.data_dir / "audit-heads.log"))
    report = json.loads(verified.stdout.strip().splitlines()[-1])
    assert verified.returncode == 0 and report["ok"] and report["covered_size"] >= made["tree_size"], verified.stdout
    assert created["client_secret"] not in verified.stdout + verified.stderr + second.stderr

    cut(made["tree_size"] - 3)  # the newest events, their heads and the tree's rows go
    for _ in range(4):  # whichever worker answers (each has its own store and head maker) refuses
        refused = httpx.post(f"{server.base_url}/audit/heads", headers=auditor)
        assert refused.status_code == 409 and refused.json()["type"].endswith("audit-head-refused"), refused.text
    rolled_back = genesis(remote, *monitor)
    assert rolled_back.returncode == 1 and "AUDIT LOG MISBEHAVED (rollback)" in rolled_back.stderr
    broken = genesis(remote, "audit", "verify", "--url", server.base_url, "--key", vkey, "--client-id",
                     "witness-bot", "--json", "--against", str(server.data_dir / "audit-heads.log"))
    assert broken.returncode != 0, broken.stdout + broken.stderr


def test_a_witness_and_a_remote_verifier_against_a_live_sqlite_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    extra = {"GENESIS_ADMIN_PASSWORD": ADMIN_PASSWORD, "GENESIS_RATE_LIMITS_ENABLED": "false"}
    env = {**os.environ, "GENESIS_DATA_DIR": str(data), "GENESIS_LOG_CONSOLE": "false", **extra}

    def cut(keep: int) -> None:
        with sqlite3.connect(data / "genesis.db") as db:
            for trigger in ("audit_events_delete_archived_only", "audit_heads_no_delete", "audit_tree_no_delete"):
                db.execute(f"DROP TRIGGER {trigger}")
            db.execute("DELETE FROM audit_events WHERE seq > ?", (keep,))
            db.execute("DELETE FROM audit_heads WHERE size > ?", (keep,))
            db.execute("DELETE FROM audit_tree")

    with LiveServer(data_dir=data, env=extra) as server:
        _run(server, env, tmp_path, cut)


@pytest.mark.postgres
def test_a_witness_and_a_remote_verifier_against_a_live_postgresql_server(tmp_path: Path,
                                                                           pg_database_url: str) -> None:
    if PG_SKIP:
        pytest.skip(PG_SKIP)
    import psycopg

    data = tmp_path / "data"
    extra = {"GENESIS_ADMIN_PASSWORD": ADMIN_PASSWORD, "GENESIS_RATE_LIMITS_ENABLED": "false",
             "GENESIS_DATABASE_URL": pg_database_url}
    env = {**os.environ, "GENESIS_DATA_DIR": str(data), "GENESIS_LOG_CONSOLE": "false", **extra}

    def cut(keep: int) -> None:
        with psycopg.connect(pg_database_url, autocommit=True) as db, db.transaction():  # at once, as an attacker
            db.execute("SELECT pg_advisory_xact_lock(%s)", (0x67656E6573697331,))  # ... who waits for the writers
            for table in ("audit_events", "audit_heads", "audit_tree"):
                db.execute(f"DROP TRIGGER {table}_append_only ON {table}")
            db.execute("DELETE FROM audit_events WHERE seq > %s", (keep,))
            db.execute("DELETE FROM audit_heads WHERE size > %s", (keep,))
            db.execute("DELETE FROM audit_tree")

    with LiveServer(data_dir=data, env=extra, workers=2) as server:
        _run(server, env, tmp_path, cut)
