"""Shared fixtures for the analytics tests: the real GOOG series and seeded random walks."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from backtesting.test import GOOG

from genesis.analytics.types import FloatArray


@pytest.fixture(scope="session")
def goog_close() -> FloatArray:
    """Daily GOOG closes 2004-2013 (2,148 prices) shipped with ``backtesting``."""
    close: FloatArray = np.ascontiguousarray(GOOG["Close"].to_numpy(), dtype=np.float64)
    close.setflags(write=False)
    return close


def _random_walk(n: int, seed: int, *, start: float = 100.0, vol: float = 0.02) -> FloatArray:
    rng = np.random.default_rng(seed)
    walk: FloatArray = start * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    return walk


@pytest.fixture(scope="session")
def make_walk() -> Callable[..., FloatArray]:
    """Factory of seeded geometric random walks: ``make_walk(n, seed, start=100, vol=0.02)``."""
    return _random_walk


@pytest.fixture(scope="session", params=[(500, 1), (1000, 2), (257, 3)], ids=lambda p: f"walk{p[0]}-seed{p[1]}")
def walk(request: pytest.FixtureRequest) -> FloatArray:
    """Seeded random walks of a few lengths."""
    n, seed = request.param
    return _random_walk(n, seed)
