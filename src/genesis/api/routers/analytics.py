"""Strategy values and indicator series over posted prices."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from genesis.analytics import INDICATORS, SIGNAL_STRATEGIES, STRATEGY_CALCULATORS
from genesis.api.deps import RuntimeDep, access
from genesis.api.request_audit import request_audit
from genesis.api.schemas import (
    AUTHED_ERRORS,
    BodyInt,
    Params,
    PriceList,
    Strict,
    check_price_count,
    problem_responses,
)
from genesis.errors import InvalidInput
from genesis.services import strategies
from genesis.services.auth import Principal

router = APIRouter(tags=["analytics"])
NOT_FINITE = ("{what} is not a finite number for these prices (they overflow double precision, or the value is "
              "undefined for them)")
Runner = Annotated[Principal, access("analytics:run", limit="strategy")]


class StrategyCalculate(Strict):
    strategy_name: str = Field(min_length=1, max_length=32, examples=["sma"],
                               description=f"One of {', '.join(sorted(STRATEGY_CALCULATORS))} (any case).")
    # Swagger UI's "Try it out" sends these examples as they are: they must succeed (a generated 0 price fails).
    prices: PriceList = Field(examples=[[101.2, 102.5, 101.9, 103.1, 104.0]])
    period: BodyInt = Field(10, ge=1, le=100_000, examples=[3])


class StrategyResult(BaseModel):
    result: float


class IndicatorRequest(Strict):
    prices: PriceList
    params: Params = Field(default_factory=dict, description="The indicator's own parameters (see GET /indicators).")


class IndicatorSeriesOut(BaseModel):
    name: str
    params: dict[str, Any]
    warmup: int = Field(description="Leading values that are undefined (null).")
    values: dict[str, list[float | None]]


@router.post("/strategy/calculate", name="strategy.calculate", response_model=StrategyResult,
             responses={**AUTHED_ERRORS, **problem_responses(400, 413)})
async def calculate(body: StrategyCalculate, request: Request, runtime: RuntimeDep, _: Runner) -> StrategyResult:
    """The latest value of an indicator (sma, ema, wma, rsi, roc, stddev) over the posted prices."""
    check_price_count(runtime, len(body.prices))
    request_audit(request).metadata.update({"strategy": body.strategy_name, "period": body.period,
                                            "n_prices": len(body.prices)})
    value = await strategies.calculate_strategy(strategy_name=body.strategy_name, prices=body.prices,
                                                period=body.period)
    if not math.isfinite(value):  # JSON has no NaN: serialised, it would become a null the schema does not allow
        raise InvalidInput(NOT_FINITE.format(what=f"the {body.strategy_name.strip().lower()} value"))
    return StrategyResult(result=value)


@router.get("/indicators", name="indicators.list", responses=AUTHED_ERRORS)
async def list_indicators(_: Runner) -> list[dict[str, Any]]:
    """Every indicator with its parameters, outputs and warm-up."""
    return [spec.describe() for _, spec in sorted(INDICATORS.items())]


@router.get("/strategies", name="strategies.list", responses=AUTHED_ERRORS)
async def list_strategies(_: Runner) -> dict[str, Any]:
    """Names accepted by /strategy/calculate and the signal strategies accepted by /backtests."""
    return {"calculators": sorted(STRATEGY_CALCULATORS),
            "signal_strategies": [spec.describe() for _, spec in sorted(SIGNAL_STRATEGIES.items())]}


@router.post("/indicators/{name}", name="indicators.compute", response_model=IndicatorSeriesOut,
             responses={**AUTHED_ERRORS, **problem_responses(404, 413)})
async def compute(
    name: Annotated[str, Path(max_length=32, examples=["rsi"])], body: IndicatorRequest, request: Request,
    runtime: RuntimeDep, _: Runner,
) -> IndicatorSeriesOut:
    """The whole indicator series; undefined warm-up values are null."""
    check_price_count(runtime, len(body.prices))
    request_audit(request).metadata.update({"indicator": name, "n_prices": len(body.prices)})
    series = await strategies.compute_indicator(name=name, prices=body.prices, params=body.params)
    for output, values in series.values.items():
        if not all(v is not None and math.isfinite(v) for v in values[series.warmup:]):
            raise InvalidInput(NOT_FINITE.format(what=f"{series.name} {output} after the warm-up"))
    return IndicatorSeriesOut(name=series.name, params=series.params, warmup=series.warmup, values=series.values)
