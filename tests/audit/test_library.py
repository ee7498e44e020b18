"""The original API: log_action and get_audit_logs, on top of the configured recorder."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime

import pytest

import genesis
from genesis import audit
from genesis.audit import AuditRecorder, get_audit_logs, log_action
from genesis.audit.context import bind_request
from genesis.audit.events import new_event
from genesis.audit.levels import AUDIT
from genesis.audit.store import AuditStore
from genesis.audit.trail import verify_store
from genesis.audit.writer import AuditWriter
from genesis.config import Settings
from genesis.errors import InvalidInput, Unavailable


def us(text: str) -> int:
    moment = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def test_log_action_records_audit_events_with_context(store: AuditStore) -> None:
    with AuditWriter(store) as writer:
        audit.configure(recorder=AuditRecorder(writer), store=store)
        with bind_request(request_id="r-9", correlation_id="corr-9", user="alice"):
            ticket = log_action(
                AUDIT, "ingested prices", metadata={"symbol": "BTC", "token": "t0k3n"}, action="prices.ingest",
                wait=True, source_ip="198.51.100.4", status=201, rows=5,
            )  # fmt: skip
        assert ticket is not None
        event = ticket.wait(5)
        assert (event.actor, event.correlation_id, event.request_id) == ("alice", "corr-9", "r-9")
        assert (event.action, event.source_ip, event.status) == ("prices.ingest", "198.51.100.4", 201)
        assert event.metadata == {"symbol": "BTC", "token": "[REDACTED]", "rows": 5}
        assert log_action("INFO", "just a line") is None
        batch = log_action("INFO", "explicit action is audited", user="bob", action="strategy.calculate")
        assert batch is not None and batch.wait(5).level == "INFO"
        first = log_action(AUDIT, "outside a request")
        second = log_action(AUDIT, "another one")
        assert first is not None and second is not None
        assert first.wait(5).correlation_id != second.wait(5).correlation_id
        assert first.wait(5).action == "audit.log" and first.wait(5).actor == "system"
    assert verify_store(store).ok


def test_log_action_fails_closed_without_a_writer() -> None:
    with pytest.raises(Unavailable):
        log_action(AUDIT, "nobody records this")
    assert log_action("WARNING", "a plain line is fine") is None


def test_get_audit_logs_end_date_includes_the_whole_day(store: AuditStore) -> None:
    times = ["2024-01-01T00:00:00", "2024-01-02T23:59:59.999999", "2024-01-03T00:00:00", "2023-12-31T23:59:59"]
    store.append([new_event("t.day", message=t, occurred_at_us=us(t)) for t in times])
    audit.configure(recorder=None, store=store)

    def messages(start: object, end: object) -> list[str]:
        return [e["message"] for e in get_audit_logs(start, end)]  # type: ignore[arg-type]

    assert messages("2024-01-01", "2024-01-02") == times[:2]
    assert messages(date(2024, 1, 1), date(2024, 1, 2)) == times[:2]
    assert messages("2024-01-02", "2024-01-02") == [times[1]]
    assert messages(datetime(2024, 1, 1), datetime(2024, 1, 3)) == times[:3]  # datetime end is inclusive
    assert messages("2024-01-01T00:00:00Z", "2024-01-02T23:59:59Z") == times[:1]
    assert messages(datetime(2024, 1, 3, 1, tzinfo=UTC).astimezone(), "2024-01-03") == []
    assert len(get_audit_logs("2023-01-01", "2025-01-01", limit=2)) == 2
    with pytest.raises(InvalidInput):
        get_audit_logs("2024-01-03", "2024-01-01")
    with pytest.raises(InvalidInput):
        get_audit_logs("yesterday", "2024-01-01")
    row = get_audit_logs("2024-01-01", "2024-01-01")[0]
    json.dumps(row)
    assert set(row) >= {"seq", "event_id", "occurred_at_us", "actor", "action", "outcome", "hash", "prev_hash"}


def test_genesis_configure_is_the_one_line_of_set_up(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    with pytest.raises(Unavailable, match=r"genesis\.configure\(\)"):
        log_action(AUDIT, "before configure")  # the error says what to do
    handle = genesis.configure(data_dir=str(settings.data_dir), log_console=False)
    try:
        assert genesis.configure() is handle  # idempotent
        ticket = log_action("AUDIT", "User executed trade", user="testuser", metadata={"symbol": "BTC/USD"},
                            wait=True)
        assert ticket is not None and ticket.done()
        today = datetime.now(UTC).date().isoformat()
        found = get_audit_logs("2023-01-01", today)
        assert [(e["actor"], e["message"], e["metadata"]) for e in found] == [
            ("testuser", "User executed trade", {"symbol": "BTC/USD"})]  # no audit.start from a library user
    finally:
        handle.close()
    with pytest.raises(Unavailable):
        log_action(AUDIT, "after close")
    assert audit.get_config().recorder is None
