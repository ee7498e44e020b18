from __future__ import annotations

from bench import audit_reads
from bench.core import Scale
from tests.bench.conftest import assert_measured


def test_audit_reads_bench_runs_once_at_tiny_size(tiny: Scale) -> None:
    figures = audit_reads.run(tiny)
    assert_measured(figures)
    assert any(f.name.startswith("audit verify") for f in figures)
