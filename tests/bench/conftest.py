"""The benchmarks at their tiny size: each runs once to keep it working; targets are not checked here."""

from __future__ import annotations

import math

import pytest

from bench.core import TINY, Figure, Scale


@pytest.fixture
def tiny() -> Scale:
    return TINY


def assert_measured(figures: list[Figure]) -> None:
    """Every figure that was not skipped has a finite value and a well-formed row."""
    assert figures
    for figure in figures:
        row = figure.to_dict()
        assert set(row) >= {"name", "value", "unit", "anchor", "ratio", "target", "pass"}
        if figure.note.startswith("skipped"):
            assert "failed" not in figure.note, figure.note
            continue
        assert math.isfinite(figure.value) and figure.value >= 0, row
