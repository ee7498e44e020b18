"""Fixtures shared by the whole suite: temp data dirs, apps, clients, PostgreSQL and Redis that skip when absent."""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from genesis.api.app import create_app
from genesis.config import Settings

ADMIN_PASSWORD = "admin-Pa55word-for-tests"
PG_URL = os.environ.get("GENESIS_TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("GENESIS_TEST_REDIS_URL", "")


def _pg_reachable() -> str | None:
    if not PG_URL.startswith("postgresql"):
        return "GENESIS_TEST_DATABASE_URL is not set to a PostgreSQL URL"
    try:
        import psycopg

        from genesis.storage.database import sync_url

        dsn = sync_url(PG_URL).replace("postgresql+psycopg://", "postgresql://")
        psycopg.connect(dsn, connect_timeout=2).close()
    except Exception as exc:
        return f"PostgreSQL at GENESIS_TEST_DATABASE_URL is unreachable: {type(exc).__name__}"
    return None


def _redis_reachable() -> str | None:
    if not REDIS_URL.startswith("redis"):
        return "GENESIS_TEST_REDIS_URL is not set"
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        return f"Redis at GENESIS_TEST_REDIS_URL is unreachable: {type(exc).__name__}"
    return None


PG_SKIP = _pg_reachable()
REDIS_SKIP = _redis_reachable()


@pytest.fixture
def pg_database_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    if PG_SKIP:
        pytest.skip(PG_SKIP)
    import psycopg
    from sqlalchemy.engine import make_url

    from genesis.storage.database import sync_url

    base = make_url(PG_URL)
    name = f"genesis_t_{uuid.uuid4().hex[:12]}"
    admin_dsn = sync_url(PG_URL).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url() -> Iterator[str]:
    """Redis for one test under a unique key prefix, whose keys are deleted afterwards."""
    if REDIS_SKIP:
        pytest.skip(REDIS_SKIP)
    yield REDIS_URL


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each backend in turn: SQLite in a temp dir, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'genesis.db'}"
    url: str = request.getfixturevalue("pg_database_url")
    return url


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "admin_username": "admin",
            "admin_password": ADMIN_PASSWORD,
            "log_console": False,
            "key_prefix": f"genesis-test-{uuid.uuid4().hex[:8]}",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return factory


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    """The embedded stack (SQLite, in-process limits), then the scaled-out one (PostgreSQL + Redis)."""
    if database_url.startswith("postgresql") and not REDIS_SKIP:
        return make_settings(database_url=database_url, redis_url=REDIS_URL)
    return make_settings(database_url=database_url)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), client=("203.0.113.7", 50000)) as test_client:
        yield test_client


def token_for(
    client: TestClient, username: str = "admin", password: str = ADMIN_PASSWORD, **extra: str
) -> dict[str, Any]:
    form = {"grant_type": "password", "username": username, "password": password, **extra}
    response = client.post("/token", data=form)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- no process outlives the suite ------------------------------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, grandchildren...), read from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if fields[0] != b"Z":  # a zombie is already dead; its parent reaps it
            parents.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in parents.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip()[:200]
    except OSError:
        return "?"


# The stdlib's own helper processes: they belong to this interpreter and end with it.
INTERPRETER_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop whatever a test left running (a server, a worker, a browser) and fail the run that left it.

    Every test stops what it starts, also when it fails (context managers, ``finally``); this is the net under that
    rule, so a leak is reported by name instead of surviving the run.
    """
    import signal
    import time

    leftovers = [(pid, cmd) for pid in _descendants(os.getpid())
                 if not any(helper in (cmd := _command_line(pid)) for helper in INTERPRETER_HELPERS)]
    if not leftovers:
        return
    for pid, _ in leftovers:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    pids = {pid for pid, _ in leftovers}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and pids & set(_descendants(os.getpid())):
        time.sleep(0.1)
    for pid in pids & set(_descendants(os.getpid())):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    report = "\n".join(f"  pid {pid}: {cmd}" for pid, cmd in leftovers)
    print(f"\nERROR: tests left {len(leftovers)} process(es) running; they were killed:\n{report}", file=sys.stderr)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
