from __future__ import annotations

from bench import audit_ingest
from bench.core import Scale
from tests.bench.conftest import assert_measured


def test_audit_ingestion_bench_runs_once_at_tiny_size(tiny: Scale) -> None:
    figures = audit_ingest.run(tiny)
    assert_measured(figures)
    assert {f.anchor_name for f in figures} >= {"original handler", "stdlib JSON lines to file", "stdlib QueueHandler"}
