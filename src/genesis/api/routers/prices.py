"""Price ingestion and reads, idempotent on (symbol, timestamp)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from genesis.api.bulk_body import openapi_body, read_list_body
from genesis.api.deps import RecordIntent, RuntimeDep, allow
from genesis.api.request_audit import request_audit
from genesis.api.schemas import AUTHED_ERRORS, Strict, Timestamp, TimestampText, problem_responses
from genesis.audit import new_event
from genesis.errors import InvalidInput
from genesis.runtime import Runtime
from genesis.services import market
from genesis.services.auth import Principal
from genesis.storage.protocols import PricePoint
from genesis.timeutil import rfc3339_to_us, to_us

router = APIRouter(tags=["prices"])

PositivePrice = Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True)]
SymbolPath = Annotated[str, Path(description=market.SYMBOL_RULE, max_length=market.SYMBOL_MAX_LENGTH,
                                 examples=["BTC/USD"],
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
             responses={**AUTHED_ERRORS, **problem_responses(404, 409, 413)}, openapi_extra=openapi_body(PricesIn))
async def ingest(
    symbol: SymbolPath, request: Request, runtime: RuntimeDep,
    principal: Annotated[Principal, allow("prices:write", limit="prices")], __: RecordIntent,
    on_conflict: Annotated[Literal["refuse", "replace"], Query(
        description="A point stored with other values at its timestamp: refuse the request (409, nothing stored, "
                    "the stored values in the answer) or replace them (audited with the old and new values).",
    )] = "refuse",
) -> IngestOut:
    """Ingest ticks or bars; identical re-posts are duplicates (idempotent), different values a 409 conflict."""
    # The body (PricesIn, up to 16 MiB) is parsed as it arrives and validated in batches: see api/bulk_body.py.
    limit = runtime.settings.max_prices_per_request
    body: list[PointIn] = await read_list_body(request, PricesIn, "points", max_items=limit)
    points = await _price_points(body)
    facts = request_audit(request)
    facts.metadata["symbol"] = symbol
    result = await market.ingest_prices(store=runtime.prices, symbol=symbol, points=points,
                                        max_future_seconds=runtime.settings.price_max_future_seconds,
                                        replace=on_conflict == "replace")
    facts.metadata.update({"received": result.received, "inserted": result.inserted,
                           "duplicates": result.duplicates, "replaced": len(result.replaced)})
    if result.replaced:
        await _record_replacements(runtime, principal, facts.correlation_id, symbol, result.replaced)
    return IngestOut(symbol=symbol, received=result.received, inserted=result.inserted,
                     duplicates=result.duplicates)


async def _price_points(body: list[PointIn], batch: int = 2_000) -> list[PricePoint]:
    """The points to store, converted ``batch`` at a time with the loop serving others in between.

    On the loop rather than a thread: a thread busy with Python code would make every wake-up of the loop wait
    for the GIL (the convoy effect), which costs other requests more than these few-millisecond steps.
    """
    points: list[PricePoint] = []
    for start in range(0, len(body), batch):
        chunk = body[start : start + batch]
        try:
            stamps = [rfc3339_to_us(p.timestamp) for p in chunk]
        except ValueError:
            for i, p in enumerate(chunk, start):  # only a failing body pays for naming the point
                try:
                    rfc3339_to_us(p.timestamp)
                except ValueError:  # the reason's text may quote the value: name the rule instead
                    raise InvalidInput(f"points[{i}].timestamp is not an instant that exists between "
                                       "0001-01-01 and 9999-12-31 UTC (e.g. February 30 or hour 24)") from None
            raise
        points.extend(PricePoint(ts, p.close if p.close is not None else p.price, p.open, p.high, p.low,  # type: ignore[arg-type]
                                 p.volume) for ts, p in zip(stamps, chunk, strict=True))
        await asyncio.sleep(0)
    return points


REPLACEMENTS_PER_EVENT = 500


async def _record_replacements(
    runtime: Runtime, principal: Principal, correlation_id: str, symbol: str,
    replaced: list[tuple[PricePoint, PricePoint]],
) -> None:
    """Commit the old and new values of every replaced point to the trail (``prices.replaced``, 500 per event)."""
    for start in range(0, len(replaced), REPLACEMENTS_PER_EVENT):
        chunk = replaced[start : start + REPLACEMENTS_PER_EVENT]
        await runtime.recorder.record(new_event(
            "prices.replaced", actor=principal.subject, correlation_id=correlation_id,
            message=f"replaced {len(chunk)} stored point(s) of {symbol}",
            metadata={"symbol": symbol, "points": [{"old": market.point_view(old), "new": market.point_view(new)}
                                                   for old, new in chunk]},
        ))


@router.get("/prices/{symbol:path}", name="prices.read", response_model=PricesOut,
            responses={**AUTHED_ERRORS, **problem_responses(404)})
async def read(
    symbol: SymbolPath, runtime: RuntimeDep, _: Annotated[Principal, allow("prices:read", limit="prices")],
    start: Annotated[Timestamp | None, Query(description="Inclusive start (RFC 3339).")] = None,
    end: Annotated[Timestamp | None, Query(description="Exclusive end (RFC 3339).")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> Response:
    """Stored prices of a symbol in time order."""
    # Up to 100,000 points: read and encoded 5,000 at a time, the loop serving others in between (a PricesOut).
    fragments: list[bytes] = []
    count = 0
    async for batch in market.read_price_batches(
        store=runtime.prices, symbol=symbol, start_us=to_us(start) if start else None,
        end_us=to_us(end) if end else None, limit=limit,
    ):
        count += len(batch)
        fragments.append(orjson.dumps([market.point_view(p) for p in batch])[1:-1])
        await asyncio.sleep(0)
    body = b"".join((b'{"symbol":', orjson.dumps(symbol), b',"count":', str(count).encode(), b',"points":[',
                     b",".join(fragments), b"]}"))
    return Response(body, media_type="application/json")
