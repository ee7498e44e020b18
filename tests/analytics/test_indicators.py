"""Indicators against textbook loop references, against TA-Lib, warm-up and registry."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence

import numpy as np
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from genesis.analytics import (
    INDICATORS,
    bollinger_bands,
    ema,
    indicator_spec,
    macd,
    nan_to_none,
    roc,
    rolling_std,
    rsi,
    sma,
    wma,
)
from genesis.analytics.types import FloatArray
from genesis.errors import InvalidInput

DETERMINISTIC = settings(derandomize=True, database=None, deadline=None, max_examples=60)
NAN = math.nan

# --- independent references: one plain loop per textbook formula ------------------


def sma_ref(p: Sequence[float], n: int) -> list[float]:
    out = [NAN] * len(p)
    for t in range(n - 1, len(p)):
        out[t] = sum(p[t - n + 1 : t + 1]) / n
    return out


def ema_seeded(values: Sequence[float], n: int, seed_at: int) -> list[float]:
    """EMA whose first value, at ``seed_at``, is the mean of the ``n`` values ending there."""
    out = [NAN] * len(values)
    alpha = 2.0 / (n + 1)
    prev = sum(values[seed_at - n + 1 : seed_at + 1]) / n
    out[seed_at] = prev
    for t in range(seed_at + 1, len(values)):
        prev = prev + alpha * (values[t] - prev)
        out[t] = prev
    return out


def ema_ref(p: Sequence[float], n: int) -> list[float]:
    return ema_seeded(p, n, n - 1)


def wma_ref(p: Sequence[float], n: int) -> list[float]:
    out = [NAN] * len(p)
    for t in range(n - 1, len(p)):
        out[t] = sum((k + 1) * p[t - n + 1 + k] for k in range(n)) / (n * (n + 1) / 2)
    return out


def rsi_ref(p: Sequence[float], n: int) -> list[float]:
    out = [NAN] * len(p)
    if len(p) <= n:
        return out
    gains = [max(p[t] - p[t - 1], 0.0) for t in range(1, len(p))]
    losses = [max(p[t - 1] - p[t], 0.0) for t in range(1, len(p))]
    avg_gain = sum(gains[:n]) / n
    avg_loss = sum(losses[:n]) / n
    for t in range(n, len(p)):
        if t > n:
            avg_gain = (avg_gain * (n - 1) + gains[t - 1]) / n
            avg_loss = (avg_loss * (n - 1) + losses[t - 1]) / n
        total = avg_gain + avg_loss
        out[t] = 100.0 * avg_gain / total if total > 0 else 0.0
    return out


def macd_ref(p: Sequence[float], fast: int, slow: int, signal: int) -> tuple[list[float], ...]:
    # TA-Lib convention: both EMAs start at bar slow-1, each seeded by its own SMA there.
    start = slow - 1
    fast_ema = ema_seeded(p, fast, start)
    slow_ema = ema_seeded(p, slow, start)
    line = [NAN] * len(p)
    for t in range(start, len(p)):
        line[t] = fast_ema[t] - slow_ema[t]
    first = start + signal - 1
    sig = [NAN] * len(p)
    if first < len(p):
        sig = ema_seeded(line, signal, first)
    hist = [NAN] * len(p)
    for t in range(first, len(p)):
        hist[t] = line[t] - sig[t]
    line = [v if t >= first else NAN for t, v in enumerate(line)]
    return line, sig, hist


def stddev_ref(p: Sequence[float], n: int) -> list[float]:
    out = [NAN] * len(p)
    for t in range(n - 1, len(p)):
        window = p[t - n + 1 : t + 1]
        mean = sum(window) / n
        out[t] = math.sqrt(sum((v - mean) ** 2 for v in window) / n)
    return out


def bbands_ref(p: Sequence[float], n: int, k: float) -> tuple[list[float], ...]:
    mid = sma_ref(p, n)
    sd = stddev_ref(p, n)
    return mid, [m + k * s for m, s in zip(mid, sd, strict=True)], [m - k * s for m, s in zip(mid, sd, strict=True)]


def roc_ref(p: Sequence[float], n: int) -> list[float]:
    out = [NAN] * len(p)
    for t in range(n, len(p)):
        out[t] = (p[t] / p[t - n] - 1.0) * 100.0
    return out


def assert_matches(actual: FloatArray, expected: Sequence[float], warmup: int) -> None:
    """NaN exactly over the warm-up, then agreement to 1e-9 (relative or absolute)."""
    expected_arr = np.asarray(expected, dtype=np.float64)
    assert actual.dtype == np.float64
    assert actual.shape == expected_arr.shape
    assert np.isnan(actual[:warmup]).all()
    assert np.isnan(expected_arr[:warmup]).all()
    assert not np.isnan(actual[warmup:]).any()
    np.testing.assert_allclose(actual[warmup:], expected_arr[warmup:], rtol=1e-9, atol=1e-9)


# --- agreement with the references ---------------------------------------------------

SINGLE = [
    ("sma", sma, sma_ref, lambda n: n - 1),
    ("ema", ema, ema_ref, lambda n: n - 1),
    ("wma", wma, wma_ref, lambda n: n - 1),
    ("rsi", rsi, rsi_ref, lambda n: n),
    ("stddev", rolling_std, stddev_ref, lambda n: n - 1),
    ("roc", roc, roc_ref, lambda n: n),
]


@pytest.mark.parametrize(("name", "func", "ref", "warmup"), SINGLE, ids=[s[0] for s in SINGLE])
@pytest.mark.parametrize("period", [1, 2, 5, 14, 50])
def test_single_output_indicator_matches_loop_reference_on_random_walks(
    walk: FloatArray,
    name: str,
    func: Callable[[FloatArray, int], FloatArray],
    ref: Callable[[list[float], int], list[float]],
    warmup: Callable[[int], int],
    period: int,
) -> None:
    assert_matches(func(walk, period), ref(walk.tolist(), period), warmup(period))


@pytest.mark.parametrize(("name", "func", "ref", "warmup"), SINGLE, ids=[s[0] for s in SINGLE])
@pytest.mark.parametrize("period", [3, 20, 200])
def test_single_output_indicator_matches_loop_reference_on_goog(
    goog_close: FloatArray,
    name: str,
    func: Callable[[FloatArray, int], FloatArray],
    ref: Callable[[list[float], int], list[float]],
    warmup: Callable[[int], int],
    period: int,
) -> None:
    assert_matches(func(goog_close, period), ref(goog_close.tolist(), period), warmup(period))


@pytest.mark.parametrize(("fast", "slow", "signal"), [(12, 26, 9), (2, 3, 1), (5, 35, 5), (3, 10, 20)])
def test_macd_matches_loop_reference_with_talib_seeding(
    goog_close: FloatArray, walk: FloatArray, fast: int, slow: int, signal: int
) -> None:
    for prices in (goog_close, walk):
        result = macd(prices, fast, slow, signal)
        expected = macd_ref(prices.tolist(), fast, slow, signal)
        for actual, exp in zip(result, expected, strict=True):
            assert_matches(actual, exp, slow + signal - 2)


@pytest.mark.parametrize(("period", "num_std"), [(1, 2.0), (2, 1.0), (20, 2.0), (50, 2.5)])
def test_bollinger_bands_match_loop_reference(
    goog_close: FloatArray, walk: FloatArray, period: int, num_std: float
) -> None:
    for prices in (goog_close, walk):
        bands = bollinger_bands(prices, period, num_std)
        for actual, exp in zip(bands, bbands_ref(prices.tolist(), period, num_std), strict=True):
            assert_matches(actual, exp, period - 1)


# --- TA-Lib is the engine: identical output ------------------------------------------


def test_talib_unstable_periods_are_at_their_default() -> None:
    for name in ("EMA", "RSI", "ALL"):
        assert talib.get_unstable_period(name) == 0  # type: ignore[attr-defined]


def test_indicators_equal_talib_called_directly(goog_close: FloatArray, walk: FloatArray) -> None:
    for prices in (goog_close, walk):
        pairs = [
            (sma(prices, 20), talib.SMA(prices, 20)),
            (ema(prices, 20), talib.EMA(prices, 20)),
            (wma(prices, 20), talib.WMA(prices, 20)),
            (rsi(prices, 14), talib.RSI(prices, 14)),
            (rolling_std(prices, 20), talib.STDDEV(prices, 20, 1.0)),
            (roc(prices, 10), talib.ROC(prices, 10)),
            *zip(macd(prices), talib.MACD(prices, 12, 26, 9), strict=True),
            *zip(bollinger_bands(prices, 20, 2.0), _bbands_middle_first(prices), strict=True),
        ]
        for ours, theirs in pairs:
            np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-9, equal_nan=True)


def _bbands_middle_first(prices: FloatArray) -> list[FloatArray]:
    upper, middle, lower = talib.BBANDS(prices, 20, 2.0, 2.0)
    return [middle, upper, lower]


# --- warm-up ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(INDICATORS))
def test_registry_warmup_counts_the_leading_nans_exactly(goog_close: FloatArray, name: str) -> None:
    spec = INDICATORS[name]
    variants: list[dict[str, object]] = [{}]
    variants += [{"period": n} for n in (1, 7)] if any(p.name == "period" for p in spec.params) else []
    variants += [{"fast_period": 3, "slow_period": 8, "signal_period": 4}] if name == "macd" else []
    for params in variants:
        warmup = spec.warmup(**params)
        for output, values in spec.compute(goog_close, **params).items():
            assert values.shape == goog_close.shape, output
            assert np.isnan(values[:warmup]).all(), (name, params, output)
            assert not np.isnan(values[warmup:]).any(), (name, params, output)


@pytest.mark.parametrize(
    ("name", "params", "n"), [("rsi", {"period": 14}, 14), ("roc", {"period": 10}, 10), ("macd", {}, 33)]
)
def test_series_no_longer_than_the_warmup_is_all_nan(name: str, params: dict[str, object], n: int) -> None:
    spec = INDICATORS[name]
    assert spec.warmup(**params) == n
    prices = np.linspace(10.0, 20.0, n)
    for values in spec.compute(prices, **params).values():
        assert values.shape == prices.shape
        assert np.isnan(values).all()
    for values in spec.compute(np.append(prices, 21.0), **params).values():
        assert np.isnan(values[:-1]).all() and not np.isnan(values[-1])


def test_period_one_degenerates_to_the_identity_or_zero(walk: FloatArray) -> None:
    np.testing.assert_array_equal(sma(walk, 1), walk)
    np.testing.assert_array_equal(ema(walk, 1), walk)
    np.testing.assert_array_equal(wma(walk, 1), walk)
    np.testing.assert_array_equal(rolling_std(walk, 1), np.zeros_like(walk))
    for band in bollinger_bands(walk, 1):
        np.testing.assert_array_equal(band, walk)


# --- properties ------------------------------------------------------------------------


@DETERMINISTIC
@given(
    value=st.floats(min_value=1e-6, max_value=1e9),
    n=st.integers(min_value=1, max_value=60),
    period=st.integers(min_value=1, max_value=60),
)
def test_moving_averages_of_a_constant_are_the_constant(value: float, n: int, period: int) -> None:
    prices = np.full(max(n, period), value)
    for func in (sma, ema, wma):
        values = func(prices, period)
        np.testing.assert_allclose(values[period - 1 :], value, rtol=1e-12)
        assert np.isnan(values[: period - 1]).all()


@DETERMINISTIC
@given(
    prices=st.lists(st.floats(min_value=1e-3, max_value=1e6), min_size=2, max_size=80),
    period=st.integers(min_value=1, max_value=30),
)
def test_rsi_stays_within_0_and_100(prices: list[float], period: int) -> None:
    period = min(period, len(prices))
    values = rsi(prices, period)
    valid = values[period:]
    assert ((valid >= 0.0) & (valid <= 100.0)).all()


def test_rsi_is_scale_invariant_even_for_tiny_prices(goog_close: FloatArray) -> None:
    for scale in (1e-9, 1e6):
        np.testing.assert_allclose(rsi(goog_close * scale), rsi(goog_close), atol=1e-9, equal_nan=True)


def test_rsi_of_a_flat_series_is_zero_by_talib_convention() -> None:
    assert rsi(np.full(30, 5.0), 14)[-1] == 0.0


def test_indicators_do_not_modify_their_input(goog_close: FloatArray) -> None:
    prices = goog_close.copy()
    for spec in INDICATORS.values():
        spec.compute(prices)
    np.testing.assert_array_equal(prices, goog_close)


def test_indicators_accept_lists_ints_and_strided_views(goog_close: FloatArray) -> None:
    np.testing.assert_array_equal(sma(goog_close[::2], 5), sma(goog_close[::2].copy(), 5))
    np.testing.assert_array_equal(sma([1, 2, 3, 4], 2), [NAN, 1.5, 2.5, 3.5])


# --- registry ----------------------------------------------------------------------------


def test_registry_lists_lowercase_names_with_json_ready_descriptions() -> None:
    assert set(INDICATORS) == {"sma", "ema", "wma", "rsi", "macd", "bbands", "stddev", "roc"}
    described = [spec.describe() for spec in INDICATORS.values()]
    json.dumps(described, allow_nan=False)
    macd_spec = INDICATORS["macd"].describe()
    assert [p["name"] for p in macd_spec["params"]] == ["fast_period", "slow_period", "signal_period"]
    assert macd_spec["outputs"] == ["macd", "signal", "histogram"]
    assert macd_spec["warmup"] == 33
    assert macd_spec["warmup_rule"] == "slow_period + signal_period - 2"
    assert INDICATORS["bbands"].describe()["outputs"] == ["middle", "upper", "lower"]


def test_indicator_spec_ignores_case_and_lists_supported_names_when_unknown() -> None:
    assert indicator_spec(" RSI ") is INDICATORS["rsi"]
    with pytest.raises(InvalidInput, match="unknown indicator 'kama'; supported: bbands, ema, macd"):
        indicator_spec("kama")


def test_registry_resolves_defaults_and_rejects_bad_parameters() -> None:
    spec = INDICATORS["bbands"]
    assert spec.resolve({}) == {"period": 20, "num_std": 2.0}
    assert spec.resolve({"num_std": 3}) == {"period": 20, "num_std": 3.0}
    assert spec.warmup(period=5) == 4
    with pytest.raises(InvalidInput, match=r"unknown bbands parameter 'window'; supported: period, num_std"):
        spec.resolve({"window": 3})
    # Values are the computation's to check, once, by its guards.
    with pytest.raises(InvalidInput, match="period must be an integer"):
        spec.compute(np.arange(1.0, 30.0), period=2.5)
    with pytest.raises(InvalidInput, match="num_std must be > 0"):
        spec.compute(np.arange(1.0, 30.0), num_std=0)
    with pytest.raises(InvalidInput, match="fast_period must be < slow_period"):
        INDICATORS["macd"].compute(np.arange(1.0, 50.0), fast_period=26, slow_period=12)


def test_nan_to_none_turns_the_warmup_into_nulls() -> None:
    values = sma([1.0, 2.0, 3.0], 2)
    assert nan_to_none(values) == [None, 1.5, 2.5]
    assert json.dumps(nan_to_none(values), allow_nan=False) == "[null, 1.5, 2.5]"
