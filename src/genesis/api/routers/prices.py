"""Price ingestion and reads, idempotent on (symbol, timestamp)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field

from genesis.api.bulk_body import openapi_body, read_list_body
from genesis.api.deps import RecordIntent, RuntimeDep, allow
from genesis.api.request_audit import request_audit
from genesis.api.schemas import AUTHED_ERRORS, Strict, Timestamp, TimestampText, problem_responses
from genesis.audit import new_event
from genesis.errors import InvalidInput
from genesis.runtime import Runtime
from genesis.services import market, series
from genesis.services.auth import Principal
from genesis.storage.protocols import PricePoint
from genesis.timeutil import rfc3339, rfc3339_to_us, to_us

router = APIRouter(tags=["prices"])
MAX_POINTS = 100_000  # points in one answer
MAX_SCAN = 1_000_000  # stored points one downsampled read may cover

PositivePrice = Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True)]
SymbolPath = Annotated[str, Path(description=market.SYMBOL_RULE, max_length=market.SYMBOL_MAX_LENGTH,
                                 examples=["BTC/USD"],
                                 pattern=market.SYMBOL_PATTERN.pattern)]


class PointIn(Strict):
    """A tick (timestamp + price) or a bar (timestamp + OHLCV; ``close`` is the price): exactly one of the two.

    "Exactly one of price and close" is a rule between fields: the route states it (422 invalid-input naming the
    point) rather than a oneOf, which client generators turn into classes that each lack half the fields.
    """

    timestamp: TimestampText = Field(description="RFC 3339; naive times are UTC.")
    price: PositivePrice | None = None
    open: PositivePrice | None = None
    high: PositivePrice | None = None
    low: PositivePrice | None = None
    close: PositivePrice | None = None
    volume: Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True)] | None = None


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


class Downsampled(BaseModel):
    method: Literal["lttb", "ohlc"] = Field(description="`ohlc`: bars merged into equal-count buckets (first open, "
                                           "highest high, lowest low, last close, summed volume; the timestamp is "
                                           "the bucket's first); `lttb`: Largest-Triangle-Three-Buckets over the "
                                           "closes, which keeps real stored points.")
    source_points: int = Field(description="Stored points read before reducing.")
    points: int = Field(description="Points returned.")


class PricesOut(BaseModel):
    symbol: str
    count: int
    points: list[PointOut]
    downsampled: Downsampled | None = Field(None, description="How the points were reduced (only with max_points, "
                                                              "when more were stored than it allows).")


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
                                        replace=on_conflict == "replace", announcer=runtime.announcer,
                                        publisher=runtime.publisher)
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
        both = next((i for i, p in enumerate(chunk, start) if (p.price is None) == (p.close is None)), None)
        if both is not None:
            raise InvalidInput(f"points[{both}]: give exactly one of price (a tick) or close (a bar)")
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
    limit: Annotated[int, Query(ge=1, le=MAX_SCAN, description="Stored points read, oldest first (at most "
                                                               f"{MAX_POINTS:,} without max_points).")] = 1000,
    max_points: Annotated[int | None, Query(ge=3, le=MAX_POINTS, description=(
        "Return at most this many points for a chart: bars are merged into buckets (OHLC), ticks reduced by LTTB; "
        "`downsampled` in the answer says how."))] = None,
) -> Response | PricesOut:
    """Stored prices of a symbol in time order (optionally downsampled for display)."""
    if max_points is None and limit > MAX_POINTS:
        raise InvalidInput(f"limit may exceed {MAX_POINTS} only with max_points")
    start_us, end_us = to_us(start) if start else None, to_us(end) if end else None
    if max_points is None:
        return await _streamed_read(runtime, symbol, start_us, end_us, limit)
    points, reduced = await series.read_for_display(store=runtime.prices, symbol=symbol, start_us=start_us,
                                                    end_us=end_us, limit=limit, max_points=max_points)
    return PricesOut(symbol=symbol, count=len(points), points=[
        PointOut(timestamp=rfc3339(p.ts_us), close=p.close, open=p.open, high=p.high, low=p.low, volume=p.volume)
        for p in points
    ], downsampled=None if reduced is None else Downsampled(method=reduced.method,  # type: ignore[arg-type]
                                                            source_points=reduced.source_points, points=reduced.points))


async def _streamed_read(runtime: Runtime, symbol: str, start_us: int | None, end_us: int | None,
                         limit: int) -> Response:
    """A PricesOut of up to 100,000 points, read and encoded 5,000 at a time with the loop serving others between."""
    fragments: list[bytes] = []
    count = 0
    async for batch in market.read_price_batches(store=runtime.prices, symbol=symbol, start_us=start_us,
                                                 end_us=end_us, limit=limit):
        count += len(batch)
        fragments.append(orjson.dumps([market.point_view(p) for p in batch])[1:-1])
        await asyncio.sleep(0)
    body = b"".join((b'{"symbol":', orjson.dumps(symbol), b',"count":', str(count).encode(), b',"points":[',
                     b",".join(fragments), b'],"downsampled":null}'))
    return Response(body, media_type="application/json")
