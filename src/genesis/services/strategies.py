"""Strategy values and indicator series over posted prices."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from genesis.analytics import INDICATORS, calculator_for, nan_to_none
from genesis.services.compute import run_sized


async def calculate_strategy(*, strategy_name: str, prices: Sequence[float], period: int) -> float:
    """The latest value of the named single-output indicator (the original ``/strategy/calculate``).

    Raises:
        InvalidInput: the name is unknown (``details["supported"]`` lists the names), or the indicator refuses
            the prices or the period.
    """
    calculator = calculator_for(strategy_name, period)
    return await run_sized(len(prices), calculator.calculate, prices)


@dataclass(frozen=True, slots=True)
class IndicatorSeries:
    name: str
    params: dict[str, Any]
    warmup: int
    values: dict[str, list[float | None]]


async def compute_indicator(*, name: str, prices: Sequence[float], params: Mapping[str, Any]) -> IndicatorSeries:
    """The whole series of an indicator; warm-up values are None.

    Raises:
        InvalidInput: the indicator or a parameter name is unknown (``details["supported"]`` lists the accepted
            ones), or the indicator refuses the prices or a parameter value.
    """
    spec = INDICATORS.lookup(name)
    resolved = spec.resolve(params)

    def work() -> IndicatorSeries:
        outputs = spec.compute(prices, **resolved)  # the indicator's guards check every value, once
        return IndicatorSeries(spec.name, resolved, spec.warmup(**resolved),
                               {out: nan_to_none(values) for out, values in outputs.items()})

    return await run_sized(len(prices), work)
