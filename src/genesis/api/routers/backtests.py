"""Backtests and strategy performance."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from genesis.analytics import SIGNAL_STRATEGIES
from genesis.api.deps import RecordIntent, RuntimeDep, allow
from genesis.api.request_audit import request_audit
from genesis.api.schemas import (
    AUTHED_ERRORS,
    EXAMPLE_PRICES,
    Params,
    PriceList,
    RegistryName,
    Strict,
    Timestamp,
    check_price_count,
    names_of,
    problem_responses,
)
from genesis.services import backtests
from genesis.services.auth import Principal
from genesis.storage.protocols import BacktestRecord
from genesis.timeutil import rfc3339, to_us

router = APIRouter(tags=["backtests"])


class BacktestCreate(Strict):
    # "Either prices or symbol; start/end with a symbol only", stated in the schema as well.
    # "Either prices or symbol; start/end with a symbol only" is a rule between fields: the service states it
    # (422 invalid-input naming both) rather than a oneOf that client generators cannot read.
    model_config = ConfigDict(json_schema_extra={
        "examples": [{"strategy": "sma_crossover", "params": {"fast": 5, "slow": 20}, "prices": EXAMPLE_PRICES,
                      "commission": 0.001}],
    })

    strategy: RegistryName = Field(max_length=32, json_schema_extra=names_of(SIGNAL_STRATEGIES),
                                   examples=["sma_crossover"], description="A signal strategy (any case).")
    params: Params = Field(default_factory=dict, examples=[{"fast": 5, "slow": 20}],
                           description="The strategy's own parameters, defaults when omitted (see GET /strategies).")
    prices: PriceList | None = Field(None, description="Closes to test on (or give symbol).")
    symbol: str | None = Field(None, max_length=32, description="A stored symbol to test on (or give prices).")
    start: Timestamp | None = Field(None, description="With symbol: first bar (inclusive).")
    end: Timestamp | None = Field(None, description="With symbol: end (exclusive).")
    commission: float = Field(0.0, ge=0, le=0.1, allow_inf_nan=False, strict=True,
                              description="Fraction of traded notional charged per trade.")
    include_equity: bool = Field(False, strict=True)


class BacktestRead(BaseModel):
    id: str
    strategy: str
    params: dict[str, Any]
    symbol: str | None
    n_prices: int
    score: float | None = Field(description="The Sharpe ratio (sqrt(252) annualised, risk-free 0).")
    metrics: dict[str, Any]
    equity: list[float] | None = None
    created_at: str


class StrategyPerformance(BaseModel):
    strategy_name: str
    last_score: float | None
    history: list[float | None]


def _read(record: BacktestRecord) -> BacktestRead:
    return BacktestRead(id=record.id, strategy=record.strategy_name, params=record.params, symbol=record.symbol,
                        n_prices=record.n_prices, score=record.score, metrics=record.metrics, equity=record.equity,
                        created_at=rfc3339(record.created_at_us))


@router.post("/backtests", name="backtests.run", status_code=201, response_model=BacktestRead,
             responses={**AUTHED_ERRORS, **problem_responses(404, 413)})
async def run(
    body: BacktestCreate, request: Request, runtime: RuntimeDep,
    principal: Annotated[Principal, allow("backtests:run", limit="backtests")], _: RecordIntent,
) -> BacktestRead:
    """Run a signal strategy over posted prices or a stored symbol, and record the result."""
    if body.prices is not None:
        check_price_count(runtime, len(body.prices))
    closes = await backtests.prices_for(
        prices=body.prices, symbol=body.symbol, start_us=to_us(body.start) if body.start else None,
        end_us=to_us(body.end) if body.end else None, store=runtime.prices,
    )
    record = await backtests.run_and_record(
        store=runtime.backtests, owner=principal.subject, strategy_name=body.strategy, params=body.params,
        closes=closes, symbol=body.symbol, commission=body.commission, include_equity=body.include_equity,
        publisher=runtime.publisher,
    )
    request_audit(request).metadata.update({"backtest_id": record.id, "strategy": record.strategy_name,
                                            "score": record.score})
    return _read(record)


@router.get("/backtests/{backtest_id}", name="backtests.read", response_model=BacktestRead,
            responses={**AUTHED_ERRORS, **problem_responses(404)})
async def read(
    backtest_id: Annotated[str, Path(max_length=64)], request: Request, runtime: RuntimeDep,
    principal: Annotated[Principal, allow("backtests:read", limit="default")],
) -> BacktestRead:
    """A recorded backtest (your own; administrators may read any)."""
    request_audit(request).metadata["backtest_id"] = backtest_id
    record = await backtests.get_backtest(store=runtime.backtests, backtest_id=backtest_id,
                                          owner=principal.subject, is_admin=principal.is_admin)
    return _read(record)


@router.get("/performance", name="performance.read", response_model=list[StrategyPerformance],
            responses=AUTHED_ERRORS)
async def performance(
    runtime: RuntimeDep, principal: Annotated[Principal, allow("performance:read", limit="performance")],
) -> list[StrategyPerformance]:
    """Each strategy's latest score and score history (oldest first), from your recorded backtests (all: admins)."""
    owner = None if principal.is_admin else principal.subject
    rows = await backtests.PerformanceTracker(runtime.backtests, owner=owner).summary()
    return [StrategyPerformance(**row) for row in rows]
