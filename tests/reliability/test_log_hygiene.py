"""Log hygiene: hostile input never splits or forges a log line or an audit row, and no secret is written anywhere.

The sentinel sweep runs a representative session against a live ``genesis serve`` whose signing key, audit HMAC
key, passwords and client secrets are marked values, then searches every log file, the server's own output, the
database files, the audit export and every response body for them - raw, base64 (at every alignment) and
URL-encoded. The only allowed sighting of a token is the /token response that issued it, and of a client secret the
response that created it.
"""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest

from genesis.audit.logging import active_logging
from tests.conftest import bearer
from tests.live import LiveServer
from tests.reliability.conftest import Api, strict_json

pytestmark = pytest.mark.timeout(300)

INJECTION = ('inj\r\n{"level":"CRITICAL","event":"forged","correlation_id":"x"}'
             '\x1b[31m\x1b]0;title\x07"}\\\u2028\u0085end')
LINE_BREAKS = (b"\r", "\u2028".encode(), "\u2029".encode(), "\u0085".encode())


TERMINAL_CONTROLS = ("\x1b", "\x85", "\x9b")


def _strings(value: Any) -> Iterable[str]:
    """Every string inside a decoded JSON value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _log_lines(logs: Path, fields: Iterable[str] = ("timestamp", "level", "logger", "event", "correlation_id"),
               ) -> list[dict[str, Any]]:
    """Every line of every log file under ``logs``, each parsed strictly as one JSON object."""
    records = []
    files = [p for p in logs.rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert files, f"no log files under {logs}"
    for path in files:
        data = path.read_bytes()
        assert data.endswith(b"\n"), f"{path.name} ends with a partial line"
        for number, raw in enumerate(data.split(b"\n")[:-1], 1):
            assert not any(mark in raw for mark in LINE_BREAKS), f"{path.name}:{number} holds a raw line break"
            record = strict_json(raw)
            assert isinstance(record, dict), f"{path.name}:{number}"
            assert set(fields) <= set(record), record
            records.append(record)
    return records


def _injected_requests(api: Api) -> list[tuple[str, httpx.Response, bool]]:
    """Send hostile input in every user-controlled field; return (label, response, audited?)."""
    client, admin = api.client, api.admin
    raw = INJECTION.encode("utf-8")  # header values travel as bytes; the server reads them as latin-1
    quoted = urllib.parse.quote(INJECTION, safe="")
    sent = [
        ("user-agent+request-id", client.get("/me", headers={**admin, "User-Agent": raw, "X-Request-ID": raw}), True),
        ("traceparent", client.get("/me", headers={**admin, "traceparent": raw, "Referer": raw}), True),
        ("forwarded-for", client.get("/me", headers={**admin, "X-Forwarded-For": raw}), True),
        ("public-request-id", client.get("/health", headers={"X-Request-ID": raw, "User-Agent": raw}), False),
        ("username", client.post("/token", data={"grant_type": "password", "username": INJECTION,
                                                 "password": "Wrong-password-1"}, headers={"User-Agent": raw}), True),
        ("client-id", client.post("/token", data={"grant_type": "client_credentials", "client_id": INJECTION,
                                                  "client_secret": INJECTION}), True),
        ("basic", client.post("/token", data={"grant_type": "client_credentials"},
                              headers={"Authorization": b"Basic " + base64.b64encode(raw + b":" + raw)}), True),
        ("bearer", client.get("/me", headers={"Authorization": b"Bearer " + raw}), True),
        ("symbol-path", client.get(f"/prices/{quoted}", headers=admin), True),
        ("symbol-ingest", client.post(f"/prices/{quoted}", headers=admin,
                                      json={"points": [{"timestamp": "2025-01-01T00:00:00Z", "price": 1.0}]}), True),
        ("query", client.get(f"/audit/events?actor={quoted}&action={quoted}", headers=admin), True),
        ("query-invalid", client.get(f"/anomalies/BTC?method={quoted}&window={quoted}", headers=admin), True),
        ("new-username", client.post("/users", json={"username": INJECTION, "role": "viewer",
                                                     "password": "viewer-password"}, headers=admin), True),
        ("description", client.post("/clients", json={"client_id": "inj-bot", "role": "viewer",
                                                      "description": INJECTION}, headers=admin), True),
        ("indicator-name", client.post(f"/indicators/{quoted[:32]}", headers=admin,
                                       json={"prices": [1.0, 2.0]}), True),
    ]
    for label, response, _ in sent:
        assert response.status_code < 500, (label, response.text)
        strict_json(response.content) if response.content else None
        assert INJECTION not in response.headers.get("x-request-id", ""), label
    return sent


def test_hostile_input_gives_exactly_one_json_line_per_event_in_logs_and_audit(module_api: Api) -> None:
    api = module_api
    sent = _injected_requests(api)
    assert active_logging().flush(5)
    records = _log_lines(api.settings.logs_path)
    access = [r for r in records if r["logger"] == "genesis.api.access"]
    for label, response, audited in sent:
        correlation_id = response.headers["x-request-id"]
        # Each request: exactly one access line (one rotating file: no second copy of every line).
        mine = [r for r in access if r["correlation_id"] == correlation_id]
        assert len(mine) == 1, (label, mine)
        assert mine[0]["status"] == response.status_code
        assert not any(r.get("event") == "forged" or r.get("level") == "CRITICAL" for r in records), label
        if audited and response.status_code != 404:  # an unmatched path is refused before anyone is identified
            events = api.client.get("/audit/events", params={"correlation_id": correlation_id},
                                    headers=api.admin).json()["events"]
            # One outcome event; a state change also has its write-ahead "started" event.
            assert len([e for e in events if e["outcome"] != "started"]) == 1, (label, events)
            assert len(events) <= 2, (label, events)
    assert any("forged" in json.dumps(r) for r in records), "the hostile text never reached a log line"
    # ... and no terminal control survives decoding: ESC and the C1 controls arrive as visible text.
    assert not [r for r in records if any(c in text for text in _strings(r) for c in TERMINAL_CONTROLS)]
    assert any("\\x1b[31m" in s for r in records for s in _strings(r))
    # The hostile text is kept (escaped) where it belongs, not dropped: the audit row shows what was sent.
    agent = api.client.get("/audit/events", params={"correlation_id": sent[0][1].headers["x-request-id"]},
                           headers=api.admin).json()["events"][0]["user_agent"]
    assert agent == INJECTION.encode().decode("latin-1")
    export = api.client.get("/audit/export", headers=api.admin)
    lines = export.content.split(b"\n")
    assert lines[-1] == b""
    for raw in lines[:-1]:
        assert not any(mark in raw for mark in LINE_BREAKS)
        assert isinstance(strict_json(raw), dict)
    assert api.client.get("/audit/verify", headers=api.admin).json()["ok"] is True


# --- sentinel sweep ------------------------------------------------------------------------------------------------


def _marked(kind: str) -> str:
    return f"SENTINEL-{kind}-{secrets.token_hex(12)}"


def _variants(secret: str) -> set[bytes]:
    """The secret raw, URL-encoded and base64-encoded at each of the three byte alignments (std and url-safe)."""
    raw = secret.encode()
    forms = {raw, urllib.parse.quote(secret, safe="").encode(), urllib.parse.quote_plus(secret).encode()}
    for pad in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * pad + raw).rstrip(b"=")
            head = -(-pad * 4 // 3)  # characters that depend on the padding bytes
            forms.add(encoded[head + 1 : -2])  # drop edge characters that mix in neighbouring bytes
    return {form for form in forms if len(form) >= 12}


def _hits(haystacks: dict[str, bytes], secrets_: dict[str, str]) -> list[tuple[str, str]]:
    found = []
    for kind, secret in secrets_.items():
        for form in _variants(secret):
            found += [(kind, where) for where, data in haystacks.items() if form in data]
    return sorted(set(found))


class Recorder:
    """An httpx client that keeps every response body, labelled by request."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=30)
        self.bodies: dict[str, bytes] = {}

    def __call__(self, label: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = self.client.request(method, url, **kwargs)
        self.bodies[f"response {len(self.bodies):02d} {label}"] = response.content + json.dumps(
            dict(response.headers)).encode()
        return response


def _files(paths: Iterable[Path]) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in paths if p.is_file()}


