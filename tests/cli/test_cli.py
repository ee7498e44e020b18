"""The genesis command: users, clients, db and serve, through Typer's CliRunner and a real process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from genesis.api.app import create_app
from genesis.cli.main import app
from genesis.config import Settings, get_settings

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("GENESIS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GENESIS_LOG_CONSOLE", "false")
    for name in ("GENESIS_DATABASE_URL", "GENESIS_REDIS_URL", "GENESIS_ADMIN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_help_documents_every_command_group() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for group in ("serve", "db", "users", "clients"):
        assert group in result.output


def test_db_upgrade_and_current(data_dir: Path) -> None:
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert (data_dir / "genesis.db").exists()
    current = runner.invoke(app, ["db", "current"])
    assert current.exit_code == 0 and current.output.strip() != ""


def test_users_create_list_disable_enable_set_password(data_dir: Path) -> None:
    created = runner.invoke(app, ["users", "create", "alice", "--role", "trader", "--password-stdin"],
                            input="alice-password\n")
    assert created.exit_code == 0, created.output
    listed = runner.invoke(app, ["users", "list", "--json"])
    assert json.loads(listed.output) == [{"username": "alice", "role": "trader", "disabled": False}]
    assert runner.invoke(app, ["users", "disable", "alice"]).exit_code == 0
    assert json.loads(runner.invoke(app, ["users", "list", "--json"]).output)[0]["disabled"] is True
    assert runner.invoke(app, ["users", "enable", "alice"]).exit_code == 0
    changed = runner.invoke(app, ["users", "set-password", "alice", "--password-stdin"], input="another-password\n")
    assert changed.exit_code == 0
    assert "another-password" not in changed.output


def test_users_create_refuses_bad_input_with_exit_codes(data_dir: Path) -> None:
    bad_role = runner.invoke(app, ["users", "create", "bob", "--role", "emperor", "--password-stdin"],
                             input="bob-password\n")
    assert bad_role.exit_code == 2
    assert "unknown role" in bad_role.output
    short = runner.invoke(app, ["users", "create", "bob", "--role", "viewer", "--password-stdin"], input="x\n")
    assert short.exit_code == 2
    runner.invoke(app, ["users", "create", "bob", "--role", "viewer", "--password-stdin"], input="bob-password\n")
    dup = runner.invoke(app, ["users", "create", "bob", "--role", "viewer", "--password-stdin"],
                        input="bob-password\n")
    assert dup.exit_code == 4
    missing = runner.invoke(app, ["users", "disable", "nobody"])
    assert missing.exit_code == 3


def test_clients_create_shows_secret_once_list_revoke(data_dir: Path) -> None:
    created = runner.invoke(app, ["clients", "create", "feeder", "--role", "trader", "--json"])
    assert created.exit_code == 0, created.output
    secret = json.loads(created.output)["client_secret"]
    assert len(secret) >= 32
    listed = runner.invoke(app, ["clients", "list", "--json"])
    assert secret not in listed.output
    assert json.loads(listed.output)[0]["client_id"] == "feeder"
    assert runner.invoke(app, ["clients", "revoke", "feeder"]).exit_code == 0
    assert json.loads(runner.invoke(app, ["clients", "list", "--json"]).output)[0]["revoked"] is True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_python_m_genesis_serve_starts_the_real_server(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "GENESIS_DATA_DIR": str(tmp_path), "GENESIS_ADMIN_PASSWORD": "serve-test-password",
           "GENESIS_LOG_CONSOLE": "false"}
    env.pop("GENESIS_DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "genesis", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("server did not start")
        docs = httpx.get(f"http://127.0.0.1:{port}/docs", timeout=5)
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        token = httpx.post(f"http://127.0.0.1:{port}/token", timeout=10,
                           data={"grant_type": "password", "username": "admin", "password": "serve-test-password"})
        assert token.status_code == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert b"/docs" in err


def test_prices_import_reports_inserted_duplicates_and_rejected_lines(data_dir: Path) -> None:
    csv_file = data_dir / "bars.csv"
    csv_file.write_text(
        "Date,Open,High,Low,Close,Volume\n"
        "2024-01-02,10,11,9,10.5,1000\n"
        "2024-01-03,10.5,12,10,11.5,1200\n"
        "2024-01-03,10.5,12,10,11.5,1200\n"
        "not-a-date,1,1,1,1,1\n"
        "2024-01-05,1,1,1,-3,1\n"
        "2024-01-06,11,12,10,11.8,900\n"
    )
    result = runner.invoke(app, ["prices", "import", str(csv_file), "--symbol", "ACME", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["rows_read"] == 6 and summary["inserted"] == 3 and summary["duplicates"] == 1
    assert [r["line"] for r in summary["rejected"]] == [5, 6]
    again = json.loads(runner.invoke(app, ["prices", "import", str(csv_file), "--symbol", "ACME", "--json"]).output)
    assert again["inserted"] == 0 and again["duplicates"] == 4
    bad_symbol = runner.invoke(app, ["prices", "import", str(csv_file), "--symbol", "bad symbol"])
    assert bad_symbol.exit_code == 2


def test_prices_import_refuses_a_file_without_price_columns(data_dir: Path) -> None:
    csv_file = data_dir / "junk.csv"
    csv_file.write_text("a,b\n1,2\n")
    result = runner.invoke(app, ["prices", "import", str(csv_file), "--symbol", "X"])
    assert result.exit_code == 2
    assert "close column" in result.output


@pytest.fixture
def api_on(data_dir: Path) -> Iterator[TestClient]:
    """An app on the CLI's data directory, so the CLI acts on what the API issued."""
    settings = Settings(_env_file=None, data_dir=data_dir, admin_password="admin-Pa55word-for-tests",  # type: ignore[call-arg]
                        log_console=False)
    with TestClient(create_app(settings)) as client:
        yield client


