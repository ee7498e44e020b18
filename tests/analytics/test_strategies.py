"""Last-value calculators and signal strategies, against loop references."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genesis.analytics import (
    INDICATORS,
    RSI,
    SIGNAL_STRATEGIES,
    SMA,
    STRATEGY_CALCULATORS,
    RsiStrategy,
    SmaCrossover,
    calculator_for,
    rsi,
    signal_strategy_for,
    sma,
)
from genesis.analytics.types import FloatArray
from genesis.errors import InvalidInput

# --- calculators -----------------------------------------------------------------------


def test_sma_and_rsi_calculate_the_last_indicator_value(goog_close: FloatArray) -> None:
    window = goog_close[-20:].tolist()
    assert SMA(20).calculate(goog_close) == pytest.approx(sum(window) / 20, rel=1e-12)
    assert SMA(3).calculate([1.0, 2.0, 3.0, 4.0]) == pytest.approx(3.0)
    assert RSI(14).calculate(goog_close) == float(rsi(goog_close, 14)[-1])
    assert isinstance(SMA(5).calculate(goog_close), float)


@pytest.mark.parametrize("name", sorted(STRATEGY_CALCULATORS))
def test_every_registered_calculator_returns_its_indicators_last_value(goog_close: FloatArray, name: str) -> None:
    calc = calculator_for(name, 7)
    assert calc.calculate(goog_close) == float(calc.values(goog_close)[-1])
    assert np.isfinite(calc.calculate(goog_close))


def test_calculator_names_are_case_insensitive_and_unknown_names_list_the_supported_ones() -> None:
    assert set(STRATEGY_CALCULATORS) == {"sma", "ema", "wma", "rsi", "roc", "stddev"}
    assert calculator_for(" SMA ", 5).spec is INDICATORS["sma"]
    assert calculator_for("Rsi").period == 14
    assert SMA() == calculator_for("sma", 20)
    with pytest.raises(InvalidInput, match="unknown strategy 'vwap'; supported: ema, roc, rsi, sma, stddev, wma"):
        calculator_for("vwap", 5)


def test_calculator_needs_enough_prices_for_one_value() -> None:
    assert RSI(3).calculate([1.0, 2.0, 3.0, 2.5]) == pytest.approx(100.0 * 2.0 / 2.5)
    with pytest.raises(InvalidInput, match="rsi with period=3 needs at least 4 prices"):
        RSI(3).calculate([1.0, 2.0, 3.0])
    with pytest.raises(InvalidInput, match=r"period must be <= the number of prices \(got period=5, 2 prices\)"):
        SMA(5).calculate([1.0, 2.0])


@pytest.mark.parametrize("period", [0, -1, 2.5, "3", True])
def test_calculator_refuses_bad_periods(period: object) -> None:
    calculator = calculator_for("sma", period)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="period"):
        calculator.calculate([1.0, 2.0, 3.0])


# --- signal strategies ---------------------------------------------------------------------


def crossover_ref(prices: list[float], fast: int, slow: int) -> list[float]:
    out = []
    for t in range(len(prices)):
        if t < slow - 1:
            out.append(0.0)
            continue
        fast_avg = sum(prices[t - fast + 1 : t + 1]) / fast
        slow_avg = sum(prices[t - slow + 1 : t + 1]) / slow
        out.append(1.0 if fast_avg > slow_avg else 0.0)
    return out


def rsi_strategy_ref(values: FloatArray, oversold: float, overbought: float) -> list[float]:
    position = 0.0
    out = []
    for t, value in enumerate(values.tolist()):
        previous = values[t - 1] if t > 0 else float("nan")
        if value < oversold and previous >= oversold:
            position = 1.0
        elif value > overbought:
            position = 0.0
        out.append(position)
    return out


@pytest.mark.parametrize(("fast", "slow"), [(10, 30), (1, 2), (5, 50)])
def test_sma_crossover_matches_loop_reference(goog_close: FloatArray, walk: FloatArray, fast: int, slow: int) -> None:
    for prices in (goog_close, walk):
        positions = SmaCrossover(fast, slow).positions(prices)
        # A tie between the averages is decided by rounding; compare away from ties.
        diff = sma(prices, fast) - sma(prices, slow)
        clear = ~(np.abs(diff) < 1e-9)
        expected = np.array(crossover_ref(prices.tolist(), fast, slow))
        np.testing.assert_array_equal(positions[clear], expected[clear])
        assert (positions[: slow - 1] == 0.0).all()


@pytest.mark.parametrize(("period", "oversold", "overbought"), [(14, 30.0, 70.0), (5, 20.0, 80.0), (2, 45.0, 55.0)])
def test_rsi_strategy_matches_loop_state_machine(
    goog_close: FloatArray, walk: FloatArray, period: int, oversold: float, overbought: float
) -> None:
    for prices in (goog_close, walk):
        positions = RsiStrategy(period, oversold, overbought).positions(prices)
        expected = rsi_strategy_ref(rsi(prices, period), oversold, overbought)
        np.testing.assert_array_equal(positions, expected)
        assert set(np.unique(positions)) <= {0.0, 1.0}
        assert 0.0 < positions.mean() < 1.0  # it does trade on these series


def test_rsi_strategy_enters_on_the_cross_and_holds_until_overbought() -> None:
    # Up, sharp drop (RSI crosses below 30), drift, rally (RSI above 70), flat.
    prices = np.array([10, 11, 12, 13, 9, 8.5, 8.6, 8.7, 12, 14, 15, 15.5], dtype=np.float64)
    values = rsi(prices, 3)
    positions = RsiStrategy(3, 30.0, 70.0).positions(prices)
    entry = int(np.argmax((values < 30.0) & (np.roll(values, 1) >= 30.0)))
    assert positions[:entry].sum() == 0.0
    assert positions[entry] == 1.0
    exit_ = entry + int(np.argmax(values[entry:] > 70.0))
    assert (positions[entry:exit_] == 1.0).all()
    assert positions[exit_] == 0.0


def test_signal_strategy_parameters_are_validated() -> None:
    with pytest.raises(InvalidInput, match=r"fast must be < slow \(got fast=30, slow=10\)"):
        SmaCrossover(30, 10)
    with pytest.raises(InvalidInput, match="oversold must be < overbought"):
        RsiStrategy(14, 70.0, 30.0)
    with pytest.raises(InvalidInput, match="overbought must be < 100"):
        RsiStrategy(14, 30.0, 100.0)
    with pytest.raises(InvalidInput, match="period must be <= the number of prices"):
        SmaCrossover(2, 30).positions(np.arange(1.0, 11.0))


def test_signal_registry_describes_and_builds_strategies(goog_close: FloatArray) -> None:
    assert set(SIGNAL_STRATEGIES) == {"sma_crossover", "rsi"}
    json.dumps([spec.describe() for spec in SIGNAL_STRATEGIES.values()], allow_nan=False)
    described = SIGNAL_STRATEGIES["rsi"].describe()
    assert [p["name"] for p in described["params"]] == ["period", "oversold", "overbought"]
    assert described["position_range"] == [0.0, 1.0]
    strategy = signal_strategy_for("SMA_Crossover", fast=5, slow=20)
    np.testing.assert_array_equal(strategy.positions(goog_close), SmaCrossover(5, 20).positions(goog_close))
    assert strategy.warmup == 19
    assert signal_strategy_for("rsi").warmup == 14
    with pytest.raises(InvalidInput, match=r"unknown sma_crossover parameter 'period'; supported: fast, slow"):
        signal_strategy_for("sma_crossover", period=3)
    with pytest.raises(InvalidInput, match="unknown signal strategy 'macd'; supported: rsi, sma_crossover"):
        signal_strategy_for("macd")
