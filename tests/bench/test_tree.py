from __future__ import annotations

from bench import tree
from bench.core import Scale
from tests.bench.conftest import assert_measured


def test_tree_bench_runs_once_at_tiny_size(tiny: Scale) -> None:
    figures = tree.run(tiny)
    assert_measured(figures)
    names = [f.name for f in figures]
    assert any(name.startswith("tree append") for name in names)
    assert any(name == "tree maintenance added to durable ingestion" for name in names)
    assert sum(name.startswith("offline verification of a") for name in names) == 1
    assert sum(name.startswith("verification of") for name in names) == 2
    (inclusion,) = [f for f in figures if f.name.startswith("inclusion proof")]
    assert inclusion.extra["read_batches"] == 1 and inclusion.extra["nodes_read"] <= 2 * (2_000).bit_length()
