"""The one table: every view, lookup, default and declared bound is read from it."""

from __future__ import annotations

import inspect
import re
from typing import Any

import numpy as np
import pytest

from genesis.analytics import (
    EMA,
    INDICATORS,
    ROC,
    RSI,
    SIGNAL_STRATEGIES,
    SMA,
    STRATEGY_CALCULATORS,
    TABLE,
    WMA,
    IndicatorSpec,
    ParamSpec,
    Registry,
    SignalStrategySpec,
    StdDev,
    calculator_for,
    indicator_spec,
    signal_strategy_for,
)
from genesis.analytics.types import FloatArray
from genesis.errors import InvalidInput

VIEWS: list[Registry[Any]] = [INDICATORS, STRATEGY_CALCULATORS, SIGNAL_STRATEGIES]
VIEW_IDS = ["indicators", "calculators", "signal_strategies"]
WAVE: FloatArray = 100.0 + 5.0 * np.sin(np.arange(80) / 3.0)  # long enough for every default (MACD: 34)


# --- the views are read from the table ------------------------------------------------------------


def test_every_entry_of_the_table_is_in_exactly_its_views() -> None:
    indicators = [spec for spec in TABLE if isinstance(spec, IndicatorSpec)]
    strategies = [spec for spec in TABLE if isinstance(spec, SignalStrategySpec)]
    assert len(indicators) + len(strategies) == len(TABLE)
    # The same objects, not copies: a view cannot drift from the table.
    assert sorted(map(id, INDICATORS.values())) == sorted(map(id, indicators))
    assert sorted(map(id, SIGNAL_STRATEGIES.values())) == sorted(map(id, strategies))
    assert {spec.name for spec in indicators} == {"sma", "ema", "wma", "rsi", "macd", "bbands", "stddev", "roc"}
    assert {spec.name for spec in strategies} == {"sma_crossover", "rsi"}


def test_every_single_output_indicator_is_a_calculator_with_a_period() -> None:
    single = {name for name, spec in INDICATORS.items() if len(spec.outputs) == 1}
    assert set(STRATEGY_CALCULATORS) == single == {"sma", "ema", "wma", "rsi", "roc", "stddev"}
    for name, spec in STRATEGY_CALCULATORS.items():
        assert spec is INDICATORS[name]
        assert [param.name for param in spec.params] == ["period"], name


@pytest.mark.parametrize("view", VIEWS, ids=VIEW_IDS)
def test_names_iteration_listing_and_lookup_agree_in_one_order(view: Registry[Any]) -> None:
    assert list(view) == list(view.names) == sorted(view.names)
    assert [entry["name"] for entry in view.describe()] == list(view.names)
    for name in view.names:
        assert view.lookup(name) is view[name]
        assert view.lookup(f"  {name.upper()}\t") is view[name]


def test_the_aliases_of_the_original_calculators_are_read_from_the_table(goog_close: FloatArray) -> None:
    for alias, name in ((SMA, "sma"), (EMA, "ema"), (WMA, "wma"), (RSI, "rsi"), (ROC, "roc"), (StdDev, "stddev")):
        calculator = alias(7)
        assert calculator.spec is STRATEGY_CALCULATORS[name]
        assert calculator.calculate(goog_close) == float(INDICATORS[name].compute(goog_close, period=7)["value"][-1])
        default = alias()
        assert default.period == STRATEGY_CALCULATORS[name].params[0].default
    assert repr(SMA(5)) == "IndicatorCalculator('sma', period=5)"


# --- one lookup, one error ---------------------------------------------------------------------


@pytest.mark.parametrize(("view", "kind"), list(zip(VIEWS, ["indicator", "strategy", "signal strategy"], strict=True)),
                         ids=VIEW_IDS)
@pytest.mark.parametrize("name", ["kama", "", "sma crossover", None, 5, ["sma"]])
def test_an_unknown_name_is_one_error_listing_the_supported_names(view: Registry[Any], kind: str, name: object) -> None:
    with pytest.raises(InvalidInput) as info:
        view.lookup(name)
    error = info.value
    assert error.details == {"supported": list(view.names)}
    assert str(error) == f"unknown {kind} {name!r}; supported: {', '.join(view.names)}"
    assert error.http_status == 422


def test_the_library_lookups_are_the_views_lookup() -> None:
    assert indicator_spec(" MACD ") is INDICATORS["macd"]
    assert calculator_for("Stddev", 4).spec is STRATEGY_CALCULATORS["stddev"]
    for lookup in (indicator_spec, calculator_for, signal_strategy_for):
        with pytest.raises(InvalidInput, match=r"^unknown .*'vwap'; supported: ") as info:
            lookup("vwap")
        assert info.value.details["supported"]


