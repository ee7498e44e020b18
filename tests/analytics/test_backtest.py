"""Backtest and metrics against a hand computation and a straightforward loop."""

from __future__ import annotations

import json
import math
import statistics
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genesis.analytics import SmaCrossover, run_backtest, strategy_returns
from genesis.analytics.types import FloatArray
from genesis.errors import InvalidInput

DETERMINISTIC = settings(derandomize=True, database=None, deadline=None, max_examples=150)


def backtest_ref(prices: list[float], positions: list[float], commission: float, ppy: float) -> dict[str, Any]:
    """The execution model and every metric, one bar at a time."""
    returns: list[float] = []
    equity: list[float] = []
    eq = 1.0
    peak = 1.0
    max_dd = 0.0
    trades = 0
    closed = wins = 0
    trip_sign = 0.0
    trip_base = 1.0
    prev_pos = 0.0
    for t, (price, pos) in enumerate(zip(prices, positions, strict=True)):
        bar_return = price / prices[t - 1] - 1.0 if t > 0 else 0.0
        r = prev_pos * bar_return - commission * abs(pos - prev_pos)
        if eq == 0.0:
            r = 0.0
        r = max(r, -1.0)
        eq_before = eq
        eq *= 1.0 + r
        returns.append(r)
        equity.append(eq)
        peak = max(peak, eq)
        max_dd = max(max_dd, 1.0 - eq / peak)
        trades += pos != prev_pos
        sign = math.copysign(1.0, pos) if pos != 0.0 else 0.0
        if sign != trip_sign:
            if trip_sign != 0.0:
                closed += 1
                wins += eq > trip_base
            if sign != 0.0:
                trip_base = eq_before if trip_sign == 0.0 else eq
            trip_sign = sign
        prev_pos = pos
    n = len(prices)
    mean = statistics.fmean(returns)
    std = statistics.stdev(returns)
    downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in returns) / n)
    largest = max(abs(r) for r in returns)
    years = (n - 1) / ppy
    try:
        cagr = -1.0 if equity[-1] == 0.0 else equity[-1] ** (1.0 / years) - 1.0
    except OverflowError:  # a huge gain annualised over a few bars: not representable
        cagr = None
    return {
        "equity": equity,
        "total_return": equity[-1] - 1.0,
        "cagr": cagr,
        "annualized_volatility": std * math.sqrt(ppy),
        "sharpe": None if std <= 1e-12 * largest else mean / std * math.sqrt(ppy),
        "sortino": None if downside <= 1e-12 * largest else mean / downside * math.sqrt(ppy),
        "max_drawdown": max_dd,
        "trades": trades,
        "round_trips": closed,
        "win_rate": wins / closed if closed else None,
        "exposure": sum(p != 0.0 for p in positions) / n,
        "final_equity": equity[-1],
    }


def assert_result_matches(prices: list[float], positions: list[float], commission: float, ppy: float = 252) -> None:
    result = run_backtest(prices, positions, commission=commission, periods_per_year=ppy, include_equity=True)
    expected = backtest_ref(prices, positions, commission, ppy)
    assert result.equity is not None
    np.testing.assert_allclose(result.equity, expected.pop("equity"), rtol=1e-9, atol=1e-12)
    for name, value in expected.items():
        actual = getattr(result, name)
        if value is None or actual is None:
            assert actual is None and value is None, name
        else:
            assert actual == pytest.approx(value, rel=1e-9, abs=1e-12), name


def test_five_bar_example_computed_by_hand() -> None:
    prices = [100.0, 110.0, 99.0, 108.9, 108.9]  # returns: -, +10%, -10%, +10%, 0
    positions = [1.0, 1.0, 0.0, -0.5, 0.0]
    result = run_backtest(prices, positions, commission=0.01, include_equity=True)
    # Bar returns: entry cost; +10% held; -10% held and exit cost; short entry cost; flat move, cover cost.
    bar = [-0.01, 0.10, -0.10 - 0.01, -0.005, -0.005]
    equity = [0.99, 0.99 * 1.1, 0.99 * 1.1 * 0.89, 0.99 * 1.1 * 0.89 * 0.995, 0.99 * 1.1 * 0.89 * 0.995**2]
    assert result.equity is not None
    np.testing.assert_allclose(result.equity, equity, rtol=1e-12)
    assert result.total_return == pytest.approx(0.95954213025 - 1.0, rel=1e-10)
    assert result.trades == 4
    assert result.round_trips == 2  # long bars 0-1 closed at 2; short bar 3 closed at 4
    assert result.win_rate == 0.0
    assert result.exposure == pytest.approx(0.6)
    assert result.max_drawdown == pytest.approx(1.0 - equity[-1] / equity[1], rel=1e-12)
    mean = sum(bar) / 5  # -0.006
    std = math.sqrt(sum((r - mean) ** 2 for r in bar) / 4)  # sqrt(0.02207 / 4)
    assert std == pytest.approx(math.sqrt(0.02207 / 4), rel=1e-9)
    assert result.sharpe == pytest.approx(-0.006 / std * math.sqrt(252), rel=1e-9)
    assert result.sortino == pytest.approx(-0.006 / math.sqrt(0.01225 / 5) * math.sqrt(252), rel=1e-9)
    assert result.annualized_volatility == pytest.approx(std * math.sqrt(252), rel=1e-9)
    assert result.cagr == pytest.approx(equity[-1] ** (252 / 4) - 1.0, rel=1e-9)
    assert result.bars == 5
    np.testing.assert_allclose(strategy_returns(prices, positions, commission=0.01), bar, rtol=1e-12, atol=1e-15)


