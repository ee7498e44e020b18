from __future__ import annotations

from bench import analytics
from bench.core import Scale
from tests.bench.conftest import assert_measured


def test_analytics_bench_runs_once_at_tiny_size_and_matches_talib(tiny: Scale) -> None:
    figures = analytics.run(tiny)
    assert_measured(figures)
    for figure in figures:
        assert figure.extra.get("max_abs_difference", 0.0) <= analytics.TOLERANCE, figure.name
