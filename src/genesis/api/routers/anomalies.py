"""Price anomalies per symbol, from stored prices."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from genesis.api.deps import RuntimeDep, allow
from genesis.api.schemas import AUTHED_ERRORS, Timestamp, problem_responses
from genesis.errors import InvalidInput
from genesis.services.auth import Principal
from genesis.services.market import SYMBOL_MAX_LENGTH, SYMBOL_PATTERN, SYMBOL_RULE
from genesis.timeutil import rfc3339, to_us

router = APIRouter(tags=["anomalies"])


class LatestVerdict(BaseModel):
    is_anomaly: bool
    score: float
    value: float
    price: float
    mean: float
    std: float


class AnomalousPoint(BaseModel):
    timestamp: str
    price: float
    score: float


class ScannedRange(BaseModel):
    start: str | None = Field(description="Timestamp of the first point scanned (null when none was).")
    end: str | None = Field(description="Timestamp of the last point scanned.")
    points: int = Field(description="How many stored points the range held; each was scored.")


class AnomalyOut(BaseModel):
    symbol: str
    points: int = Field(description="Points stored for the symbol.")
    window: int
    threshold: float
    method: str
    latest: LatestVerdict | None
    scanned: ScannedRange = Field(description="The range whose anomalies are listed: [start, end) when given, "
                                              "else the whole stored series.")
    anomalies: list[AnomalousPoint]


@router.get("/anomalies/{symbol:path}", name="anomalies.read", response_model=AnomalyOut,
            responses={**AUTHED_ERRORS, **problem_responses(404)})
async def anomalies(
    symbol: Annotated[str, Path(description=SYMBOL_RULE, max_length=SYMBOL_MAX_LENGTH,
                                pattern=SYMBOL_PATTERN.pattern)],
    runtime: RuntimeDep,
    _: Annotated[Principal, allow("anomalies:read", limit="anomalies")],
    threshold: Annotated[float, Query(gt=0, le=1000, allow_inf_nan=False)] = 3.0,
    window: Annotated[int, Query(ge=2, le=100_000)] = 100,
    method: Annotated[Literal["log_return_zscore", "price_zscore", "mad"], Query()] = "log_return_zscore",
    start: Annotated[Timestamp | None, Query(description="Scan from here (inclusive); default: the first point.")]
    = None,
    end: Annotated[Timestamp | None, Query(description="... up to here (exclusive); default: after the last.")]
    = None,
) -> AnomalyOut:
    """Whether the latest stored price is anomalous, and every anomalous point of [start, end) (default: all)."""
    if start and end and end <= start:
        raise InvalidInput("end must be later than start")
    report = await runtime.anomalies.report(
        symbol=symbol, method=method, window=window, threshold=threshold,
        start_us=to_us(start) if start else None, end_us=to_us(end) if end else None,
    )
    latest = None
    if report.latest is not None:
        latest = LatestVerdict(**{k: report.latest[k] for k in LatestVerdict.model_fields})
    return AnomalyOut(
        symbol=symbol, points=report.points, window=window, threshold=threshold, method=method, latest=latest,
        scanned=ScannedRange(
            start=rfc3339(report.scanned_first_us) if report.scanned_first_us is not None else None,
            end=rfc3339(report.scanned_last_us) if report.scanned_last_us is not None else None,
            points=report.scanned_points),
        anomalies=[AnomalousPoint(timestamp=rfc3339(a["ts_us"]), price=a["price"], score=a["score"])
                   for a in report.anomalies],
    )
