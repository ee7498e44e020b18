"""Token attacks beyond tests/api/test_auth.py: algorithms, key confusion, byte flips, claims, leeway, key fetches,
tokens in URLs, no-store on every token answer, OAuth2 error codes, weak signing keys refused at start.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from genesis.audit.logging import active_logging
from genesis.config import load_settings
from genesis.errors import ConfigurationError
from genesis.runtime import Runtime
from genesis.security.tokens import TokenCodec
from tests.conftest import ADMIN_PASSWORD, bearer, token_for
from tests.live import free_port
from tests.reliability.conftest import Api, strict_json

pytestmark = pytest.mark.timeout(300)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _claims(api: Api, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"iss": api.settings.token_issuer, "aud": api.settings.token_audience,
                              "sub": "user:admin", "iat": now, "nbf": now, "exp": now + 600,
                              "jti": f"forged-{time.monotonic_ns()}", "scope": "admin"}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _hs256(api: Api, claims: dict[str, Any], *, header: dict[str, Any] | None = None, alg: str = "HS256",
           key: bytes | None = None) -> str:
    """A token whose signature is HMAC-SHA256 under the server's own key, whatever ``alg`` the header claims."""
    head = _b64(json.dumps({"alg": alg, "typ": "at+jwt", **(header or {})}).encode())
    body = _b64(json.dumps(claims).encode())
    secret = key if key is not None else api.settings.signing_key().encode()
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(signature)}"


def _assert_invalid_token(api: Api, token: str, path: str = "/me") -> None:
    response = api.client.get(path, headers=bearer(token))
    assert response.status_code == 401, (token, response.text)
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer") and 'error="invalid_token"' in challenge
    assert strict_json(response.content)["status"] == 401


@pytest.fixture(scope="module")
def api(module_api: Api) -> Api:
    return module_api


def test_the_helpers_forge_a_token_the_server_accepts(api: Api) -> None:
    # Guards every test below: with nothing altered, the forged token is accepted, so each 401 is the attack's.
    assert api.client.get("/me", headers=bearer(_hs256(api, _claims(api)))).status_code == 200


# --- algorithms ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", "", "HS256 ", "hs256"])
def test_unsigned_or_misspelled_algorithms_are_refused(api: Api, alg: str) -> None:
    claims = _b64(json.dumps(_claims(api)).encode())
    head = _b64(json.dumps({"alg": alg, "typ": "at+jwt"}).encode())
    _assert_invalid_token(api, f"{head}.{claims}.")
    _assert_invalid_token(api, _hs256(api, _claims(api), alg=alg))  # a valid HMAC does not rescue a bad alg


@pytest.mark.parametrize("alg", ["HS384", "HS512", "RS256", "RS512", "PS256", "ES256", "EdDSA"])
def test_algorithms_off_the_allow_list_are_refused_even_with_the_servers_secret(api: Api, alg: str) -> None:
    # Key confusion: the HMAC of the server's secret presented under another algorithm's name.
    _assert_invalid_token(api, _hs256(api, _claims(api), alg=alg))
    if alg.startswith("HS"):
        _assert_invalid_token(api, jwt.encode(_claims(api), api.settings.signing_key(), algorithm=alg,
                                              headers={"typ": "at+jwt"}))


def test_rs256_with_the_secret_as_a_public_key_is_refused(api: Api) -> None:
    secret = api.settings.signing_key()
    # As a server that took alg from the token would verify it: RS256 with the HMAC secret as the "public key".
    _assert_invalid_token(api, _hs256(api, _claims(api), alg="RS256", key=secret.encode()))
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signed = jwt.encode(_claims(api), attacker, algorithm="RS256", headers={"typ": "at+jwt"})
    _assert_invalid_token(api, signed)


