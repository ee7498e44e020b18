"""Login attacks: user enumeration by answer or by timing, brute force per account and per address."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from genesis.api.app import create_app
from genesis.config import Settings, load_settings
from genesis.errors import ConfigurationError
from genesis.security import passwords
from tests.conftest import ADMIN_PASSWORD
from tests.live import wait_until
from tests.reliability.conftest import Api, strict_json

pytestmark = pytest.mark.timeout(300)
ATTEMPTS = 15  # per kind, interleaved; medians absorb the odd scheduling hiccup of a shared CI machine
VARIABLE_HEADERS = {"x-request-id", "date", "content-length"}


def _answer(response: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    body = {k: v for k, v in strict_json(response.content).items() if k != "correlation_id"}
    headers = {k: v for k, v in response.headers.items() if k.lower() not in VARIABLE_HEADERS}
    return response.status_code, body, headers


def _timed(client: TestClient, form: dict[str, str]) -> tuple[float, Any]:
    started = time.perf_counter()
    response = client.post("/token", data=form)
    return time.perf_counter() - started, response


def test_the_dummy_hash_costs_what_a_real_hash_costs() -> None:
    # Unknown users are checked against a fixed dummy hash; it must carry the parameters of real hashes.
    real = passwords.hash_password("some-password")
    assert real.rsplit("$", 2)[0] == passwords._DUMMY_HASH.rsplit("$", 2)[0]


def test_unknown_user_and_wrong_password_answer_alike_in_body_headers_and_time(module_api: Api) -> None:
    api = module_api
    api.user("enum-victim", "viewer")
    disabled = api.user("enum-disabled", "viewer")
    assert disabled  # a disabled account must answer like the others too
    runtime = api.client.app.state.runtime  # type: ignore[attr-defined]
    from genesis.services import accounts

    api.client.portal.call(lambda: accounts.set_user_disabled(  # type: ignore[union-attr]
        users=runtime.users, tokens=runtime.tokens, username="enum-disabled", disabled=True))
    kinds = {
        "unknown": lambda i: {"username": f"ghost-{i % 3}", "password": "Wrong-pass-123"},
        "wrong": lambda i: {"username": "enum-victim", "password": "Wrong-pass-123"},
        "disabled": lambda i: {"username": "enum-disabled", "password": "viewer-Pa55word-rel"},
    }
    timings: dict[str, list[float]] = {kind: [] for kind in kinds}
    answers: dict[str, set[Any]] = {kind: set() for kind in kinds}
    for form in kinds.values():  # warm-up: first calls pay for imports and caches
        _timed(api.client, {"grant_type": "password", **form(0)})
    for i in range(ATTEMPTS):
        for kind, form in kinds.items():
            elapsed, response = _timed(api.client, {"grant_type": "password", **form(i)})
            timings[kind].append(elapsed)
            status, body, headers = _answer(response)
            answers[kind].add((status, repr(sorted(body.items())), repr(sorted(headers.items()))))
    assert all(len(seen) == 1 for seen in answers.values()), answers
    assert answers["unknown"] == answers["wrong"] == answers["disabled"]
    status = next(iter(answers["unknown"]))[0]
    assert status == 400
    medians = {kind: statistics.median(values) for kind, values in timings.items()}
    print("\nlogin median ms: " + ", ".join(f"{kind} {value * 1000:.1f}" for kind, value in medians.items()))
    for kind in ("wrong", "disabled"):
        ratio = medians["unknown"] / medians[kind]
        assert 0.5 <= ratio <= 2.0, (medians, f"unknown/{kind} median latency ratio {ratio:.2f}")


def test_unknown_client_and_wrong_secret_answer_alike(module_api: Api) -> None:
    api = module_api
    api.client.post("/clients", json={"client_id": "enum-bot", "role": "viewer"}, headers=api.admin)
    timings: dict[str, list[float]] = {"unknown": [], "wrong": []}
    answers: dict[str, set[Any]] = {"unknown": set(), "wrong": set()}
    for i in range(ATTEMPTS // 2):
        for kind, client_id in (("unknown", f"ghost-bot-{i % 2}"), ("wrong", "enum-bot")):
            elapsed, response = _timed(api.client, {"grant_type": "client_credentials", "client_id": client_id,
                                                    "client_secret": "not-the-secret"})
            timings[kind].append(elapsed)
            status, body, headers = _answer(response)
            answers[kind].add((status, repr(sorted(body.items())), repr(sorted(headers.items()))))
    assert answers["unknown"] == answers["wrong"] and len(answers["wrong"]) == 1
    ratio = statistics.median(timings["unknown"]) / statistics.median(timings["wrong"])
    assert 0.5 <= ratio <= 2.0, timings


# --- brute force ---------------------------------------------------------------------------------------------


def test_default_login_limits_are_stricter_than_the_general_limit() -> None:
    settings = load_settings(_env_file=None)
    general_per_minute = int(settings.rate_limit_default.split("/")[0])
    assert settings.rate_limit_default.endswith("/minute")
    assert settings.login_failures_per_account_per_hour <= 100  # failure #101 in an hour can never pass
    assert settings.login_failures_per_account_per_hour / 60 < general_per_minute
    assert settings.login_attempts_per_ip_per_minute < general_per_minute
    with pytest.raises(ConfigurationError, match="GENESIS_LOGIN_FAILURES_PER_ACCOUNT_PER_HOUR"):
        load_settings(_env_file=None, login_failures_per_account_per_hour=101)


def _login(client: TestClient, username: str, password: str, ip: str | None = None) -> int:
    headers = {"X-Forwarded-For": ip} if ip else {}
    return client.post("/token", data={"grant_type": "password", "username": username, "password": password},
                       headers=headers).status_code


def test_an_account_is_throttled_whatever_address_the_guesses_come_from(
    fresh_settings: Callable[..., Settings],
) -> None:
    settings = fresh_settings(login_failures_per_account_per_hour=4, login_attempts_per_ip_per_minute=1000,
                              rate_limit_token="1000/minute", trusted_proxies="127.0.0.0/8")
    with TestClient(create_app(settings), client=("127.0.0.1", 40000)) as client:
        # A botnet: each guess from another (believed) address.
        codes = [_login(client, "admin", f"guess-{i}", f"198.51.100.{i}") for i in range(6)]
        right = _login(client, "admin", ADMIN_PASSWORD, "198.51.100.200")
        # The same throttle for an account that does not exist: throttling reveals nothing either.
        ghost = [_login(client, "no-such-user", f"guess-{i}", f"198.51.100.{i}") for i in range(6)]
        other = _login(client, "admin2", "whatever-guess", "198.51.100.201")
    assert codes == [400] * 4 + [429] * 2  # past 4 failures in the hour, unknown addresses wait 1 s, 2 s, 4 s...
    assert right == 429  # even the right password waits: the guesser cannot learn it was right
    assert ghost == codes
    assert other == 400  # only the attacked account is throttled


def test_an_address_is_throttled_across_usernames_and_forged_forwarded_for_does_not_reset_it(
    fresh_settings: Callable[..., Settings],
) -> None:
    settings = fresh_settings(login_attempts_per_ip_per_minute=5, login_failures_per_account_per_hour=100,
                              rate_limit_token="1000/minute")
    with TestClient(create_app(settings), client=("203.0.113.50", 40000)) as client:
        # Password spraying: one guess per account, from one address that forges X-Forwarded-For.
        codes = [_login(client, f"user{i}", "Spring2026!", f"10.0.0.{i}") for i in range(8)]
        response = client.post("/token", data={"grant_type": "password", "username": "admin",
                                               "password": ADMIN_PASSWORD})
        other = TestClient(client.app, client=("203.0.113.51", 40000))  # same app, another address
        elsewhere = _login(other, "admin", ADMIN_PASSWORD)
    assert codes == [400] * 5 + [429] * 3
    assert response.status_code == 429 and int(response.headers["retry-after"]) >= 1
    assert strict_json(response.content)["status"] == 429
    assert elsewhere == 200


def test_a_success_clears_the_failures_of_its_address_and_exempts_it_from_the_delays(
    fresh_settings: Callable[..., Settings],
) -> None:
    settings = fresh_settings(login_failures_per_account_per_hour=3, login_attempts_per_ip_per_minute=1000,
                              rate_limit_token="1000/minute")
    with TestClient(create_app(settings)) as client:
        first = [_login(client, "admin", "typo-password") for _ in range(2)]
        ok = _login(client, "admin", ADMIN_PASSWORD)
        after = [_login(client, "admin", "typo-password") for _ in range(3)]
    assert first == [400, 400] and ok == 200
    assert after == [400, 400, 400]  # the owner's own address is not slowed by the account's failures


# --- lockout without denial of service -------------------------------------------------------------------------------


def test_strangers_failing_from_elsewhere_never_lock_out_the_owner_admin_included(
    fresh_settings: Callable[..., Settings],
) -> None:
    settings = fresh_settings(login_failures_per_account_per_hour=5, login_attempts_per_ip_per_minute=1000,
                              rate_limit_token="1000/minute", trusted_proxies="127.0.0.0/8")
    with TestClient(create_app(settings), client=("127.0.0.1", 40000)) as client:
        assert _login(client, "admin", ADMIN_PASSWORD, "192.0.2.10") == 200  # the admin's usual address
        strangers = [_login(client, "admin", f"guess-{i}", f"198.51.100.{i}") for i in range(40)]
        owner = _login(client, "admin", ADMIN_PASSWORD, "192.0.2.10")
        stranger_with_the_password = _login(client, "admin", ADMIN_PASSWORD, "198.51.100.250")
    assert strangers.count(400) == 5 and strangers.count(429) == 35  # slowed down, and refused meanwhile
    assert owner == 200  # on main this was 429 for an hour
    assert stranger_with_the_password == 429  # an unknown address waits its turn, right password or not


def test_delays_grow_with_the_failures_and_are_capped_never_an_hour(fresh_settings: Callable[..., Settings]) -> None:
    from genesis.services.login_guard import LoginPolicy

    policy = LoginPolicy(delay_after_failures_per_hour=20, max_delay_seconds=60)
    assert [policy.delay_after(n) for n in (0, 19, 20, 21, 22, 25, 26, 27, 100)] == [0, 0, 1, 2, 4, 32, 60, 60, 60]
    settings = fresh_settings(login_failures_per_account_per_hour=2, login_attempts_per_ip_per_minute=1000,
                              rate_limit_token="1000/minute", trusted_proxies="127.0.0.0/8")
    waits = []
    with TestClient(create_app(settings), client=("127.0.0.1", 40000)) as client:
        for i in range(4):
            response = client.post("/token", data={"grant_type": "password", "username": "admin", "password": "x"},
                                   headers={"X-Forwarded-For": f"198.51.100.{i}"})
            if response.status_code == 429:
                waits.append(int(response.headers["retry-after"]))
                assert wait_until(lambda n=i: _login(client, "admin", "x", f"203.0.113.{n}") == 400, timeout=30)
    assert waits == [1, 2]  # after failure 2: 1 s; after failure 3: 2 s (then 4, 8, ... up to 60 s)


def test_failures_from_one_address_refuse_that_account_from_that_address_only(
    fresh_settings: Callable[..., Settings],
) -> None:
    settings = fresh_settings(login_failures_per_account_and_address=3, login_failures_per_account_per_hour=100,
                              login_attempts_per_ip_per_minute=1000, rate_limit_token="1000/minute",
                              trusted_proxies="127.0.0.0/8")
    with TestClient(create_app(settings), client=("127.0.0.1", 40000)) as client:
        assert _login(client, "admin", ADMIN_PASSWORD, "192.0.2.10") == 200
        codes = [_login(client, "admin", "guess", "198.51.100.7") for _ in range(4)]
        right_from_there = _login(client, "admin", ADMIN_PASSWORD, "198.51.100.7")
        other_account_from_there = _login(client, "someone", "guess", "198.51.100.7")
        owner = _login(client, "admin", ADMIN_PASSWORD, "192.0.2.10")
    assert codes == [400, 400, 400, 429] and right_from_there == 429
    assert other_account_from_there == 400 and owner == 200


def test_failure_101_within_the_hour_is_refused_whatever_the_addresses(fresh_settings: Callable[..., Settings]) -> None:
    settings = fresh_settings(login_failures_per_account_per_hour=100, login_attempts_per_ip_per_minute=1000,
                              rate_limit_token="1000/minute", trusted_proxies="127.0.0.0/8")
    with TestClient(create_app(settings), client=("127.0.0.1", 40000)) as client:
        assert _login(client, "admin", ADMIN_PASSWORD, "192.0.2.10") == 200
        codes = [_login(client, "admin", "guess", f"10.0.{i // 250}.{i % 250}") for i in range(100)]
        known = _login(client, "admin", "guess", "192.0.2.10")
    assert codes == [400] * 100
    assert known == 429  # NIST 800-63B 5.2.2: no more than 100 failures an hour, from anywhere
