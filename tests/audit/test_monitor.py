"""Scheduled self-verification: incremental checks that catch edits, deletions and truncation."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY

from genesis.audit.heads import HeadMaker
from genesis.audit.monitor import ChainMonitor
from genesis.audit.store import AuditStore
from genesis.audit.trail import TrustedKeys
from tests.audit.chainlib import make_event
from tests.audit.conftest import drop_append_only_triggers, raw_sql


def fill(store: AuditStore, start: int, n: int) -> None:
    store.append([make_event(i) for i in range(start, start + n)])


def gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value(name)


def test_checks_are_incremental_and_report_metrics(store: AuditStore, heads: HeadMaker, keys: TrustedKeys) -> None:
    fill(store, 0, 20)
    heads.make("on-demand")
    monitor = ChainMonitor(store, keys=keys)
    first = monitor.check()
    assert (first.ok, first.verified_seq, first.checked) == (True, 20, 20)
    assert gauge("genesis_audit_chain_verified") == 1.0 and gauge("genesis_audit_chain_verified_seq") == 20.0
    age = gauge("genesis_audit_chain_last_checkpoint_age_seconds")
    assert age is not None and 0 <= age < 60
    fill(store, 20, 5)
    heads.make("on-demand")
    second = monitor.check()
    assert (second.ok, second.verified_seq, second.checked) == (True, 25, 5)  # only what was appended
    assert second.report is not None and second.report.covered_seq == 25  # held against the new head
    assert monitor.check().checked == 0


def test_a_rewrite_with_recomputed_hashes_after_the_verified_prefix_is_forged(
    store: AuditStore, store_url: str, heads: HeadMaker, keys: TrustedKeys
) -> None:
    from tests.audit.chainlib import rechain

    fill(store, 0, 10)
    monitor = ChainMonitor(store, keys=keys)
    assert monitor.check().ok
    fill(store, 10, 10)
    heads.make("on-demand")
    rows = list(store.iter_rows())
    forged = rechain([*rows[:13], (*rows[13][:6], "mallory", *rows[13][7:]), *rows[14:]], 13)
    drop_append_only_triggers(store_url)
    for row in forged[13:]:
        raw_sql(store_url, "UPDATE audit_events SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (row[6], row[16], row[17], row[0]))
    state = monitor.check()  # the chain links; only the signed head can tell
    assert state.report is not None and (state.report.kind, state.report.first_bad_seq) == ("forged", 11)


def test_an_edit_after_the_verified_prefix_is_reported_with_its_seq(store: AuditStore, store_url: str) -> None:
    fill(store, 0, 10)
    monitor = ChainMonitor(store)
    assert monitor.check().ok
    fill(store, 10, 10)
    drop_append_only_triggers(store_url)
    raw_sql(store_url, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 14")
    state = monitor.check()
    assert not state.ok and state.verified_seq == 10
    assert state.report is not None and (state.report.kind, state.report.first_bad_seq) == ("modified", 14)
    assert state.problem is not None and state.problem.startswith("modified at seq 14")
    assert gauge("genesis_audit_chain_verified") == 0.0
    assert not monitor.check().ok  # stays broken on the next round


def test_truncation_below_the_verified_head_is_reported(store: AuditStore, store_url: str) -> None:
    fill(store, 0, 12)
    monitor = ChainMonitor(store)
    assert monitor.check().verified_seq == 12
    drop_append_only_triggers(store_url)
    raw_sql(store_url, "DELETE FROM audit_events WHERE seq > 8")
    state = monitor.check()
    assert not state.ok and state.report is not None
    assert (state.report.kind, state.report.first_bad_seq) == ("truncated", 9)


def test_an_archive_moves_the_start_forward(
    store: AuditStore, heads: HeadMaker, keys: TrustedKeys, tmp_path: Any
) -> None:
    from datetime import UTC, datetime

    from genesis.audit.trail import archive_events

    fill(store, 0, 10)
    monitor = ChainMonitor(store, keys=keys)
    assert monitor.check().verified_seq == 10
    cutoff = store.head()
    row = next(iter(store.iter_rows(start_seq=cutoff.seq, end_seq=cutoff.seq)))
    archive_events(store, before=datetime.fromtimestamp((row[2] + 1) / 1e6, tz=UTC), export_dir=tmp_path,
                   retention_days=0, heads=heads)
    fill(store, 10, 3)
    state = monitor.check()
    assert state.ok and state.verified_seq == 13, state.report


def test_an_edit_inside_the_verified_prefix_takes_a_full_check(store: AuditStore, store_url: str) -> None:
    fill(store, 0, 10)
    monitor = ChainMonitor(store)
    assert monitor.check().ok
    drop_append_only_triggers(store_url)
    raw_sql(store_url, "UPDATE audit_events SET message = 'edited' WHERE seq = 3")
    fill(store, 10, 2)
    assert monitor.check().ok  # incremental: continues from the remembered hash of seq 10
    state = monitor.check(full=True)
    assert not state.ok and state.report is not None and state.report.first_bad_seq == 3


def test_the_verified_gauge_is_unknown_not_zero_before_any_check() -> None:
    import math
    import subprocess
    import sys

    code = ("import genesis.audit.metrics; from prometheus_client import REGISTRY; "
            "print(REGISTRY.get_sample_value('genesis_audit_chain_verified'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert math.isnan(float(out))
