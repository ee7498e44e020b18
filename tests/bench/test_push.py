from __future__ import annotations

from bench import push
from bench.core import Scale
from tests.bench.conftest import assert_measured


def test_push_bench_runs_once_at_tiny_size(tiny: Scale) -> None:
    figures = push.run(tiny)
    assert_measured(figures)
    assert figures[0].unit == "KB" and figures[1].unit == "ms"
