"""Price ingestion and reads, idempotent on (symbol, timestamp)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from genesis.api.deps import RecordIntent, RuntimeDep, allow
from genesis.api.request_audit import request_audit
from genesis.api.schemas import AUTHED_ERRORS, Strict, Timestamp, TimestampText, problem_responses
from genesis.errors import InvalidInput, TooLarge
from genesis.services import market
from genesis.services.auth import Principal
from genesis.storage.protocols import PricePoint
from genesis.timeutil import rfc3339, rfc3339_to_us, to_us

router = APIRouter(tags=["prices"])

PositivePrice = Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True)]
SymbolPath = Annotated[str, Path(description=market.SYMBOL_RULE, max_length=32, examples=["BTC/USD"],
                                 pattern=market.SYMBOL_PATTERN.pattern)]


class PointIn(Strict):
    """A tick (timestamp + price) or a bar (timestamp + OHLCV; ``close`` is the price)."""

    # The schema states "exactly one of price and close" too, so clients and fuzzers see the same rule.
    model_config = ConfigDict(json_schema_extra={"oneOf": [
        {"required": ["price"], "properties": {"price": {"type": "number"}}},
        {"required": ["close"], "properties": {"close": {"type": "number"}}},
    ]})

    timestamp: TimestampText = Field(description="RFC 3339; naive times are UTC.")
    price: PositivePrice | None = None
    open: PositivePrice | None = None
    high: PositivePrice | None = None
    low: PositivePrice | None = None
    close: PositivePrice | None = None
    volume: Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True)] | None = None

    @model_validator(mode="after")
    def _one_price(self) -> PointIn:
        if (self.price is None) == (self.close is None):
            raise ValueError("give exactly one of price (a tick) or close (a bar)")
        return self


class PricesIn(Strict):
    points: list[PointIn] = Field(min_length=1, description="Strictly increasing timestamps.")


class IngestOut(BaseModel):
    symbol: str
    received: int
    inserted: int
    duplicates: int


class PointOut(BaseModel):
    timestamp: str
    close: float
    open: float | None = None
    high: float | None = None
    low: float | None = None
    volume: float | None = None


class PricesOut(BaseModel):
    symbol: str
    count: int
    points: list[PointOut]


@router.post("/prices/{symbol:path}", name="prices.ingest", response_model=IngestOut,
             responses={**AUTHED_ERRORS, **problem_responses(404, 413)})
async def ingest(
    symbol: SymbolPath, body: PricesIn, request: Request, runtime: RuntimeDep,
    _: Annotated[Principal, allow("prices:write", limit="prices")], __: RecordIntent,
) -> IngestOut:
    """Ingest ticks or bars; points already stored for a timestamp are skipped (idempotent)."""
    if len(body.points) > runtime.settings.max_prices_per_request:
        raise TooLarge(f"at most {runtime.settings.max_prices_per_request} points per request")
    try:
        stamps = [rfc3339_to_us(p.timestamp) for p in body.points]
    except ValueError:
        for i, p in enumerate(body.points):  # only a failing body pays for naming the point
            try:
                rfc3339_to_us(p.timestamp)
            except ValueError as exc:
                raise InvalidInput(f"points[{i}].timestamp: {exc}") from None
        raise
    points = [PricePoint(ts, p.close if p.close is not None else p.price, p.open, p.high, p.low, p.volume)  # type: ignore[arg-type]
              for ts, p in zip(stamps, body.points, strict=True)]
    result = await market.ingest_prices(store=runtime.prices, symbol=symbol, points=points,
                                        announcer=runtime.announcer, publisher=runtime.publisher)
    request_audit(request).metadata.update({"symbol": symbol, "received": result.received,
                                            "inserted": result.inserted})
    return IngestOut(symbol=symbol, received=result.received, inserted=result.inserted,
                     duplicates=result.duplicates)


@router.get("/prices/{symbol:path}", name="prices.read", response_model=PricesOut,
            responses={**AUTHED_ERRORS, **problem_responses(404)})
async def read(
    symbol: SymbolPath, runtime: RuntimeDep, _: Annotated[Principal, allow("prices:read", limit="prices")],
    start: Annotated[Timestamp | None, Query(description="Inclusive start (RFC 3339).")] = None,
    end: Annotated[Timestamp | None, Query(description="Exclusive end (RFC 3339).")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> PricesOut:
    """Stored prices of a symbol in time order."""
    points = await market.read_prices(
        store=runtime.prices, symbol=symbol, start_us=to_us(start) if start else None,
        end_us=to_us(end) if end else None, limit=limit,
    )
    return PricesOut(symbol=symbol, count=len(points), points=[
        PointOut(timestamp=rfc3339(p.ts_us), close=p.close, open=p.open, high=p.high, low=p.low, volume=p.volume)
        for p in points
    ])
