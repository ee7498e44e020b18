"""Bad input is refused once, by the guard, with a message naming what is wrong."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from genesis.analytics import INDICATORS
from genesis.analytics.validation import as_positions, as_prices, check_float, check_int, check_period
from genesis.errors import InvalidInput

GOOD = [10.0, 11.0, 12.5, 11.5, 13.0, 12.0, 12.2, 12.9, 13.4, 14.0]

BAD_PRICES: list[tuple[str, Any, str]] = [
    ("empty", [], "prices must not be empty"),
    ("2-D", [[1.0, 2.0], [3.0, 4.0]], r"prices must be 1-D, got a 2-D array of shape \(2, 2\)"),
    ("scalar", 5.0, "prices must be 1-D, got a scalar"),
    ("nan", [1.0, float("nan"), 2.0], r"prices must be finite \(prices\[1\] is nan\)"),
    ("inf", [1.0, 2.0, float("inf")], r"prices must be finite \(prices\[2\] is inf\)"),
    ("zero", [1.0, 0.0, 2.0], r"prices must be > 0 \(prices\[1\] is 0.0\)"),
    ("negative", [1.0, 2.0, -3.0], r"prices must be > 0 \(prices\[2\] is -3.0\)"),
    ("string", "1,2,3", "got a string"),
    ("strings", ["1", "2", "3"], "must contain only numbers"),
    ("none", [1.0, None, 2.0], "must contain only numbers"),
    ("bools", [True, False, True], "must contain only numbers"),
    ("complex", [1 + 1j, 2.0], "must contain only numbers"),
    ("ragged", [[1.0, 2.0], [3.0]], "1-D sequence of numbers"),
    ("dict", {"a": 1.0}, "prices must be 1-D"),
]


@pytest.mark.parametrize(("label", "prices", "message"), BAD_PRICES, ids=[b[0] for b in BAD_PRICES])
@pytest.mark.parametrize("name", sorted(INDICATORS))
def test_every_indicator_refuses_bad_prices(name: str, label: str, prices: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        INDICATORS[name].compute(prices)


BAD_PERIODS: list[tuple[object, str]] = [
    (0, r"period must be >= 1 \(got period=0\)"),
    (-3, "period must be >= 1"),
    (11, r"period must be <= the number of prices \(got period=11, 10 prices\)"),
    (2.5, r"period must be an integer \(got 2.5\)"),
    (5.0, r"period must be an integer \(got 5.0\)"),
    ("5", "period must be an integer"),
    (True, "period must be an integer"),
    (None, "period must be an integer"),
]


@pytest.mark.parametrize(("period", "message"), BAD_PERIODS, ids=[repr(b[0]) for b in BAD_PERIODS])
@pytest.mark.parametrize("name", ["sma", "ema", "wma", "rsi", "bbands", "stddev", "roc"])
def test_every_windowed_indicator_refuses_bad_periods(name: str, period: object, message: str) -> None:
    func: Callable[..., Any] = INDICATORS[name].function
    with pytest.raises(InvalidInput, match=message):
        func(GOOD, period)


def test_period_error_message_states_both_numbers() -> None:
    with pytest.raises(InvalidInput) as info:
        INDICATORS["sma"].compute(np.linspace(1.0, 2.0, 20), period=50)
    assert str(info.value) == "period must be <= the number of prices (got period=50, 20 prices)"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"fast_period": 1, "slow_period": 5}, "fast_period must be >= 2"),
        ({"slow_period": 11}, "slow_period must be <= the number of prices"),
        ({"fast_period": 5, "slow_period": 5}, "fast_period must be < slow_period"),
        ({"fast_period": 2, "slow_period": 5, "signal_period": 0}, "signal_period must be >= 1"),
    ],
)
def test_macd_refuses_bad_periods(params: dict[str, int], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        INDICATORS["macd"].function(GOOD, **params)


@pytest.mark.parametrize("num_std", [0.0, -1.0, float("nan"), float("inf"), "2", True])
def test_bollinger_refuses_bad_width(num_std: object) -> None:
    with pytest.raises(InvalidInput, match="num_std"):
        INDICATORS["bbands"].function(GOOD, 5, num_std)


def test_guard_returns_contiguous_float64_and_accepts_decimals_and_integers() -> None:
    samples: list[Any] = [
        [1, 2, 3],
        [Decimal("1.5"), Decimal("2.5")],
        np.arange(1, 5, dtype=np.int32),
        np.arange(1.0, 9.0)[::2],
    ]
    for values in samples:
        arr = as_prices(values)
        assert arr.dtype == np.float64
        assert arr.flags.c_contiguous
    same = np.arange(1.0, 4.0)
    assert as_prices(same) is same  # no copy when nothing needs converting


def test_guard_refuses_decimal_nan() -> None:
    with pytest.raises(InvalidInput, match="finite"):
        as_prices(np.array([Decimal("1"), Decimal("NaN")], dtype=object))


def test_positions_guard_checks_length_range_and_finiteness() -> None:
    assert as_positions([0.0, 0.5, -1.0], 3).tolist() == [0.0, 0.5, -1.0]
    with pytest.raises(InvalidInput, match=r"one value per price \(got 2 positions, 3 prices\)"):
        as_positions([0.0, 1.0], 3)
    with pytest.raises(InvalidInput, match=r"within \[-1, 1\] \(positions\[1\] is 1.5\)"):
        as_positions([0.0, 1.5, 0.0], 3)
    with pytest.raises(InvalidInput, match="finite"):
        as_positions([0.0, float("nan"), 0.0], 3)


def test_scalar_guards() -> None:
    assert check_int(np.int64(3), name="n", minimum=1) == 3
    assert check_period(3, 3) == 3
    assert check_float(np.float32(0.5), name="x", minimum=0.0) == 0.5
    with pytest.raises(InvalidInput, match=r"x must be < 1 \(got x=1\)"):
        check_float(1, name="x", maximum=1.0, exclusive_maximum=True)
    with pytest.raises(InvalidInput, match=r"n must be <= 5 \(got n=6\)"):
        check_int(6, name="n", minimum=1, maximum=5)