# The fields every line of each GENESIS_LOG_FORMAT has.
FORMAT_FIELDS = {
    "json": ("timestamp", "level", "logger", "event", "correlation_id"),
    "ecs": ("@timestamp", "log.level", "message", "ecs.version", "log", "process", "service"),
    "otel": ("timestamp", "observed_timestamp", "severity_text", "severity_number", "body", "attributes", "resource"),
}


@pytest.mark.parametrize("log_format", list(FORMAT_FIELDS))
def test_sentinel_secrets_appear_in_no_log_audit_row_database_or_response(tmp_path: Path, log_format: str) -> None:
    marks = {kind: _marked(kind) for kind in ("signing-key", "audit-hmac-key", "admin-password", "user-password",
                                              "wrong-password", "new-password")}
    env = {"GENESIS_SECRET_KEY": marks["signing-key"], "GENESIS_AUDIT_HMAC_KEY": marks["audit-hmac-key"],
           "GENESIS_ADMIN_PASSWORD": marks["admin-password"], "GENESIS_RATE_LIMITS_ENABLED": "false",
           "GENESIS_LOG_LEVEL": "DEBUG", "GENESIS_LOG_FORMAT": log_format}
    data_dir = tmp_path / "data"
    issued: dict[str, str] = {}  # label of the response allowed to carry a token/secret -> that value
    server = LiveServer(data_dir=data_dir, env=env).start()
    try:
        call = Recorder(server.base_url)
        login = call("login", "POST", "/token", data={"grant_type": "password", "username": "admin",
                                                      "password": marks["admin-password"]})
        assert login.status_code == 200
        admin = bearer(login.json()["access_token"])
        issued["admin-access"] = login.json()["access_token"]
        issued["admin-refresh"] = login.json()["refresh_token"]
        login_label = next(iter(call.bodies))
        call("wrong password", "POST", "/token", data={"grant_type": "password", "username": "admin",
                                                       "password": marks["wrong-password"]})
        # (The attempted username of a failed login is recorded on purpose - PCI DSS 10.2.1.4 wants who was
        # tried - so a password typed into the username box would be kept: see docs/SECURITY.md.)
        call("unknown user", "POST", "/token", data={"grant_type": "password", "username": "ghost-user",
                                                     "password": marks["wrong-password"]})
        created = call("create user", "POST", "/users", headers=admin,
                       json={"username": "sweep-user", "role": "trader", "password": marks["user-password"]})
        assert created.status_code == 201
        call("bad user", "POST", "/users", headers=admin,  # invalid: the 422 must not echo the password
             json={"username": "bad name!", "role": "trader", "password": marks["new-password"]})
        user_login = call("user login", "POST", "/token", data={"grant_type": "password", "username": "sweep-user",
                                                                "password": marks["user-password"]})
        issued["user-access"] = user_login.json()["access_token"]
        issued["user-refresh"] = user_login.json()["refresh_token"]
        user_label = list(call.bodies)[-1]
        user = bearer(issued["user-access"])
        client = call("create client", "POST", "/clients", headers=admin, json={"client_id": "sweep-bot",
                                                                                "role": "viewer"})
        client_secret = client.json()["client_secret"]
        client_label = list(call.bodies)[-1]
        basic = base64.b64encode(f"sweep-bot:{client_secret}".encode()).decode()
        machine = call("client basic", "POST", "/token", data={"grant_type": "client_credentials"},
                       headers={"Authorization": f"Basic {basic}"})
        issued["client-access"] = machine.json()["access_token"]
        machine_label = list(call.bodies)[-1]
        call("client body wrong", "POST", "/token", data={
            "grant_type": "client_credentials", "client_id": "sweep-bot", "client_secret": "x" + client_secret})
        refreshed = call("refresh", "POST", "/token", data={"grant_type": "refresh_token",
                                                            "refresh_token": issued["user-refresh"]})
        issued["refreshed-access"] = refreshed.json()["access_token"]
        issued["refreshed-refresh"] = refreshed.json()["refresh_token"]
        refresh_label = list(call.bodies)[-1]
        call("replay", "POST", "/token", data={"grant_type": "refresh_token", "refresh_token": issued["user-refresh"]})
        call("query token", "GET", f"/me?access_token={issued['admin-access']}")
        call("me", "GET", "/me", headers=user)
        call("ingest", "POST", "/prices/SWEEP", headers=user,
             json={"points": [{"timestamp": "2025-01-01T00:00:00Z", "price": 10.0}]})
        call("backtest", "POST", "/backtests", headers=user,
             json={"strategy": "sma_crossover", "params": {"fast": 2, "slow": 3}, "prices": [1.0, 2.0, 3.0, 4.0]})
        call("machine me", "GET", "/me", headers=bearer(issued["client-access"]))
        call("revoke", "POST", "/token/revoke", data={"token": issued["refreshed-access"]})
        call("revoked", "GET", "/me", headers=bearer(issued["refreshed-access"]))
        call("metrics", "GET", "/metrics", headers=admin)
        call("audit query", "GET", "/audit/events", params={"limit": 1000}, headers=admin)
        call("audit export", "GET", "/audit/export", headers=admin)
        call("audit csv", "GET", "/audit/export", params={"format": "csv"}, headers=admin)
        call("audit verify", "GET", "/audit/verify", headers=admin)
        call.client.close()
    finally:
        server.stop()  # graceful: drains the audit writer and the log pipeline
    output = server.output().encode()

    records = _log_lines(data_dir / "logs", FORMAT_FIELDS[log_format])  # every line parses, in its layout
    assert len(records) > 20
    assert not [r for r in records if any(c in text for text in _strings(r) for c in TERMINAL_CONTROLS)]

    everywhere: dict[str, bytes] = {"server output": output}
    everywhere.update(_files((data_dir / "logs").rglob("*")))
    everywhere.update(_files(data_dir.glob("genesis.db*")))
    with sqlite3.connect(data_dir / "genesis.db") as db:
        rows = db.execute("SELECT * FROM audit_events").fetchall()
    assert len(rows) > 20
    everywhere["audit rows"] = repr(rows).encode()
    everywhere.update(call.bodies)

    leaks = _hits(everywhere, marks)
    assert leaks == [], "\n".join(f"{k} in {w}" for k, w in leaks)
    allowed = {"admin-access": login_label, "admin-refresh": login_label, "user-access": user_label,
               "user-refresh": user_label, "client-access": machine_label, "refreshed-access": refresh_label,
               "refreshed-refresh": refresh_label}
    token_hits = _hits(everywhere, issued)
    unexpected = [(kind, where) for kind, where in token_hits if where != allowed[kind]]
    assert unexpected == []
    assert {kind for kind, _ in token_hits} == set(issued)  # the sweep does find what is there
    secret_hits = _hits(everywhere, {"client-secret": client_secret})
    assert secret_hits == [("client-secret", client_label)]
    # The sweep finds what it looks for, raw and inside a Basic header's base64.
    assert _hits({"probe": ("x" + marks["admin-password"]).encode()}, marks) == [("admin-password", "probe")]
    assert _hits({"basic": basic.encode()}, {"client-secret": client_secret}) == [("client-secret", "basic")]
