"""Sessions that end when they must: every token of a principal, at once, with an absolute lifetime."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

from genesis.api.app import create_app
from genesis.config import Settings
from genesis.services import accounts
from tests.conftest import bearer, token_for

PASSWORD = "trader-password"


def _user(client: TestClient, admin: str, name: str = "tina", role: str = "trader") -> None:
    created = client.post("/users", json={"username": name, "role": role, "password": PASSWORD},
                          headers=bearer(admin))
    assert created.status_code == 201, created.text


def _refresh(client: TestClient, refresh_token: str) -> Any:
    return client.post("/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token})


def _run(client: TestClient, call: Callable[..., Any]) -> Any:
    return client.portal.call(call)  # type: ignore[union-attr]


@pytest.fixture
def admin(client: TestClient) -> str:
    return str(token_for(client)["access_token"])


def _assert_both_refused(client: TestClient, tokens: dict[str, Any]) -> None:
    assert client.get("/me", headers=bearer(tokens["access_token"])).status_code == 401
    refreshed = _refresh(client, tokens["refresh_token"])
    assert refreshed.status_code == 400, refreshed.text
    assert refreshed.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("change", ["password", "disable", "role", "end_sessions"])
def test_a_password_change_disable_role_change_or_end_sessions_ends_every_token(
    client: TestClient, admin: str, change: str
) -> None:
    _user(client, admin)
    first, second = token_for(client, "tina", PASSWORD), token_for(client, "tina", PASSWORD)
    assert client.get("/me", headers=bearer(first["access_token"])).status_code == 200
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    users, tokens = runtime.users, runtime.tokens
    calls: dict[str, Callable[[], Any]] = {
        "password": lambda: accounts.set_user_password(users=users, tokens=tokens, username="tina",
                                                       password="a-new-password"),
        "disable": lambda: accounts.set_user_disabled(users=users, tokens=tokens, username="tina", disabled=True),
        "role": lambda: accounts.set_user_role(users=users, tokens=tokens, username="tina", role="viewer"),
        "end_sessions": lambda: accounts.end_user_sessions(users=users, tokens=tokens, username="tina"),
    }
    assert _run(client, calls[change]) == 2  # both logins were running sessions
    _assert_both_refused(client, first)
    _assert_both_refused(client, second)
    assert client.get("/users/tina/sessions", headers=bearer(admin)).json() == []


def test_disable_then_enable_does_not_revive_old_tokens(client: TestClient, admin: str) -> None:
    _user(client, admin)
    tokens = token_for(client, "tina", PASSWORD)
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    for disabled in (True, False):
        _run(client, lambda d=disabled: accounts.set_user_disabled(  # type: ignore[misc]
            users=runtime.users, tokens=runtime.tokens, username="tina", disabled=d))
    _assert_both_refused(client, tokens)
    fresh = token_for(client, "tina", PASSWORD)  # the enabled user logs in again and works
    assert client.get("/me", headers=bearer(fresh["access_token"])).status_code == 200


def test_a_revoked_client_stays_revoked_and_its_tokens_end(client: TestClient, admin: str) -> None:
    created = client.post("/clients", json={"client_id": "feeder", "role": "trader"}, headers=bearer(admin)).json()
    grant = client.post("/token", data={"grant_type": "client_credentials", "client_id": "feeder",
                                        "client_secret": created["client_secret"]}).json()
    assert client.get("/me", headers=bearer(grant["access_token"])).status_code == 200
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    _run(client, lambda: accounts.revoke_client(clients=runtime.clients, client_id="feeder"))
    assert client.get("/me", headers=bearer(grant["access_token"])).status_code == 401


def test_an_admin_lists_and_ends_a_users_sessions_over_http_and_it_is_audited(client: TestClient, admin: str) -> None:
    _user(client, admin)
    first = token_for(client, "tina", PASSWORD)
    second = client.post("/token", data={"grant_type": "password", "username": "tina", "password": PASSWORD},
                         headers={"User-Agent": "tina-laptop/1.0"}).json()
    listed = client.get("/users/tina/sessions", headers=bearer(admin))
    assert listed.status_code == 200, listed.text
    sessions = listed.json()
    assert len(sessions) == 2 and [s["user_agent"] for s in sessions][1] == "tina-laptop/1.0"
    assert all(s["source_ip"] == "203.0.113.7" and s["current"] is False for s in sessions)
    assert client.get("/users/nobody/sessions", headers=bearer(admin)).status_code == 404

    ended = client.delete("/users/tina/sessions", headers=bearer(admin))
    assert ended.status_code == 200, ended.text
    assert ended.json() == {"ended": 2}
    _assert_both_refused(client, first)
    _assert_both_refused(client, second)
    events = client.get("/audit/events", params={"action": "admin.user.end_sessions"},
                        headers=bearer(admin)).json()["events"]
    assert [(e["outcome"], e["actor"], e["metadata"].get("target")) for e in events] == [
        ("started", "user:admin", None), ("success", "user:admin", "tina")]
    assert events[1]["metadata"]["sessions_ended"] == 2
    # Only administrators may do this.
    tina = token_for(client, "tina", PASSWORD)["access_token"]
    assert client.delete("/users/admin/sessions", headers=bearer(tina)).status_code == 403


def test_a_user_sees_and_ends_their_own_sessions_including_the_current_one(client: TestClient, admin: str) -> None:
    _user(client, admin)
    other = token_for(client, "tina", PASSWORD)
    mine = token_for(client, "tina", PASSWORD)
    listed = client.get("/me/sessions", headers=bearer(mine["access_token"])).json()
    assert [s["current"] for s in listed] == [False, True]
    ended = client.delete("/me/sessions", headers=bearer(mine["access_token"]))
    assert ended.status_code == 200 and ended.json() == {"ended": 2}
    _assert_both_refused(client, mine)
    _assert_both_refused(client, other)
    # The admin's own sessions are untouched.
    assert client.get("/me", headers=bearer(admin)).status_code == 200


def test_revoking_a_refresh_token_ends_the_access_tokens_of_its_session_at_once(client: TestClient) -> None:
    tokens = token_for(client)
    other = token_for(client)  # another session of the same user
    assert client.get("/me", headers=bearer(tokens["access_token"])).status_code == 200
    assert client.post("/token/revoke", data={"token": tokens["refresh_token"]}).status_code == 200
    assert client.get("/me", headers=bearer(tokens["access_token"])).status_code == 401
    assert client.get("/me", headers=bearer(other["access_token"])).status_code == 200


def test_a_replayed_refresh_token_ends_the_access_tokens_of_its_session_too(client: TestClient) -> None:
    tokens = token_for(client)
    rotated = _refresh(client, tokens["refresh_token"]).json()
    assert client.get("/me", headers=bearer(rotated["access_token"])).status_code == 200
    assert _refresh(client, tokens["refresh_token"]).status_code == 400  # the replay
    assert client.get("/me", headers=bearer(rotated["access_token"])).status_code == 401
    assert client.get("/me", headers=bearer(tokens["access_token"])).status_code == 401


@pytest.fixture
def short_sessions(make_settings: Callable[..., Settings], database_url: str) -> Iterator[TestClient]:
    settings = make_settings(database_url=database_url, session_max_age=timedelta(seconds=60))
    with TestClient(create_app(settings), client=("203.0.113.7", 50000)) as test_client:
        yield test_client


def _claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def test_a_session_has_an_absolute_lifetime_that_refreshing_never_extends(
    short_sessions: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = short_sessions
    login = token_for(client)
    started = _claims(login["access_token"])["iat"]
    end = started + 60
    assert _claims(login["refresh_token"])["exp"] <= end
    assert _claims(login["access_token"])["exp"] <= end  # access TTL is 30 min, the session only 60 s
    rotated = _refresh(client, login["refresh_token"]).json()
    assert _claims(rotated["refresh_token"])["exp"] <= end and _claims(rotated["access_token"])["exp"] <= end

    from genesis.security import tokens as token_module
    from genesis.services import auth as auth_module
    from genesis.timeutil import now_us

    later = now_us() + 65_000_000  # past the session's end, within the token leeway (10 s)
    monkeypatch.setattr(token_module, "now_us", lambda: later)
    monkeypatch.setattr(auth_module, "now_us", lambda: later)
    refused = _refresh(client, rotated["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert "session has ended" in refused.json()["error_description"]


def test_tokens_issued_before_the_upgrade_work_until_the_first_change(client: TestClient, settings: Settings) -> None:
    # Such tokens carry neither a generation nor a session: they count as generation 0, the migration's default.
    import time

    now = int(time.time())
    legacy = jwt.encode({"iss": settings.token_issuer, "aud": settings.token_audience, "sub": "user:admin",
                         "iat": now, "nbf": now, "exp": now + 600, "jti": "legacy-1", "scope": "admin"},
                        settings.signing_key(), algorithm="HS256", headers={"typ": "at+jwt"})
    assert client.get("/me", headers=bearer(legacy)).status_code == 200
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    _run(client, lambda: accounts.end_user_sessions(users=runtime.users, tokens=runtime.tokens, username="admin"))
    assert client.get("/me", headers=bearer(legacy)).status_code == 401
