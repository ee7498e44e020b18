"""Strategy values and indicator series over posted prices."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from genesis.analytics import INDICATORS, SIGNAL_STRATEGIES, STRATEGY_CALCULATORS
from genesis.api.deps import RuntimeDep, allow
from genesis.api.request_audit import request_audit
from genesis.api.schemas import (
    AUTHED_ERRORS,
    EXAMPLE_PRICES,
    BodyInt,
    Params,
    PriceList,
    RegistryName,
    Strict,
    check_price_count,
    names_of,
    problem_responses,
)
from genesis.errors import InvalidInput
from genesis.services import strategies
from genesis.services.auth import Principal

router = APIRouter(tags=["analytics"])
NOT_FINITE = ("{what} is not a finite number for these prices (they overflow double precision, or the value is "
              "undefined for them)")
Runner = Annotated[Principal, allow("analytics:run", limit="strategy")]


# Documented from the table; the indicator's own guard checks the period (against the number of prices), once.
PERIOD_MINIMUM = int(min(param.minimum for spec in STRATEGY_CALCULATORS.values() for param in spec.params
                         if param.name == "period"))


class StrategyCalculate(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"strategy_name": "sma", "prices": [101.2, 102.5, 101.9, 103.1, 104.0], "period": 3},
    ]})

    strategy_name: RegistryName = Field(max_length=32, json_schema_extra=names_of(STRATEGY_CALCULATORS),
                                        examples=["sma"], description="A single-output indicator (any case).")
    prices: PriceList = Field(examples=[[101.2, 102.5, 101.9, 103.1, 104.0]])
    period: BodyInt = Field(10, json_schema_extra={"minimum": PERIOD_MINIMUM}, examples=[3],
                            description="Look-back in prices, at most the number of prices.")


class StrategyResult(BaseModel):
    result: float


class IndicatorRequest(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"prices": EXAMPLE_PRICES, "params": {}}]})

    prices: PriceList
    params: Params = Field(default_factory=dict, examples=[{"period": 14}],
                           description="The indicator's own parameters, defaults when omitted (see GET /indicators).")


class IndicatorSeriesOut(BaseModel):
    name: str
    params: dict[str, Any]
    warmup: int = Field(description="Leading values that are undefined (null).")
    values: dict[str, list[float | None]]


@router.post("/strategy/calculate", name="strategy.calculate", response_model=StrategyResult,
             responses={**AUTHED_ERRORS, **problem_responses(413)})
async def calculate(body: StrategyCalculate, request: Request, runtime: RuntimeDep, _: Runner) -> StrategyResult:
    """The latest value of a single-output indicator over the posted prices."""
    check_price_count(runtime, len(body.prices))
    request_audit(request).metadata.update({"strategy": body.strategy_name, "period": body.period,
                                            "n_prices": len(body.prices)})
    value = await strategies.calculate_strategy(strategy_name=body.strategy_name, prices=body.prices,
                                                period=body.period)
    if not math.isfinite(value):  # JSON has no NaN: serialised, it would become a null the schema does not allow
        raise InvalidInput(NOT_FINITE.format(what=f"the {body.strategy_name} value"))
    return StrategyResult(result=value)


@router.get("/indicators", name="indicators.list", responses=AUTHED_ERRORS)
async def list_indicators(_: Runner) -> list[dict[str, Any]]:
    """Every indicator with its parameters, outputs and warm-up."""
    return INDICATORS.describe()


@router.get("/strategies", name="strategies.list", responses=AUTHED_ERRORS)
async def list_strategies(_: Runner) -> dict[str, Any]:
    """Names accepted by /strategy/calculate and the signal strategies accepted by /backtests."""
    return {"calculators": list(STRATEGY_CALCULATORS.names), "signal_strategies": SIGNAL_STRATEGIES.describe()}


@router.post("/indicators/{name}", name="indicators.compute", response_model=IndicatorSeriesOut,
             responses={**AUTHED_ERRORS, **problem_responses(413)})
async def compute(
    name: Annotated[RegistryName, Path(max_length=32, json_schema_extra=names_of(INDICATORS), examples=["rsi"],
                                       description="An indicator (any case).")],
    body: IndicatorRequest, request: Request,
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