@DETERMINISTIC
@given(
    data=st.lists(
        st.tuples(st.floats(min_value=1.0, max_value=1000.0), st.sampled_from([-1.0, -0.5, 0.0, 0.25, 1.0])),
        min_size=2,
        max_size=40,
    ),
    commission=st.sampled_from([0.0, 0.001, 0.05]),
    ppy=st.sampled_from([252, 365.25, 12]),
)
def test_backtest_matches_loop_reference(data: list[tuple[float, float]], commission: float, ppy: float) -> None:
    prices = [p for p, _ in data]
    positions = [q for _, q in data]
    result = run_backtest(prices, positions, commission=commission, periods_per_year=ppy)
    json.dumps(result.to_dict(), allow_nan=False)  # finite or null, always
    assert_result_matches(prices, positions, commission, ppy)


def test_sma_crossover_on_goog_matches_loop_reference(goog_close: FloatArray) -> None:
    positions = SmaCrossover(10, 30).positions(goog_close)
    assert_result_matches(goog_close.tolist(), positions.tolist(), 0.001)


def test_positions_earn_only_the_next_bars_return(walk: FloatArray) -> None:
    rng = np.random.default_rng(7)
    positions = rng.choice([-1.0, 0.0, 0.5, 1.0], walk.size)
    base = run_backtest(walk, positions, commission=0.002, include_equity=True).equity
    changed_prices, changed_positions = walk.copy(), positions.copy()
    changed_prices[200:] *= 3.0
    changed_positions[200:] = rng.choice([-1.0, 0.0, 1.0], walk.size - 200)
    other = run_backtest(changed_prices, changed_positions, commission=0.002, include_equity=True).equity
    assert base is not None and other is not None
    np.testing.assert_array_equal(base[:200], other[:200])


def test_never_trading_gives_undefined_ratios_not_nan() -> None:
    result = run_backtest([10.0, 11.0, 9.0, 12.0], [0.0, 0.0, 0.0, 0.0])
    assert result.metrics() == {
        "bars": 4, "total_return": 0.0, "cagr": 0.0, "annualized_volatility": 0.0, "sharpe": None,
        "sortino": None, "max_drawdown": 0.0, "trades": 0, "round_trips": 0, "win_rate": None,
        "exposure": 0.0, "final_equity": 1.0,
    }  # fmt: skip
    assert result.equity is None


def test_constant_returns_have_no_sharpe_and_winning_trips_count() -> None:
    prices = [100.0 * 1.01**t for t in range(30)]
    result = run_backtest(prices, [0.0] + [1.0] * 28 + [0.0])
    assert result.sharpe is not None  # bar 0 and bar 1 differ from the rest
    assert result.sortino is None  # no losing bar
    assert result.round_trips == 1 and result.win_rate == 1.0
    flat = run_backtest(prices, [1.0] * 30)
    assert flat.trades == 1 and flat.round_trips == 0 and flat.win_rate is None


def test_a_short_through_a_tripling_price_ruins_the_account_without_nan() -> None:
    result = run_backtest([100.0, 300.0, 250.0, 400.0], [-1.0, -1.0, -1.0, 0.0], include_equity=True)
    assert result.equity is not None
    assert result.equity.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert result.total_return == -1.0 and result.cagr == -1.0 and result.max_drawdown == 1.0
    json.dumps(result.to_dict(), allow_nan=False)


def test_equity_curve_is_read_only_and_json_ready(goog_close: FloatArray) -> None:
    result = run_backtest(goog_close, SmaCrossover().positions(goog_close), include_equity=True)
    assert result.equity is not None and result.equity.shape == goog_close.shape
    with pytest.raises(ValueError, match="read-only"):
        result.equity[0] = 2.0
    payload = result.to_dict()
    assert len(payload["equity"]) == goog_close.size
    json.dumps(payload, allow_nan=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prices": [1.0]}, "at least 2 values"),
        ({"positions": [0.0, 1.0]}, "one value per price"),
        ({"positions": [0.0, 2.0, 0.0]}, r"within \[-1, 1\]"),
        ({"positions": [0.0, float("nan"), 0.0]}, "finite"),
        ({"positions": ["a", "b", "c"]}, "only numbers"),
        ({"commission": -0.1}, "commission must be >= 0"),
        ({"commission": 1.0}, "commission must be < 1"),
        ({"periods_per_year": 0}, "periods_per_year must be > 0"),
        ({"prices": [1.0, 0.0, 2.0]}, "prices must be > 0"),
        ({"prices": [1e-300, 1e300, 1e300], "positions": [1.0, 1.0, 1.0]}, "orders of magnitude"),
        # Flat through the jump: 0 * inf is NaN, refused as clearly (and without a RuntimeWarning, an error here).
        ({"prices": [1.0, 0.125, 1e308, 1.0], "positions": [0.0, 0.0, 0.0, 0.0]}, "orders of magnitude"),
    ],
)
def test_bad_backtest_input_is_refused(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"prices": [1.0, 2.0, 3.0], "positions": [0.0, 1.0, 0.0], **kwargs}
    if len(args["prices"]) == 1:
        args["positions"] = [0.0]
    with pytest.raises(InvalidInput, match=message):
        run_backtest(args.pop("prices"), args.pop("positions"), **args)
