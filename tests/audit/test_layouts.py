"""GENESIS_LOG_FORMAT=json|ecs|otel: every line parses, has its schema's names and types, no secret, no ANSI."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from genesis.audit.context import bind_request
from genesis.audit.layouts import ECS_VERSION, severity_number, trace_id_of
from genesis.audit.levels import AUDIT
from genesis.audit.logging import setup_logging
from genesis.config import Settings

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJTRU5USU5FTC1qd3QifQ.U0VOVElORUwtc2lnbmF0dXJl"
SENTINELS = ("SENTINEL-password-6f1d2c", "SENTINEL-secret-93ab0e", "SENTINEL-token-1c2d3e", JWT)
HOSTILE = "bob\x1b[2J\x1b]0;pwned\x07\x9b31m\u202eevil\u2066"
TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
TERMINAL = re.compile("[\x1b\x80-\x9f\u202a-\u202e\u2066-\u2069]")


def strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def emit(log: logging.Logger) -> None:
    """One of each kind of line: plain, secrets everywhere, hostile text, an access line, an exception."""
    log.debug("debug line")
    log.info("user %s logged in", "alice", extra={"symbol": "BTC", "n": 3, "ratio": 0.5})
    log.log(AUDIT, "audit line", extra={"action": "user.create", "outcome": "success"})
    log.warning(
        "password=%s and Bearer %s", SENTINELS[0], JWT,
        extra={"client_secret": SENTINELS[1], "nested": {"access_token": SENTINELS[2], "ok": [1, 2]}},
    )  # fmt: skip
    with bind_request(request_id="req-1", correlation_id=TRACE, user=HOSTILE, trace=(TRACE, SPAN)):
        log.error("hostile %s", HOSTILE, extra={HOSTILE: HOSTILE, "color_message": "\x1b[32mgreen\x1b[0m"})
        logging.getLogger("genesis.api.access").info(
            "http.request",
            extra={"method": "GET", "route": "/me", "path": "/me", "status": 200, "duration_ms": 1.5,
                   "client_ip": "203.0.113.7", "actor": "alice"},
        )  # fmt: skip
    try:
        raise RuntimeError(f"failed with token={SENTINELS[2]}")
    except RuntimeError:
        log.exception("boom")


def logged(make_settings: Callable[..., Settings], log_format: str) -> list[dict[str, Any]]:
    settings = make_settings(log_format=log_format, log_level="DEBUG")
    runtime = setup_logging(settings)
    try:
        emit(logging.getLogger("genesis.test.layout"))
        assert runtime.flush()
    finally:
        runtime.close()
    raw = (settings.logs_path / "genesis.log").read_bytes()
    assert raw.endswith(b"\n")
    mine = [json.loads(line) for line in raw.split(b"\n")[:-1]]
    return [r for r in mine if "genesis.test.layout" in json.dumps(r) or "genesis.api.access" in json.dumps(r)]


@pytest.mark.parametrize("log_format", ["json", "ecs", "otel"])
def test_every_layout_keeps_secrets_and_terminal_controls_out(
    make_settings: Callable[..., Settings], log_format: str
) -> None:
    records = logged(make_settings, log_format)
    assert len(records) == 7
    text = [s for r in records for s in strings(r)]
    assert not [s for s in text if any(secret in s for secret in SENTINELS)]
    assert not [s for s in text if TERMINAL.search(s)]
    assert not [s for s in text if "color_message" in s or "green" in s]  # uvicorn's coloured copy is dropped
    assert any("\\x1b[2J" in s for s in text)  # the hostile text is kept, visibly
    assert any("[REDACTED]" in s for s in text)


def test_json_layout_is_genesis_own_fields(make_settings: Callable[..., Settings]) -> None:
    records = logged(make_settings, "json")
    for record in records:
        assert {"timestamp", "level", "logger", "event", "message", "correlation_id", "request_id", "user",
                "pid"} <= set(record)  # fmt: skip
    hostile = next(r for r in records if r["message"].startswith("hostile"))
    assert hostile["correlation_id"] == TRACE and hostile["user"].startswith("bob\\x1b[2J")


def test_ecs_layout_uses_elastic_common_schema_names_and_types(make_settings: Callable[..., Settings]) -> None:
    records = logged(make_settings, "ecs")
    for record in records:
        assert list(record)[:4] == ["@timestamp", "log.level", "message", "ecs.version"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", record["@timestamp"])
        assert record["ecs.version"] == ECS_VERSION
        assert record["log.level"] in {"debug", "info", "audit", "warning", "error"}
        assert isinstance(record["process"]["pid"], int) and record["service"]["name"] == "genesis"
        assert isinstance(record["log"]["logger"], str) and isinstance(record["event"]["action"], str)
        assert not {"timestamp", "level", "logger", "pid", "correlation_id", "request_id"} & set(record)
    info = next(r for r in records if r["log.level"] == "info" and r["log"]["logger"] == "genesis.test.layout")
    assert info["genesis"] == {"symbol": "BTC", "n": 3, "ratio": 0.5}  # custom fields in their own namespace
    audit = next(r for r in records if r["log.level"] == "audit")
    assert audit["event"]["action"] == "user.create" and audit["genesis"]["outcome"] == "success"
    hostile = next(r for r in records if r["message"].startswith("hostile"))
    assert hostile["trace"] == {"id": TRACE} and hostile["span"] == {"id": SPAN}
    assert hostile["http"] == {"request": {"id": "req-1"}} and hostile["user"]["name"].startswith("bob\\x1b")
    access = next(r for r in records if r["log"]["logger"] == "genesis.api.access")
    assert access["http"] == {"request": {"id": "req-1", "method": "GET"}, "response": {"status_code": 200}}
    assert access["url"] == {"path": "/me"} and access["client"] == {"ip": "203.0.113.7"}
    assert access["event"]["duration"] == 1_500_000  # nanoseconds
    assert access["genesis"] == {"route": "/me", "actor": "alice"}  # the user came from the context
    error = next(r for r in records if r["message"] == "boom")["error"]
    assert error["type"] == "RuntimeError" and error["message"] == "failed with token=[REDACTED]"
    assert "Traceback" in error["stack_trace"]


def test_otel_layout_follows_the_log_data_model(make_settings: Callable[..., Settings]) -> None:
    records = logged(make_settings, "otel")
    for record in records:
        assert isinstance(record["timestamp"], int) and isinstance(record["observed_timestamp"], int)
        assert 1.6e18 < record["timestamp"] <= record["observed_timestamp"]
        assert isinstance(record["severity_text"], str) and isinstance(record["severity_number"], int)
        assert isinstance(record["body"], str) and isinstance(record["attributes"], dict)
        assert record["resource"]["service.name"] == "genesis" and isinstance(record["resource"]["process.pid"], int)
        assert record["instrumentation_scope"]["name"] == record["attributes"]["log.logger"]
        assert all(isinstance(key, str) for key in record["attributes"])
    levels = {r["severity_text"]: r["severity_number"] for r in records}
    assert levels == {"DEBUG": 5, "INFO": 9, "AUDIT": 12, "WARNING": 13, "ERROR": 17}
    hostile = next(r for r in records if r["body"].startswith("hostile"))
    assert hostile["trace_id"] == TRACE and hostile["span_id"] == SPAN
    assert hostile["attributes"]["genesis.request_id"] == "req-1"
    access = next(r for r in records if r["attributes"]["log.logger"] == "genesis.api.access")
    assert {k: access["attributes"][k] for k in ("http.request.method", "http.route", "url.path",
            "http.response.status_code", "client.address")} == {
        "http.request.method": "GET", "http.route": "/me", "url.path": "/me", "http.response.status_code": 200,
        "client.address": "203.0.113.7"}  # fmt: skip
    plain = next(r for r in records if r["body"] == "user alice logged in")
    assert "trace_id" not in plain and "span_id" not in plain  # no request, no trace
    assert plain["attributes"]["event.name"] == "user %s logged in" and plain["attributes"]["genesis.n"] == 3
    failed = next(r for r in records if r["body"] == "boom")["attributes"]
    assert failed["exception.type"] == "RuntimeError" and failed["exception.message"] == "failed with token=[REDACTED]"
    assert "Traceback" in failed["exception.stacktrace"]


def test_severity_numbers_follow_the_opentelemetry_sdk_mapping() -> None:
    assert [severity_number(n) for n in (5, 10, 11, 19, 20, 25, 30, 40, 50, 60)] == [1, 5, 6, 8, 9, 12, 13, 17, 21, 24]


def test_trace_id_comes_from_traceparent_else_from_a_hex_correlation_id() -> None:
    assert trace_id_of("abc-123", (TRACE, SPAN)) == TRACE
    assert trace_id_of(TRACE.upper(), None) == TRACE
    assert trace_id_of("0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f5a6", None) == "0192f3a45b6c7d8e9fa0b1c2d3e4f5a6"
    assert trace_id_of("abc-123", None) is None and trace_id_of(None, None) is None
    assert trace_id_of("0" * 32, None) is None  # the W3C invalid trace id


def test_an_unknown_layout_is_refused() -> None:
    from genesis.audit.jsonlines import JsonLineFormatter

    with pytest.raises(ValueError, match="unknown log layout 'xml'"):
        JsonLineFormatter(layout="xml")  # type: ignore[arg-type]
