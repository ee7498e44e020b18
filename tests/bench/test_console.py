from __future__ import annotations

from bench import console
from bench.core import Scale
from tests.bench.conftest import assert_measured


def test_console_bench_runs_once_at_tiny_size(tiny: Scale) -> None:
    assert_measured(console.run(tiny))