@pytest.fixture
def listener() -> Iterator[tuple[str, list[bytes]]]:
    """A local TCP server that records every connection (for key URLs a token might try to make us fetch)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    hits: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    hits.append(conn.recv(4096))
                except OSError:
                    hits.append(b"")

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/jwks.json", hits
    stop.set()
    thread.join(timeout=5)
    server.close()


def test_kid_jku_x5u_and_embedded_jwk_never_drive_key_lookups(api: Api, listener: tuple[str, list[bytes]]) -> None:
    url, hits = listener
    attacker = ec.generate_private_key(ec.SECP256R1())
    public_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(attacker.public_key()))
    for header in ({"jku": url, "kid": "attacker"}, {"x5u": url}, {"jwk": public_jwk}, {"kid": "../../secret.key"}):
        _assert_invalid_token(api, jwt.encode(_claims(api), attacker, algorithm="ES256",
                                              headers={"typ": "at+jwt", **header}))
        _assert_invalid_token(api, _hs256(api, _claims(api), header=header, key=b"attacker-chosen-secret-" * 2))
    pem = attacker.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    _assert_invalid_token(api, _hs256(api, _claims(api), header={"jku": url}, key=pem))
    time.sleep(0.5)
    assert hits == [], "a token made the server fetch a key"


# --- integrity ---------------------------------------------------------------------------------------------------


def _flip(token: str, part: int, index: int) -> str:
    parts = token.split(".")
    raw = bytearray(_unb64(parts[part]))
    raw[index % len(raw)] ^= 0x01  # flip one bit of a decoded byte (editing a base64 char may not change a byte)
    parts[part] = _b64(bytes(raw))
    return ".".join(parts)


@pytest.mark.parametrize("part", [0, 1, 2], ids=["header", "payload", "signature"])
def test_a_one_byte_flip_anywhere_is_refused(api: Api, part: int) -> None:
    good = token_for(api.client)["access_token"]
    assert api.client.get("/me", headers=bearer(good)).status_code == 200  # the verified token is now cached
    length = len(_unb64(good.split(".")[part]))
    for index in sorted({0, 1, length // 3, length // 2, 2 * length // 3, length - 2, length - 1}):
        _assert_invalid_token(api, _flip(good, part, index))


# --- claims ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"])
def test_each_required_claim_missing_is_refused(api: Api, claim: str) -> None:
    _assert_invalid_token(api, _hs256(api, _claims(api, **{claim: None})))


@pytest.mark.parametrize("overrides", [
    {"sub": 12345}, {"scope": ["admin"]}, {"exp": "tomorrow"}, {"jti": {"a": 1}}, {"iss": "Genesis"},
    {"aud": "GENESIS-API"}, {"sub": "admin"}, {"sub": "user:"}, {"sub": "service:admin"},
], ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_claims_of_the_wrong_type_or_shape_are_refused_not_crashed_on(api: Api, overrides: dict[str, Any]) -> None:
    _assert_invalid_token(api, _hs256(api, _claims(api, **overrides)))


@pytest.mark.parametrize("typ", [None, "JWT", "rt+jwt", "at+JWT", "at+jwt "])
def test_only_the_access_token_type_is_a_bearer_token(api: Api, typ: str | None) -> None:
    head = {"alg": "HS256"} if typ is None else {"alg": "HS256", "typ": typ}
    encoded = _b64(json.dumps(head).encode()) + "." + _b64(json.dumps(_claims(api)).encode())
    signature = hmac.new(api.settings.signing_key().encode(), encoded.encode(), hashlib.sha256).digest()
    _assert_invalid_token(api, f"{encoded}.{_b64(signature)}")


def test_exp_and_nbf_are_enforced_with_the_configured_leeway(api: Api) -> None:
    leeway = api.settings.token_leeway_seconds
    assert 0 <= leeway <= 60
    now = int(time.time())
    margin = 3  # seconds of slack for a slow machine, well inside the leeway tested
    inside = _hs256(api, _claims(api, iat=now - 3600, nbf=now - 3600, exp=now - leeway + margin))
    assert api.client.get("/me", headers=bearer(inside)).status_code == 200
    _assert_invalid_token(api, _hs256(api, _claims(api, iat=now - 3600, nbf=now - 3600, exp=now - leeway - margin)))
    early = _hs256(api, _claims(api, nbf=now + leeway - margin))
    assert api.client.get("/me", headers=bearer(early)).status_code == 200
    _assert_invalid_token(api, _hs256(api, _claims(api, nbf=now + leeway + margin)))


def test_a_scope_claim_never_exceeds_the_current_role(api: Api) -> None:
    api.user("tok-viewer", "viewer")
    # A token signed with the real key that claims more than the viewer role grants (as a token minted before a
    # demotion would): the extra scopes are ignored.
    inflated = _hs256(api, _claims(api, sub="user:tok-viewer", scope="admin audit:read prices:write"))
    me = api.client.get("/me", headers=bearer(inflated))
    assert me.status_code == 200 and "admin" not in me.json()["scopes"]
    assert api.client.get("/users", headers=bearer(inflated)).status_code == 403
    assert api.client.get("/audit/verify", headers=bearer(inflated)).status_code == 403


def test_refresh_and_access_tokens_are_not_interchangeable_anywhere(api: Api) -> None:
    tokens = token_for(api.client)
    for path in ("/me", "/users", "/audit/events", "/prices/BTC"):
        _assert_invalid_token(api, tokens["refresh_token"], path)
    refreshed = api.client.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens["access_token"]})
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    # A refresh token presented as a Basic client secret is not a client either.
    basic = base64.b64encode(f"admin:{tokens['refresh_token']}".encode()).decode()
    as_client = api.client.post("/token", data={"grant_type": "client_credentials"},
                                headers={"Authorization": f"Basic {basic}"})
    assert as_client.status_code == 401 and as_client.json()["error"] == "invalid_client"


# --- tokens in URLs ------------------------------------------------------------------------------------------------


def _everything_logged(api: Api) -> str:
    active_logging().flush(5)
    text = "".join(p.read_text(errors="replace") for p in api.settings.logs_path.glob("*.log*") if p.is_file())
    export = api.client.get("/audit/export", headers=api.admin)
    assert export.status_code == 200
    return text + export.text


def test_a_token_in_the_query_string_is_refused_and_never_logged(api: Api) -> None:
    tokens = token_for(api.client)
    access, refresh = tokens["access_token"], tokens["refresh_token"]
    for url in (f"/me?access_token={access}", f"/users?access_token={access}&x=1",
                f"/audit/events?limit=1&access_token={refresh}"):
        refused = api.client.get(url)
        assert refused.status_code == 401, url
        # Even with a valid Authorization header: a token in the URL has leaked into every log on the way.
        both = api.client.get(url, headers=bearer(access))
        assert both.status_code == 401, url
    logged = _everything_logged(api)
    for secret in (access, refresh, access.split(".")[2], refresh.split(".")[2]):
        assert secret not in logged


# --- token endpoint answers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("form", "headers", "status", "error"), [
    ({"grant_type": "password", "username": "admin", "password": "wrong-password"}, {}, 400, "invalid_grant"),
    ({"grant_type": "password", "username": "admin"}, {}, 400, "invalid_request"),
    ({"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD, "scope": "root"}, {}, 400,
     "invalid_scope"),
    ({"grant_type": "refresh_token", "refresh_token": "not-a-jwt"}, {}, 400, "invalid_grant"),
    ({"grant_type": "refresh_token"}, {}, 400, "invalid_request"),
    ({"grant_type": "authorization_code", "code": "x"}, {}, 400, "unsupported_grant_type"),
    ({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"}, {}, 400, "unsupported_grant_type"),
    ({"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"}, {}, 401, "invalid_client"),
    ({"grant_type": "client_credentials"}, {}, 401, "invalid_client"),
    ({"grant_type": "client_credentials"}, {"Authorization": "Basic !!!not-base64"}, 401, "invalid_client"),
    ({"grant_type": "client_credentials"}, {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}, 401,
     "invalid_client"),
    ({}, {}, 400, "invalid_request"),
])
def test_token_errors_use_rfc6749_codes_and_are_never_cached(
    api: Api, form: dict[str, str], headers: dict[str, str], status: int, error: str
) -> None:
    response = api.client.post("/token", data=form, headers=headers)
    assert response.status_code == status, response.text
    body = strict_json(response.content)
    assert body["error"] == error and body["error_description"]
    assert response.headers["content-type"].startswith("application/problem+json")  # a problem document, too
    assert body["type"] == f"https://genesis.dev/problems/{error.replace('_', '-')}" and body["status"] == status
    assert response.headers["cache-control"] == "no-store" and response.headers["pragma"] == "no-cache"
    if status == 401:
        assert "Basic" in response.headers["www-authenticate"]  # RFC 6749 5.2: say how to authenticate


def test_every_answer_of_the_token_endpoints_is_no_store(api: Api) -> None:
    created = api.client.post("/clients", json={"client_id": "nostore-bot", "role": "viewer"}, headers=api.admin)
    assert created.headers.get("cache-control") == "no-store", "a client secret must not be cached"
    secret = created.json()["client_secret"]
    tokens = token_for(api.client)
    answers = {
        "password": api.client.post("/token", data={"grant_type": "password", "username": "admin",
                                                    "password": ADMIN_PASSWORD}),
        "client_credentials": api.client.post("/token", data={"grant_type": "client_credentials",
                                                              "client_id": "nostore-bot", "client_secret": secret}),
        "refresh": api.client.post("/token", data={"grant_type": "refresh_token",
                                                   "refresh_token": tokens["refresh_token"]}),
        "422": api.client.post("/token", data={"grant_type": "x" * 5000}),
        "422-revoke": api.client.post("/token/revoke", data={}),
        "revoke": api.client.post("/token/revoke", data={"token": tokens["access_token"]}),
        "unreadable": api.client.post("/token", content=b"\xff\xfe\x00grant_type=password",
                                      headers={"Content-Type": "application/x-www-form-urlencoded"}),
        # Answered by the middleware, before or outside the route:
        "413-anonymous-cap": api.client.post("/token", data={"grant_type": "password", "username": "u" * 9000}),
        "413-declared": api.client.post("/token", content=b"x", headers={"Content-Length": str(1 << 30)}),
        "431": api.client.post("/token", data={"grant_type": "password"},
                               headers={f"x-filler-{i}": "y" for i in range(120)}),
        "405": api.client.get("/token"),
        "405-revoke": api.client.put("/token/revoke"),
    }
    statuses = {name: response.status_code for name, response in answers.items()}
    assert statuses["413-anonymous-cap"] == statuses["413-declared"] == 413 and statuses["431"] == 431
    assert statuses["405"] == statuses["405-revoke"] == 405
    for name, response in answers.items():
        assert response.status_code < 500, (name, response.text)
        assert response.headers.get("cache-control") == "no-store", name
        assert response.headers.get("pragma") == "no-cache", name


@pytest.mark.parametrize("audience", [["{ours}", "other-api"], ["other-api", "{ours}"], ["{ours}"], "other-api"])
def test_the_audience_must_be_exactly_ours_not_a_list_that_holds_it(api: Api, audience: Any) -> None:
    ours = api.settings.token_audience
    aud = [a.format(ours=ours) for a in audience] if isinstance(audience, list) else audience
    _assert_invalid_token(api, _hs256(api, _claims(api, aud=aud)))
    assert api.client.get("/me", headers=bearer(_hs256(api, _claims(api)))).status_code == 200


def test_a_weak_admin_password_is_refused_at_start_with_a_message_naming_the_variable(tmp_path: Path) -> None:
    for weak in ("abc", "1234567"):
        result = _serve(tmp_path, GENESIS_ADMIN_PASSWORD=weak)
        assert result.returncode != 0
        assert "GENESIS_ADMIN_PASSWORD" in result.stderr and "at least 8 characters" in result.stderr
        assert weak not in result.stderr.replace("GENESIS_ADMIN_PASSWORD", "")


def test_token_throttling_answers_are_no_store_too(fresh_settings: Any) -> None:
    from fastapi.testclient import TestClient

    from genesis.api.app import create_app

    with TestClient(create_app(fresh_settings(rate_limit_token="2/minute"))) as client:
        codes = [client.post("/token", data={"grant_type": "password", "username": "a", "password": "b"})
                 for _ in range(3)]
    assert [r.status_code for r in codes] == [400, 400, 429]
    assert all(r.headers["cache-control"] == "no-store" for r in codes)
    assert int(codes[-1].headers["retry-after"]) >= 1


# --- weak keys -------------------------------------------------------------------------------------------------------


def _serve(data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Start ``genesis serve`` and return once it exits (it must refuse to start)."""
    full_env = {**os.environ, "GENESIS_DATA_DIR": str(data_dir), "GENESIS_LOG_CONSOLE": "false",
                "GENESIS_ADMIN_PASSWORD": ADMIN_PASSWORD, "GENESIS_PORT": str(free_port()), **env}
    return subprocess.run([sys.executable, "-m", "genesis", "serve"], env=full_env, capture_output=True, text=True,
                          timeout=60, check=False)


