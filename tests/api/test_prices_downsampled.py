"""GET /prices/{symbol}?max_points=...: long series reduced for charts (LTTB for ticks, OHLC buckets for bars)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient

from genesis.analytics.downsample import lttb
from genesis.services import series
from genesis.timeutil import rfc3339, to_us
from tests.conftest import bearer, token_for

START = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    return bearer(token_for(client)["access_token"])


def _stamp(i: int, step: timedelta) -> str:
    return rfc3339(to_us(START + i * step))  # as the API writes them


def _ingest(client: TestClient, headers: dict[str, str], symbol: str, points: list[dict[str, object]]) -> None:
    response = client.post(f"/prices/{symbol}", json={"points": points}, headers=headers)
    assert response.status_code == 200, response.text


def test_ticks_are_reduced_by_lttb_to_real_stored_points(client: TestClient, admin: dict[str, str]) -> None:
    rng = np.random.default_rng(3)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, 5000)))
    closes[3217] *= 1.5  # a spike a chart must not lose
    _ingest(client, admin, "TICK", [{"timestamp": _stamp(i, timedelta(seconds=1)), "price": float(c)}
                                     for i, c in enumerate(closes)])
    response = client.get("/prices/TICK", params={"limit": 5000, "max_points": 500}, headers=admin)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["downsampled"] == {"method": "lttb", "source_points": 5000, "points": 500}
    assert body["count"] == len(body["points"]) == 500
    kept = lttb(np.arange(5000, dtype=np.float64), closes, 500).tolist()
    assert [p["timestamp"] for p in body["points"]] == [_stamp(i, timedelta(seconds=1)) for i in kept]
    assert [p["close"] for p in body["points"]] == [float(closes[i]) for i in kept]
    assert _stamp(3217, timedelta(seconds=1)) in {p["timestamp"] for p in body["points"]}


def test_bars_are_merged_into_ohlc_buckets_that_keep_every_extreme(client: TestClient, admin: dict[str, str]) -> None:
    rng = np.random.default_rng(5)
    close = 100 + np.cumsum(rng.normal(0, 1, 1000))
    bars = [{"timestamp": _stamp(i, timedelta(days=1)), "open": float(c + 0.5), "high": float(c + 2),
             "low": float(c - 2), "close": float(c), "volume": 10.0} for i, c in enumerate(close)]
    _ingest(client, admin, "BARS", bars)
    body = client.get("/prices/BARS", params={"limit": 1000, "max_points": 100}, headers=admin).json()
    assert body["downsampled"] == {"method": "ohlc", "source_points": 1000, "points": 100}
    first = body["points"][0]
    assert first == {"timestamp": bars[0]["timestamp"], "open": bars[0]["open"], "close": bars[9]["close"],
                     "high": max(b["high"] for b in bars[:10]), "low": min(b["low"] for b in bars[:10]),
                     "volume": 100.0}
    assert max(p["high"] for p in body["points"]) == max(b["high"] for b in bars)
    assert min(p["low"] for p in body["points"]) == min(b["low"] for b in bars)
    assert [p["timestamp"] for p in body["points"]] == [bars[10 * k]["timestamp"] for k in range(100)]


def test_a_series_that_fits_is_returned_whole_and_says_so(client: TestClient, admin: dict[str, str]) -> None:
    _ingest(client, admin, "FEW", [{"timestamp": _stamp(i, timedelta(minutes=1)), "price": 10.0 + i}
                                    for i in range(50)])
    plain = client.get("/prices/FEW", headers=admin).json()
    reduced = client.get("/prices/FEW", params={"max_points": 50}, headers=admin).json()
    assert plain["downsampled"] is None and reduced["downsampled"] is None
    assert reduced["points"] == plain["points"] and reduced["count"] == 50


def test_limit_bounds_the_stored_points_read_before_reducing(client: TestClient, admin: dict[str, str]) -> None:
    _ingest(client, admin, "LIM", [{"timestamp": _stamp(i, timedelta(minutes=1)), "price": 10.0 + i % 7}
                                    for i in range(400)])
    body = client.get("/prices/LIM", params={"limit": 300, "max_points": 30}, headers=admin).json()
    assert body["downsampled"] == {"method": "lttb", "source_points": 300, "points": 30}
    assert body["points"][-1]["timestamp"] == _stamp(299, timedelta(minutes=1))


@pytest.mark.parametrize(("params", "message"), [
    ({"limit": 100_001}, "only with max_points"),
    ({"max_points": 2}, "max_points"),
    ({"max_points": 100_001}, "max_points"),
    ({"limit": 1_000_001, "max_points": 10}, "limit"),
    ({"max_points": "many"}, "max_points"),
])
def test_bad_downsampling_parameters_are_refused_with_422(
    client: TestClient, admin: dict[str, str], params: dict[str, object], message: str
) -> None:
    _ingest(client, admin, "BAD", [{"timestamp": _stamp(0, timedelta(minutes=1)), "price": 1.0}])
    response = client.get("/prices/BAD", params=params, headers=admin)
    assert response.status_code == 422, response.text
    assert message in response.text


@pytest.mark.parametrize(("start", "end", "limit"), [(None, None, None), (3, 40, None), (None, None, 7), (10, 11, 5),
                                                    (60, None, None)])
def test_the_columnar_read_returns_what_the_row_read_returns(
    client: TestClient, admin: dict[str, str], start: int | None, end: int | None, limit: int | None
) -> None:
    step = timedelta(minutes=1)
    ticks = [{"timestamp": _stamp(i, step), "price": 10.0 + i} for i in range(0, 50, 2)]
    bars = [{"timestamp": _stamp(i, step), "open": 5.0 + i, "high": 9.0 + i, "low": 1.0 + i, "close": 6.0 + i,
             **({"volume": float(i)} if i % 3 else {})} for i in range(1, 50, 2)]
    _ingest(client, admin, "MIX", sorted(ticks + bars, key=lambda p: str(p["timestamp"])))
    store = client.app.state.runtime.prices  # type: ignore[attr-defined]
    bounds = {"start_us": None if start is None else to_us(START + start * step),
              "end_us": None if end is None else to_us(START + end * step), "limit": limit}
    assert client.portal is not None
    columns = client.portal.call(functools.partial(store.columns, "MIX", **bounds))
    rows = client.portal.call(functools.partial(store.range, "MIX", **bounds))
    assert series.to_points(columns) == rows
    assert columns.ts_us.dtype == np.int64 and columns.close.dtype == np.float64
