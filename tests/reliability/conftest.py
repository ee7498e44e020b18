"""Fixtures of the reliability suite: one app per module, users of each role, strict JSON, budgets from env."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from fastapi.testclient import TestClient

from genesis.api.app import create_app
from genesis.config import Settings
from tests.conftest import ADMIN_PASSWORD, bearer, token_for

# Budgets: small in `make test`, larger with `make fuzz` / `make soak` (see docs/RELIABILITY.md).
FUZZ_EXAMPLES = int(os.environ.get("GENESIS_FUZZ_EXAMPLES", "10"))
FUZZ_SEED = int(os.environ.get("GENESIS_FUZZ_SEED", "20261127"))
HYPOTHESIS_EXAMPLES = max(25, FUZZ_EXAMPLES)

ROLE_PASSWORDS = {"trader": "trader-Pa55word-rel", "viewer": "viewer-Pa55word-rel", "auditor": "auditor-Pa55word-rel"}


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"non-standard JSON constant {name!r}")


def strict_json(content: bytes | str) -> Any:
    """``json.loads`` that refuses NaN, Infinity and -Infinity (RFC 8259 has no such values)."""
    return json.loads(content, parse_constant=_refuse_constant)


def settings_for(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a reliability app: SQLite in ``data_dir``, no console logging, a known admin password."""
    values: dict[str, Any] = {
        "data_dir": data_dir, "admin_username": "admin", "admin_password": ADMIN_PASSWORD, "log_console": False,
        "key_prefix": f"genesis-rel-{uuid.uuid4().hex[:8]}",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class Api:
    """A started in-process app with a token per role (admin, trader, viewer, auditor)."""

    def __init__(self, client: TestClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.admin = bearer(token_for(client)["access_token"])
        self.headers: dict[str, dict[str, str]] = {"admin": self.admin}

    def user(self, username: str, role: str) -> dict[str, str]:
        """Create ``username`` with ``role`` (once) and return bearer headers for it."""
        password = ROLE_PASSWORDS.get(role, f"{role}-Pa55word-rel")
        created = self.client.post("/users", json={"username": username, "role": role, "password": password},
                                   headers=self.admin)
        assert created.status_code in (201, 409), created.text
        headers = bearer(token_for(self.client, username, password)["access_token"])
        self.headers[username] = headers
        return headers


@pytest.fixture(scope="module")
def module_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One SQLite app for a whole module, rate limits off (tests that need limits build their own)."""
    data_dir = tmp_path_factory.mktemp("api")
    settings = settings_for(data_dir, rate_limits_enabled=False, login_attempts_per_ip_per_minute=100_000,
                            login_failures_per_account_and_address=100, login_failures_per_account_per_hour=100)
    with TestClient(create_app(settings), client=("203.0.113.9", 50000)) as client:
        yield Api(client, settings)


@pytest.fixture
def fresh_settings(tmp_path: Path) -> Callable[..., Settings]:
    """A factory of settings on this test's temp dir."""

    def factory(**overrides: Any) -> Settings:
        return settings_for(tmp_path / "data", **overrides)

    return factory
