"""Strategy values and indicator series over posted prices."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from genesis.analytics import INDICATORS, STRATEGY_CALCULATORS, calculator_for, nan_to_none
from genesis.errors import InvalidInput, NotFound
from genesis.services.compute import run_sized


def _check_period(period: int, n: int) -> None:
    if period > n:
        raise InvalidInput(f"period must be <= the number of prices (got period={period}, {n} prices)")


async def calculate_strategy(*, strategy_name: str, prices: Sequence[float], period: int) -> float:
    """The latest value of the named indicator (the original ``/strategy/calculate``)."""
    name = strategy_name.strip().lower()
    if name not in STRATEGY_CALCULATORS:
        raise InvalidInput(
            f"unsupported strategy {strategy_name!r}; supported: {', '.join(sorted(STRATEGY_CALCULATORS))}",
            details={"supported": sorted(STRATEGY_CALCULATORS)},
        )
    _check_period(period, len(prices))
    calculator = calculator_for(name, period)
    return await run_sized(len(prices), calculator.calculate, prices)


@dataclass(frozen=True, slots=True)
class IndicatorSeries:
    name: str
    params: dict[str, Any]
    warmup: int
    values: dict[str, list[float | None]]


async def compute_indicator(*, name: str, prices: Sequence[float], params: Mapping[str, Any]) -> IndicatorSeries:
    """The whole series of an indicator; warm-up values are None."""
    key = name.strip().lower()
    spec = INDICATORS.get(key)
    if spec is None:
        raise NotFound(f"unknown indicator {name!r}; supported: {', '.join(sorted(INDICATORS))}")
    resolved = spec.resolve(params)
    for param_name, value in resolved.items():
        if param_name.endswith("period") and isinstance(value, int):
            _check_period(value, len(prices))

    def work() -> IndicatorSeries:
        outputs = spec.compute(prices, **resolved)
        return IndicatorSeries(key, dict(resolved), spec.warmup(**resolved),
                               {out: nan_to_none(values) for out, values in outputs.items()})

    return await run_sized(len(prices), work)
