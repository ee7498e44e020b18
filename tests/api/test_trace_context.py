"""A W3C traceparent reaches the OpenTelemetry log lines of its request as trace_id and span_id."""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi.testclient import TestClient

from genesis.api.app import create_app
from genesis.audit.logging import active_logging
from genesis.config import Settings

TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def test_the_access_line_of_a_traced_request_carries_its_trace_and_span(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(log_format="otel")
    with TestClient(create_app(settings)) as client:
        traced = client.get("/health", headers={"traceparent": f"00-{TRACE}-{SPAN}-01"})
        untraced = client.get("/health", headers={"X-Request-ID": "plain-id"})
        invalid = client.get("/health", headers={"traceparent": f"00-{TRACE}-{'0' * 16}-01"})
        assert active_logging().flush(5)  # type: ignore[union-attr]
    lines = [json.loads(x) for x in (settings.logs_path / "genesis.log").read_text().splitlines()]
    access = {r["attributes"]["genesis.correlation_id"]: r for r in lines
              if r["attributes"]["log.logger"] == "genesis.api.access"}  # fmt: skip
    assert traced.headers["x-request-id"] == TRACE
    assert access[TRACE]["trace_id"] == TRACE and access[TRACE]["span_id"] == SPAN
    assert access[TRACE]["attributes"]["http.response.status_code"] == 200
    assert "trace_id" not in access["plain-id"] and "span_id" not in access["plain-id"]
    # An all-zero parent id makes the traceparent invalid: no span; the correlation id is a fresh UUIDv7, whose 32 hex
    # digits are the trace id.
    fresh = access[invalid.headers["x-request-id"]]
    assert "span_id" not in fresh and fresh["trace_id"] == invalid.headers["x-request-id"].replace("-", "")
    assert untraced.status_code == 200
