"""Downsampling against straightforward loop references: LTTB (Steinarsson's reference structure) and OHLC buckets."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genesis.analytics.downsample import bucket_bounds, lttb, ohlc_buckets
from genesis.errors import InvalidInput

DETERMINISTIC = settings(derandomize=True, database=None, deadline=None, max_examples=80)


def lttb_ref(x: Sequence[float], y: Sequence[float], threshold: int) -> list[int]:
    """Steinarsson's reference LTTB (flot-downsample), one point at a time, returning indices."""
    n = len(x)
    if threshold >= n:
        return list(range(n))
    every = (n - 2) / (threshold - 2)
    a = 0
    out = [0]
    for i in range(threshold - 2):
        avg_start = math.floor((i + 1) * every) + 1
        avg_end = min(math.floor((i + 2) * every) + 1, n)
        avg_x = sum(x[avg_start:avg_end]) / (avg_end - avg_start)
        avg_y = sum(y[avg_start:avg_end]) / (avg_end - avg_start)
        lo, hi = math.floor(i * every) + 1, math.floor((i + 1) * every) + 1
        max_area, chosen = -1.0, lo
        for j in range(lo, hi):
            area = abs((x[a] - avg_x) * (y[j] - y[a]) - (x[a] - x[j]) * (avg_y - y[a])) * 0.5
            if area > max_area:
                max_area, chosen = area, j
        out.append(chosen)
        a = chosen
    out.append(n - 1)
    return out


def ohlc_ref(o: list[float], h: list[float], low: list[float], c: list[float], v: list[float] | None,
             m: int) -> list[tuple[int, float, float, float, float, float | None]]:
    n = len(o)
    m = min(m, n)
    out = []
    for k in range(m):
        s, e = k * n // m, (k + 1) * n // m
        out.append((s, o[s], max(h[s:e]), min(low[s:e]), c[e - 1], None if v is None else sum(v[s:e])))
    return out


def walk(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.uniform(0.5, 2.0, n))
    x -= x[0]
    return x, 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))


@pytest.mark.parametrize(("n", "m"), [(10, 3), (11, 4), (100, 10), (1000, 37), (5000, 500), (101, 100), (7, 6)])
def test_lttb_keeps_the_same_points_as_the_reference_loop(n: int, m: int) -> None:
    x, y = walk(n, seed=n * 31 + m)
    kept = lttb(x, y, m)
    assert kept.tolist() == lttb_ref(x.tolist(), y.tolist(), m)
    assert kept.size == m and kept[0] == 0 and kept[-1] == n - 1
    assert np.all(np.diff(kept) > 0)


@DETERMINISTIC
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=3, max_size=300), st.integers(3, 320))
def test_lttb_matches_the_reference_on_arbitrary_series(values: list[float], m: int) -> None:
    x = np.arange(len(values), dtype=np.float64)
    assert lttb(x, values, m).tolist() == lttb_ref(x.tolist(), values, m)


def test_lttb_keeps_an_isolated_spike() -> None:
    x = np.arange(100_000, dtype=np.float64)
    y = np.full(x.size, 50.0)
    y[61_234] = 500.0
    kept = lttb(x, y, 200)
    assert 61_234 in kept.tolist()


def test_lttb_returns_everything_when_asked_for_as_many_points_or_more() -> None:
    x, y = walk(50, seed=1)
    assert lttb(x, y, 50).tolist() == list(range(50))
    assert lttb(x, y, 10_000).tolist() == list(range(50))
    assert lttb([0.0], [1.0], 3).tolist() == [0]


@pytest.mark.parametrize(("x", "y", "m", "message"), [
    ([0, 1, 2, 3], [1, 2, 3], 3, "same length"),
    ([0, 2, 1, 3], [1, 2, 3, 4], 3, "strictly increasing"),
    ([0, 1, 1, 3], [1, 2, 3, 4], 3, "strictly increasing"),
    ([0, 1, 2, 3], [1, math.nan, 3, 4], 3, "finite"),
    ([0, 1, 2, 3], [1, 2, 3, 4], 2, "n_out must be >= 3"),
    ([0, 1, 2, 3], [1, 2, 3, 4], 3.0, "integer"),
    ([], [], 3, "empty"),
])
def test_lttb_refuses_bad_input_with_a_clear_message(x: list[float], y: list[float], m: int, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        lttb(x, y, m)


@pytest.mark.parametrize(("n", "m"), [(1, 1), (10, 3), (2148, 700), (2148, 2148), (2148, 5000), (1001, 1000)])
@pytest.mark.parametrize("with_volume", [True, False])
def test_ohlc_buckets_match_the_reference_loop(n: int, m: int, with_volume: bool) -> None:
    rng = np.random.default_rng(n + m)
    close = 100 + np.cumsum(rng.normal(0, 1, n))
    open_ = close + rng.normal(0, 0.5, n)
    high = np.maximum(open_, close) + rng.uniform(0, 1, n)
    low = np.minimum(open_, close) - rng.uniform(0, 1, n)
    volume = rng.uniform(0, 1e6, n) if with_volume else None
    got = ohlc_buckets(open_, high, low, close, volume, m)
    want = ohlc_ref(open_.tolist(), high.tolist(), low.tolist(), close.tolist(),
                    None if volume is None else volume.tolist(), m)
    assert got.first.tolist() == [w[0] for w in want]
    assert got.open.tolist() == [w[1] for w in want]
    assert got.high.tolist() == [w[2] for w in want]
    assert got.low.tolist() == [w[3] for w in want]
    assert got.close.tolist() == [w[4] for w in want]
    if volume is None:
        assert got.volume is None
    else:
        assert got.volume is not None
        np.testing.assert_allclose(got.volume, [w[5] for w in want], rtol=1e-12)
    # Every extreme of the source is still there.
    assert got.high.max() == high.max() and got.low.min() == low.min()


def test_bucket_bounds_split_evenly() -> None:
    starts = bucket_bounds(10, 3)
    assert starts.tolist() == [0, 3, 6]
    sizes = np.diff(np.append(bucket_bounds(1_000_003, 997), 1_000_003))
    assert sizes.min() >= 1_000_003 // 997 and sizes.max() - sizes.min() <= 1


def test_ohlc_buckets_refuse_bad_input() -> None:
    with pytest.raises(InvalidInput, match="as long as open"):
        ohlc_buckets([1, 2], [1, 2, 3], [1, 2], [1, 2], None, 1)
    with pytest.raises(InvalidInput, match="n_out must be >= 1"):
        ohlc_buckets([1, 2], [1, 2], [1, 2], [1, 2], None, 0)
    with pytest.raises(InvalidInput, match="finite"):
        ohlc_buckets([1, 2], [1, math.inf], [1, 2], [1, 2], None, 1)