WEAK_KEYS = ["", "short", "k" * 31, "é" * 15]  # the last: 15 characters, 30 bytes


@pytest.mark.parametrize("key", WEAK_KEYS, ids=["empty", "short", "31-bytes", "30-utf8-bytes"])
def test_keys_under_256_bits_are_refused_by_settings_and_by_the_token_codec(key: str) -> None:
    with pytest.raises(ConfigurationError, match="GENESIS_SECRET_KEY") as refused:
        load_settings(secret_key=key)
    assert not key or key not in str(refused.value)  # the refused secret is not echoed
    with pytest.raises(ConfigurationError, match="256 bits"):
        TokenCodec(key=key, issuer="genesis", audience="genesis-api")
    TokenCodec(key="k" * 32, issuer="genesis", audience="genesis-api")  # 256 bits is enough


def test_serve_refuses_a_signing_key_under_256_bits(tmp_path: Path) -> None:
    key = "k" * 31
    result = _serve(tmp_path, GENESIS_SECRET_KEY=key)
    assert result.returncode != 0
    assert "GENESIS_SECRET_KEY" in result.stderr + result.stdout
    assert key not in result.stderr + result.stdout
    assert not (tmp_path / "genesis.db").exists()  # refused before touching anything


def test_a_short_generated_key_file_is_refused_at_start(tmp_path: Path, fresh_settings: Any) -> None:
    # An empty or truncated secret.key must not become an empty (or guessable) HMAC key.
    settings = fresh_settings()
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / "secret.key").write_text("short-key-in-file\n")
    runtime = Runtime.build(settings)  # builds without I/O; the key is read when it starts
    with pytest.raises(ConfigurationError, match="256 bits"):
        asyncio.run(runtime.start())
    asyncio.run(runtime.close())
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "secret.key").write_text("")
    result = _serve(tmp_path / "empty")
    assert result.returncode != 0
    assert "256 bits" in result.stderr + result.stdout