def _login(client: TestClient, username: str, password: str) -> dict[str, str]:
    response = client.post("/token", data={"grant_type": "password", "username": username, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def _ended(client: TestClient, tokens: dict[str, str]) -> bool:
    me = client.get("/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code
    refreshed = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    return me == 401 and refreshed.status_code == 400


def test_users_sessions_end_sessions_set_role_and_set_password_end_every_token(
    data_dir: Path, api_on: TestClient
) -> None:
    created = runner.invoke(app, ["users", "create", "alice", "--role", "trader", "--password-stdin"],
                            input="alice-password\n")
    assert created.exit_code == 0, created.output
    first = _login(api_on, "alice", "alice-password")
    listed = runner.invoke(app, ["users", "sessions", "alice", "--json"])
    assert listed.exit_code == 0, listed.output
    assert len(json.loads(listed.output)) == 1
    assert "testclient" in runner.invoke(app, ["users", "sessions", "alice"]).output

    ended = runner.invoke(app, ["users", "end-sessions", "alice"])
    assert ended.exit_code == 0 and "ended 1 sessions" in ended.output
    assert _ended(api_on, first)
    assert json.loads(runner.invoke(app, ["users", "sessions", "alice", "--json"]).output) == []

    second = _login(api_on, "alice", "alice-password")
    role = runner.invoke(app, ["users", "set-role", "alice", "--role", "viewer"])
    assert role.exit_code == 0, role.output
    assert _ended(api_on, second)
    roles = {u["username"]: u["role"] for u in json.loads(runner.invoke(app, ["users", "list", "--json"]).output)}
    assert roles["alice"] == "viewer"

    third = _login(api_on, "alice", "alice-password")
    changed = runner.invoke(app, ["users", "set-password", "alice", "--password-stdin"], input="another-password\n")
    assert changed.exit_code == 0
    assert _ended(api_on, third)

    fourth = _login(api_on, "alice", "another-password")
    assert runner.invoke(app, ["users", "disable", "alice"]).exit_code == 0
    assert runner.invoke(app, ["users", "enable", "alice"]).exit_code == 0
    assert _ended(api_on, fourth)  # enabling again does not revive what the disable ended

    trail = [json.loads(line) for line in runner.invoke(app, ["audit", "query", "--json"]).output.splitlines()]
    actions = [(e["action"], e["metadata"].get("sessions_ended")) for e in trail if e["actor"].startswith("cli:")]
    assert ("admin.user.end_sessions", 1) in actions and ("admin.user.set_role", 1) in actions
    assert ("admin.user.set_password", 1) in actions and ("admin.user.disable", 1) in actions
    assert runner.invoke(app, ["users", "end-sessions", "nobody"]).exit_code == 3
