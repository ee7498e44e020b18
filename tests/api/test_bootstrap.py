"""First start: the admin is created, the signing key is generated once and kept."""

from __future__ import annotations

import stat
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from genesis.api.app import create_app
from genesis.config import Settings, load_settings
from genesis.errors import ConfigurationError
from tests.conftest import bearer


def test_bootstrap_admin_with_generated_password_printed_once(
    make_settings: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(admin_password=None, admin_username="root")
    with TestClient(create_app(settings)):
        pass
    err = capsys.readouterr().err
    assert "Created admin user 'root' with password: " in err
    password = err.split("password: ")[1].split()[0]
    with TestClient(create_app(settings)) as client:  # second start: no new admin, nothing printed
        response = client.post("/token", data={"grant_type": "password", "username": "root", "password": password})
        assert response.status_code == 200
    assert "Created admin user" not in capsys.readouterr().err
    logs = settings.logs_path
    if logs.exists():
        for path in logs.rglob("*"):
            if path.is_file():
                assert password not in path.read_text(errors="ignore")


def test_signing_key_is_generated_with_mode_0600_and_survives_restart(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    with TestClient(create_app(settings)) as client:
        token = client.post("/token", data={"grant_type": "password", "username": "admin",
                                            "password": settings.admin_password.get_secret_value()}  # type: ignore[union-attr]
                            ).json()["access_token"]
    key_file = settings.data_dir / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with TestClient(create_app(make_settings())) as client:
        assert client.get("/me", headers=bearer(token)).status_code == 200


def test_short_secret_key_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="GENESIS_SECRET_KEY"):
        load_settings(secret_key="too-short")


def test_invalid_setting_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="GENESIS_PORT"):
        load_settings(port=70000)
    with pytest.raises(ConfigurationError, match="GENESIS_TRUSTED_PROXIES"):
        load_settings(trusted_proxies="not-a-network")
