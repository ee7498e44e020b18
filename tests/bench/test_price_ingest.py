from __future__ import annotations

from bench import price_ingest
from bench.core import Scale
from tests.bench.conftest import assert_measured


def test_price_ingestion_bench_runs_once_at_tiny_size(tiny: Scale) -> None:
    assert_measured(price_ingest.run(tiny))