@pytest.mark.parametrize("spec", TABLE, ids=lambda spec: f"{type(spec).__name__}.{spec.name}")
def test_an_unknown_parameter_is_the_same_error_listing_the_accepted_ones(
    spec: IndicatorSpec | SignalStrategySpec,
) -> None:
    accepted = [param.name for param in spec.params]
    with pytest.raises(InvalidInput) as info:
        spec.resolve({"window": 3, "Period": 2})  # parameter names are case-sensitive
    assert info.value.details == {"supported": accepted}
    assert str(info.value) == f"unknown {spec.name} parameters 'Period', 'window'; supported: {', '.join(accepted)}"


# --- defaults and bounds: declared once, enforced by the guards --------------------------------------


def _callable(spec: IndicatorSpec | SignalStrategySpec) -> Any:
    return spec.function if isinstance(spec, IndicatorSpec) else spec.factory


@pytest.mark.parametrize("spec", TABLE, ids=lambda spec: f"{type(spec).__name__}.{spec.name}")
def test_defaults_are_the_functions_own(spec: IndicatorSpec | SignalStrategySpec, walk: FloatArray) -> None:
    signature = inspect.signature(_callable(spec))
    assert {p.name: p.default for p in spec.params} == {p.name: signature.parameters[p.name].default
                                                        for p in spec.params}
    assert spec.resolve({}) == {p.name: p.default for p in spec.params}
    if isinstance(spec, IndicatorSpec):
        result = spec.function(walk)
        arrays = (result,) if isinstance(result, np.ndarray) else tuple(result)
        for computed, direct in zip(spec.compute(walk).values(), arrays, strict=True):
            np.testing.assert_array_equal(computed, direct)
    else:
        np.testing.assert_array_equal(spec.create().positions(walk), spec.factory().positions(walk))


def _run(spec: IndicatorSpec | SignalStrategySpec, prices: FloatArray, **params: object) -> None:
    if isinstance(spec, IndicatorSpec):
        spec.compute(prices, **params)
    else:
        spec.create(**params).positions(prices)


def _bounds() -> list[tuple[IndicatorSpec | SignalStrategySpec, ParamSpec, str]]:
    cases = [(spec, param, "minimum") for spec in TABLE for param in spec.params]
    cases += [(spec, param, "maximum") for spec in TABLE for param in spec.params if param.maximum is not None]
    return cases


BOUNDS = _bounds()
BOUND_IDS = [f"{type(spec).__name__}.{spec.name}.{param.name}.{side}" for spec, param, side in BOUNDS]

# A bound that the defaults of the other parameters would break by a rule between parameters (fast < slow):
# the values those need so that the bound itself can be reached.
COMPANIONS: dict[tuple[str, str, str], dict[str, object]] = {
    ("macd", "slow_period", "minimum"): {"fast_period": 2},
    ("sma_crossover", "slow", "minimum"): {"fast": 1},
}
# Bounds no valid set of parameters reaches: oversold < overbought < 100 keeps oversold off 100 and
# overbought off 0. Only their refusal is checked.
UNREACHABLE = {("rsi", "oversold", "maximum"), ("rsi", "overbought", "minimum")}


@pytest.mark.parametrize(("spec", "param", "side"), BOUNDS, ids=BOUND_IDS)
def test_each_declared_bound_is_the_bound_the_guard_enforces(
    spec: IndicatorSpec | SignalStrategySpec, param: ParamSpec, side: str
) -> None:
    bound = param.minimum if side == "minimum" else param.maximum
    assert bound is not None
    exclusive = param.exclusive_minimum if side == "minimum" else param.exclusive_maximum
    outward = -1.0 if side == "minimum" else 1.0
    inside: float
    outside: float
    if param.kind == "integer":
        inside, outside = int(bound), int(bound + outward)
        message = f"{param.name} must be {'>=' if side == 'minimum' else '<='} {int(bound)} "
    else:
        inside = float(np.nextafter(bound, bound - outward)) if exclusive else bound
        outside = bound if exclusive else float(np.nextafter(bound, bound + outward))
        relation = (">" if side == "minimum" else "<") + ("" if exclusive else "=")
        message = f"{param.name} must be {relation} {bound:g} "
    with pytest.raises(InvalidInput, match="^" + re.escape(message)):
        _run(spec, WAVE, **{param.name: outside})
    if (spec.name, param.name, side) not in UNREACHABLE:
        _run(spec, WAVE, **COMPANIONS.get((spec.name, param.name, side), {}), **{param.name: inside})
