"""The running service re-verifies its audit chain on a schedule and reports a break once."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from genesis.api import lifespan as lifespan_module
from genesis.api.app import create_app
from genesis.config import Settings
from tests.conftest import bearer, token_for


def _wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_tampered_event_is_found_by_the_schedule_and_recorded_once(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lifespan_module, "FULL_VERIFY_SECONDS", 0.0)  # every round re-reads the whole chain
    settings = make_settings(audit_verify_interval_seconds=0.5, rate_limits_enabled=False)
    with TestClient(create_app(settings)) as client:
        admin = bearer(token_for(client)["access_token"])
        for _ in range(3):
            assert client.get("/me", headers=admin).status_code == 200
        state = client.app.state  # type: ignore[attr-defined]
        assert _wait_for(lambda: getattr(state, "chain_monitor", None) is not None
                         and state.chain_monitor.state is not None and state.chain_monitor.state.verified_seq >= 4)
        assert REGISTRY.get_sample_value("genesis_audit_chain_verified") == 1.0
        with sqlite3.connect(settings.data_dir / "genesis.db") as db:  # an attacker with write access to the file
            db.execute("DROP TRIGGER audit_events_no_update")
            db.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = (SELECT MAX(seq) FROM audit_events)")
        assert client.get("/me", headers=admin).status_code == 200  # appended after the edited event
        assert _wait_for(lambda: REGISTRY.get_sample_value("genesis_audit_chain_verified") == 0.0)
        time.sleep(1.2)  # two more rounds: still broken, not reported again
        failures = client.get("/audit/events", params={"action": "audit.verify.failed"}, headers=admin).json()
        assert len(failures["events"]) == 1
        assert failures["events"][0]["outcome"] == "failure" and "modified at seq" in failures["events"][0]["message"]
