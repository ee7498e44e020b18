"""Login flows and every way a token is refused, over the real app."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

from genesis.config import Settings
from tests.conftest import ADMIN_PASSWORD, bearer, token_for


def _forge(
    settings: Settings, *, key: str | None = None, alg: str = "HS256", headers: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {"iss": settings.token_issuer, "aud": settings.token_audience, "sub": "user:admin",
                               "iat": now, "nbf": now, "exp": now + 600, "jti": "forged-jti", "scope": "admin"}
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    header = {"typ": "at+jwt", **(headers or {})}
    return jwt.encode(payload, key or settings.signing_key(), algorithm=alg, headers=header)


def _unsigned(payload: dict[str, Any], alg: str = "none") -> str:
    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': alg, 'typ': 'at+jwt'})}.{b64(payload)}."


def test_password_grant_issues_bearer_tokens_with_scope_and_no_store(client: TestClient) -> None:
    response = client.post("/token", data={"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 30 * 60
    assert "admin" in body["scope"].split()
    assert body["refresh_token"]
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    me = client.get("/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["subject"] == "user:admin"


def test_requested_scope_narrows_the_token(client: TestClient) -> None:
    body = token_for(client, scope="prices:read")
    assert body["scope"] == "prices:read"
    assert client.get("/users", headers=bearer(body["access_token"])).status_code == 403


def test_scope_beyond_role_is_invalid_scope(client: TestClient) -> None:
    admin = token_for(client)["access_token"]
    client.post("/users", json={"username": "vic", "role": "viewer", "password": "viewer-password"},
                headers=bearer(admin))
    response = client.post("/token", data={"grant_type": "password", "username": "vic",
                                           "password": "viewer-password", "scope": "admin"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


def test_wrong_password_and_unknown_user_answer_alike(client: TestClient) -> None:
    wrong = client.post("/token", data={"grant_type": "password", "username": "admin", "password": "nope-nope"})
    unknown = client.post("/token", data={"grant_type": "password", "username": "ghost", "password": "nope-nope"})
    assert wrong.status_code == unknown.status_code == 400
    strip = lambda r: {k: v for k, v in r.json().items() if k != "correlation_id"}  # noqa: E731
    assert strip(wrong) == strip(unknown)
    assert wrong.json()["error"] == "invalid_grant"
    assert "no-store" in wrong.headers["cache-control"]


def test_client_credentials_grant_in_body_and_basic(client: TestClient) -> None:
    admin = token_for(client)["access_token"]
    created = client.post("/clients", json={"client_id": "ingest-bot", "role": "trader"}, headers=bearer(admin))
    assert created.status_code == 201
    secret = created.json()["client_secret"]
    listed = client.get("/clients", headers=bearer(admin)).json()
    assert listed == [{"client_id": "ingest-bot", "role": "trader", "revoked": False, "description": ""}]
    by_body = client.post("/token", data={"grant_type": "client_credentials", "client_id": "ingest-bot",
                                          "client_secret": secret})
    assert by_body.status_code == 200
    assert "refresh_token" not in by_body.json()
    basic = base64.b64encode(f"ingest-bot:{secret}".encode()).decode()
    by_basic = client.post("/token", data={"grant_type": "client_credentials"},
                           headers={"Authorization": f"Basic {basic}"})
    assert by_basic.status_code == 200
    me = client.get("/me", headers=bearer(by_basic.json()["access_token"])).json()
    assert me["subject"] == "client:ingest-bot" and me["kind"] == "client"
    bad = client.post("/token", data={"grant_type": "client_credentials", "client_id": "ingest-bot",
                                      "client_secret": "wrong"})
    assert bad.status_code == 401
    assert bad.json()["error"] == "invalid_client"


def test_unsupported_and_missing_grant_type(client: TestClient) -> None:
    unsupported = client.post("/token", data={"grant_type": "implicit"})
    assert unsupported.status_code == 400
    assert unsupported.json()["error"] == "unsupported_grant_type"
    missing = client.post("/token", data={})
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"


def test_refresh_rotates_and_reuse_revokes_the_family(client: TestClient) -> None:
    first = token_for(client)
    second = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    newest = second.json()
    assert newest["refresh_token"] != first["refresh_token"]
    replay = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    # The whole family is gone: the newest refresh token no longer works either.
    after = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": newest["refresh_token"]})
    assert after.status_code == 400


def test_access_token_is_not_a_refresh_token_and_vice_versa(client: TestClient) -> None:
    tokens = token_for(client)
    as_refresh = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens["access_token"]})
    assert as_refresh.status_code == 400
    assert as_refresh.json()["error"] == "invalid_grant"
    assert client.get("/me", headers=bearer(tokens["refresh_token"])).status_code == 401


def test_revoke_access_token_then_refused(client: TestClient) -> None:
    tokens = token_for(client)
    assert client.get("/me", headers=bearer(tokens["access_token"])).status_code == 200
    revoked = client.post("/token/revoke", data={"token": tokens["access_token"]})
    assert revoked.status_code == 200
    response = client.get("/me", headers=bearer(tokens["access_token"]))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    # Revoking again, or revoking garbage, is not an error (RFC 7009 2.2).
    assert client.post("/token/revoke", data={"token": tokens["access_token"]}).status_code == 200
    assert client.post("/token/revoke", data={"token": "not-a-token"}).status_code == 200


def test_revoke_refresh_token_kills_its_family(client: TestClient) -> None:
    tokens = token_for(client)
    assert client.post("/token/revoke", data={"token": tokens["refresh_token"],
                                              "token_type_hint": "refresh_token"}).status_code == 200
    again = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert again.status_code == 400


@pytest.mark.parametrize("case", ["missing", "not-bearer", "alg-none", "alg-NONE", "hs512", "wrong-key", "expired",
                                  "not-yet-valid", "wrong-audience", "wrong-issuer", "tampered", "no-exp", "no-jti",
                                  "unknown-user", "in-query"])
def test_bad_tokens_are_refused_with_401(client: TestClient, settings: Settings, case: str) -> None:
    now = int(time.time())
    headers: dict[str, str] = {}
    url = "/me"
    good = token_for(client)["access_token"]
    if case == "not-bearer":
        headers = {"Authorization": f"Token {good}"}
    elif case in ("alg-none", "alg-NONE"):
        claims = jwt.decode(good, options={"verify_signature": False})
        headers = bearer(_unsigned(claims, "none" if case == "alg-none" else "NONE"))
    elif case == "hs512":
        headers = bearer(_forge(settings, alg="HS512"))
    elif case == "wrong-key":
        headers = bearer(_forge(settings, key="k" * 64))
    elif case == "expired":
        headers = bearer(_forge(settings, iat=now - 7200, nbf=now - 7200, exp=now - 3600))
    elif case == "not-yet-valid":
        headers = bearer(_forge(settings, nbf=now + 3600))
    elif case == "wrong-audience":
        headers = bearer(_forge(settings, aud="someone-else"))
    elif case == "wrong-issuer":
        headers = bearer(_forge(settings, iss="evil"))
    elif case == "tampered":
        head, payload, sig = good.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims["sub"] = "user:root"
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        headers = bearer(f"{head}.{forged}.{sig}")
    elif case == "no-exp":
        headers = bearer(_forge(settings, exp=None))
    elif case == "no-jti":
        headers = bearer(_forge(settings, jti=None))
    elif case == "unknown-user":
        headers = bearer(_forge(settings, sub="user:nobody"))
    elif case == "in-query":
        url = f"/me?access_token={good}"
    response = client.get(url, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["status"] == 401 and body["detail"]
    assert response.headers["content-type"].startswith("application/problem+json")


def test_a_correctly_forged_token_with_the_real_key_is_accepted(client: TestClient, settings: Settings) -> None:
    # Guards the test above: the forging helper makes valid tokens when nothing is wrong.
    assert client.get("/me", headers=bearer(_forge(settings))).status_code == 200


def test_disabled_user_is_refused_at_once(client: TestClient) -> None:
    admin = token_for(client)["access_token"]
    client.post("/users", json={"username": "tina", "role": "trader", "password": "trader-password"},
                headers=bearer(admin))
    tina = token_for(client, "tina", "trader-password")["access_token"]
    assert client.get("/me", headers=bearer(tina)).status_code == 200
    from genesis.services import accounts

    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    client.portal.call(lambda: accounts.set_user_disabled(users=runtime.users, tokens=runtime.tokens, username="tina",
                                                                  disabled=True))  # type: ignore[union-attr]
    assert client.get("/me", headers=bearer(tina)).status_code == 401
    login = client.post("/token", data={"grant_type": "password", "username": "tina", "password": "trader-password"})
    assert login.status_code == 400


def test_missing_scope_is_403_with_insufficient_scope(client: TestClient) -> None:
    admin = token_for(client)["access_token"]
    client.post("/users", json={"username": "val", "role": "viewer", "password": "viewer-password"},
                headers=bearer(admin))
    viewer = token_for(client, "val", "viewer-password")["access_token"]
    response = client.get("/users", headers=bearer(viewer))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_extra_fields_such_as_role_are_refused(client: TestClient) -> None:
    admin = token_for(client)["access_token"]
    response = client.post("/clients", json={"role": "viewer", "is_admin": True}, headers=bearer(admin))
    assert response.status_code == 422
    assert any("is_admin" in e["loc"] for e in response.json()["errors"])


def test_a_hash_made_under_older_parameters_is_upgraded_at_the_next_login(client: TestClient) -> None:
    from pwdlib.hashers.argon2 import Argon2Hasher

    from genesis.security.passwords import ARGON2_MEMORY_KIB

    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    old_hash = Argon2Hasher(memory_cost=65_536, time_cost=3, parallelism=4).hash("legacy-password")
    client.portal.call(lambda: runtime.users.create(username="lena", password_hash=old_hash, role="trader"))  # type: ignore[union-attr]
    assert client.post("/token", data={"grant_type": "password", "username": "lena",
                                       "password": "wrong-password"}).status_code == 400
    assert client.portal.call(runtime.users.get, "lena").password_hash == old_hash  # type: ignore[union-attr]
    assert token_for(client, "lena", "legacy-password")["access_token"]
    upgraded = client.portal.call(runtime.users.get, "lena").password_hash  # type: ignore[union-attr]
    assert upgraded != old_hash and f"m={ARGON2_MEMORY_KIB},t=2,p=1" in upgraded
    assert token_for(client, "lena", "legacy-password")["access_token"]  # the new hash verifies


def test_hashing_runs_on_its_own_threads() -> None:
    import asyncio
    import threading

    from genesis.security.passwords import run_hashing

    name = asyncio.run(run_hashing(lambda: threading.current_thread().name))
    assert name.startswith("genesis-hash")


def test_a_hash_upgrade_never_undoes_a_password_change_made_meanwhile(client: TestClient) -> None:
    from pwdlib.hashers.argon2 import Argon2Hasher

    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    old_hash = Argon2Hasher(memory_cost=65_536, time_cost=3, parallelism=4).hash("first-password")
    client.portal.call(lambda: runtime.users.create(username="rita", password_hash=old_hash, role="trader"))  # type: ignore[union-attr]
    reset = Argon2Hasher().hash("second-password")
    client.portal.call(runtime.users.set_password, "rita", reset)  # the reset lands first ...
    upgraded = client.portal.call(runtime.users.upgrade_password_hash, "rita", old_hash, "$argon2id$new")
    assert upgraded is False  # ... so the upgrade computed from the old password changes nothing
    assert client.portal.call(runtime.users.get, "rita").password_hash == reset  # type: ignore[union-attr]


def test_a_client_secret_hash_made_under_older_parameters_is_upgraded_at_the_next_grant(client: TestClient) -> None:
    from pwdlib.hashers.argon2 import Argon2Hasher

    from genesis.security.passwords import ARGON2_MEMORY_KIB

    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    old_hash = Argon2Hasher(memory_cost=65_536, time_cost=3, parallelism=4).hash("legacy-client-secret")
    client.portal.call(lambda: runtime.clients.create(client_id="legacy-bot", secret_hash=old_hash,  # type: ignore[union-attr]
                                                      role="trader", description="old"))
    grant = {"grant_type": "client_credentials", "client_id": "legacy-bot", "client_secret": "legacy-client-secret"}
    assert client.post("/token", data=grant).status_code == 200
    upgraded = client.portal.call(runtime.clients.get, "legacy-bot").secret_hash  # type: ignore[union-attr]
    assert upgraded != old_hash and f"m={ARGON2_MEMORY_KIB},t=2,p=1" in upgraded
    assert client.post("/token", data=grant).status_code == 200  # the new hash verifies
