"""A short soak in the test suite (GENESIS_SOAK_SECONDS, default 5): zero 5xx, zero lost audit events."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.soak import soak

SOAK_SECONDS = float(os.environ.get("GENESIS_SOAK_SECONDS", "5"))
SOAK_RATE = float(os.environ.get("GENESIS_SOAK_RATE", "100"))
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120 + 2 * SOAK_SECONDS)]


def test_soak_at_a_steady_rate_has_no_5xx_and_loses_no_audit_event(tmp_path: Path) -> None:
    figures = soak(seconds=SOAK_SECONDS, rate=SOAK_RATE, threads=8, workers=1, data_dir=tmp_path / "data")
    print(f"\nsoak: {figures}")
    assert figures["server_errors"] == 0, figures
    assert figures["transport_errors"] == {}, figures
    assert figures["lost_audit_events"] == 0, figures
    assert figures["audit_verify_ok"], figures
    assert figures["requests"] == int(SOAK_SECONDS * SOAK_RATE), figures
    assert figures["statuses"] == {"200": figures["requests"]}, figures
    assert figures["passed"]
