"""Market endpoints over the real app: strategy values, indicators, prices, backtests, performance, anomalies."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import talib
from fastapi.testclient import TestClient

from tests.conftest import bearer, token_for


@pytest.fixture
def trader(client: TestClient) -> dict[str, str]:
    admin = token_for(client)["access_token"]
    for name, role in (("tess", "trader"), ("tom", "trader"), ("vera", "viewer")):
        client.post("/users", json={"username": name, "role": role, "password": f"{name}-password"},
                    headers=bearer(admin))
    return bearer(token_for(client, "tess", "tess-password")["access_token"])


def _points(closes: list[float], start: datetime | None = None) -> list[dict[str, object]]:
    start = start or datetime(2024, 1, 1, tzinfo=UTC)
    return [{"timestamp": (start + timedelta(minutes=i)).isoformat(), "price": c} for i, c in enumerate(closes)]


def _walk(n: int, seed: int = 7) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(100 * np.exp(np.cumsum(rng.normal(0, 0.01, n))))


def test_strategy_calculate_matches_talib_and_names_are_case_insensitive(
    client: TestClient, trader: dict[str, str]
) -> None:
    prices = _walk(100)
    sma = client.post("/strategy/calculate", json={"strategy_name": "SMA", "prices": prices, "period": 10},
                      headers=trader)
    assert sma.status_code == 200
    assert sma.json()["result"] == pytest.approx(talib.SMA(np.array(prices), 10)[-1], abs=1e-9)
    rsi = client.post("/strategy/calculate", json={"strategy_name": "rsi", "prices": prices, "period": 14},
                      headers=trader)
    assert rsi.json()["result"] == pytest.approx(talib.RSI(np.array(prices), 14)[-1], abs=1e-9)
    default_period = client.post("/strategy/calculate", json={"strategy_name": "ema", "prices": prices},
                                 headers=trader)
    assert default_period.json()["result"] == pytest.approx(talib.EMA(np.array(prices), 10)[-1], abs=1e-9)


@pytest.mark.parametrize(("body", "status", "needle"), [
    ({"strategy_name": "macd9000", "prices": [1.0, 2.0], "period": 1}, 422, "supported"),
    ({"strategy_name": "sma", "prices": [1.0, 2.0], "period": 5}, 422, "period must be <="),
    ({"strategy_name": "sma", "prices": [], "period": 1}, 422, "prices"),
    ({"strategy_name": "sma", "prices": [1.0, -2.0], "period": 1}, 422, "prices"),
    ({"strategy_name": "sma", "prices": [1.0, 2.0], "period": 0}, 422, "period"),
    ({"strategy_name": "sma", "prices": [1.0, 2.0], "period": 1, "role": "admin"}, 422, "role"),
    ({"strategy_name": "sma", "prices": "1,2,3", "period": 1}, 422, "prices"),
])
def test_strategy_calculate_refuses_bad_input(
    client: TestClient, trader: dict[str, str], body: dict[str, object], status: int, needle: str
) -> None:
    response = client.post("/strategy/calculate", json=body, headers=trader)
    assert response.status_code == status, response.text
    assert needle in response.text


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_tokens_are_refused(client: TestClient, trader: dict[str, str], token: str) -> None:
    raw = f'{{"strategy_name": "sma", "prices": [1.0, {token}, 2.0], "period": 2}}'
    response = client.post("/strategy/calculate", content=raw,
                           headers={**trader, "Content-Type": "application/json"})
    assert response.status_code == 422


def test_too_many_prices_is_413(make_settings, database_url: str) -> None:  # type: ignore[no-untyped-def]
    from genesis.api.app import create_app

    with TestClient(create_app(make_settings(database_url=database_url, max_prices_per_request=50))) as client:
        token = bearer(token_for(client)["access_token"])
        response = client.post("/strategy/calculate", json={"strategy_name": "sma", "prices": [1.0] * 51,
                                                            "period": 2}, headers=token)
    assert response.status_code == 413


def test_indicator_series_with_null_warmup(client: TestClient, trader: dict[str, str]) -> None:
    prices = _walk(60)
    response = client.post("/indicators/rsi", json={"prices": prices, "params": {"period": 14}}, headers=trader)
    assert response.status_code == 200
    body = response.json()
    values = body["values"]["value"]
    assert body["warmup"] == 14
    assert values[:14] == [None] * 14
    expected = talib.RSI(np.array(prices), 14)
    assert all(math.isclose(v, e, abs_tol=1e-9) for v, e in zip(values[14:], expected[14:], strict=True))
    macd = client.post("/indicators/MACD", json={"prices": prices}, headers=trader).json()
    assert set(macd["values"]) == {"macd", "signal", "histogram"}
    assert client.post("/indicators/nope", json={"prices": prices}, headers=trader).status_code == 422
    bad = client.post("/indicators/sma", json={"prices": prices, "params": {"period": 0}}, headers=trader)
    assert bad.status_code == 422
    unknown_param = client.post("/indicators/sma", json={"prices": prices, "params": {"bogus": 1}}, headers=trader)
    assert unknown_param.status_code == 422
    listing = client.get("/indicators", headers=trader).json()
    assert {"sma", "ema", "wma", "rsi", "macd", "bbands", "stddev", "roc"} <= {s["name"] for s in listing}


@pytest.mark.parametrize("path_symbol", ["BTC/USD", "BTC%2FUSD"])
def test_prices_ingest_is_idempotent_and_slash_symbols_work(
    client: TestClient, trader: dict[str, str], path_symbol: str
) -> None:
    points = _points([100.0, 101.0, 102.0])
    first = client.post(f"/prices/{path_symbol}", json={"points": points}, headers=trader)
    assert first.status_code == 200, first.text
    assert first.json() == {"symbol": "BTC/USD", "received": 3, "inserted": 3, "duplicates": 0}
    again = client.post(f"/prices/{path_symbol}", json={"points": points + _points([103.0], datetime(2025, 1, 1,
                                                                                                   tzinfo=UTC))},
                        headers=trader)
    assert again.json()["inserted"] == 1 and again.json()["duplicates"] == 3
    read = client.get("/prices/BTC/USD", headers=trader).json()
    assert read["count"] == 4
    assert [p["close"] for p in read["points"]] == [100.0, 101.0, 102.0, 103.0]
    assert read["points"][0]["timestamp"] == "2024-01-01T00:00:00.000000Z"
    ranged = client.get("/prices/BTC/USD", params={"start": "2024-01-01T00:01:00Z", "end": "2024-01-01T00:02:00Z"},
                        headers=trader).json()
    assert [p["close"] for p in ranged["points"]] == [101.0]


def test_prices_ohlcv_bars_and_bad_points(client: TestClient, trader: dict[str, str]) -> None:
    bar = {"timestamp": "2024-01-01T00:00:00Z", "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 10}
    assert client.post("/prices/ETH-USD", json={"points": [bar]}, headers=trader).status_code == 200
    assert client.get("/prices/ETH-USD", headers=trader).json()["points"][0]["high"] == 2.0
    unsorted = _points([1.0, 2.0])[::-1]
    response = client.post("/prices/ETH-USD", json={"points": unsorted}, headers=trader)
    assert response.status_code == 422 and "strictly increasing" in response.text
    both = {"timestamp": "2024-02-01T00:00:00Z", "price": 1.0, "close": 1.0}
    assert client.post("/prices/ETH-USD", json={"points": [both]}, headers=trader).status_code == 422
    no_such_day = [*_points([1.0]), {"timestamp": "2024-02-30T00:00:00Z", "price": 1.0}]
    response = client.post("/prices/ETH-USD", json={"points": no_such_day}, headers=trader)
    assert response.status_code == 422 and "points[1].timestamp" in response.json()["detail"], response.text
    assert client.post("/prices/bad symbol!", json={"points": _points([1.0])}, headers=trader).status_code == 422
    assert client.get("/prices/UNKNOWN", headers=trader).status_code == 404


def test_viewer_reads_but_cannot_ingest_or_compute(client: TestClient, trader: dict[str, str]) -> None:
    client.post("/prices/AAA", json={"points": _points([1.0, 2.0])}, headers=trader)
    viewer = bearer(token_for(client, "vera", "vera-password")["access_token"])
    assert client.get("/prices/AAA", headers=viewer).status_code == 200
    assert client.post("/prices/AAA", json={"points": _points([3.0])}, headers=viewer).status_code == 403
    assert client.post("/strategy/calculate", json={"strategy_name": "sma", "prices": [1.0], "period": 1},
                       headers=viewer).status_code == 403
    assert client.get("/performance", headers=viewer).status_code == 200


def test_backtest_recorded_owned_and_scored(client: TestClient, trader: dict[str, str]) -> None:
    prices = _walk(300)
    created = client.post("/backtests", json={"strategy": "sma_crossover", "params": {"fast": 5, "slow": 20},
                                              "prices": prices, "commission": 0.001, "include_equity": True},
                          headers=trader)
    assert created.status_code == 201, created.text
    body = created.json()
    assert len(body["equity"]) == 300
    assert body["score"] == body["metrics"]["sharpe"]
    assert client.get(f"/backtests/{body['id']}", headers=trader).json()["id"] == body["id"]
    other = bearer(token_for(client, "tom", "tom-password")["access_token"])
    assert client.get(f"/backtests/{body['id']}", headers=other).status_code == 404
    admin = bearer(token_for(client)["access_token"])
    assert client.get(f"/backtests/{body['id']}", headers=admin).status_code == 200
    client.post("/backtests", json={"strategy": "SMA_CROSSOVER", "params": {"fast": 3, "slow": 10},
                                    "prices": prices}, headers=trader)
    performance = client.get("/performance", headers=trader).json()
    entry = next(p for p in performance if p["strategy_name"] == "sma_crossover")
    assert len(entry["history"]) == 2
    assert entry["last_score"] == entry["history"][-1]


def test_backtest_on_a_stored_symbol_and_bad_requests(client: TestClient, trader: dict[str, str]) -> None:
    client.post("/prices/SYM", json={"points": _points(_walk(120))}, headers=trader)
    stored = client.post("/backtests", json={"strategy": "rsi", "symbol": "SYM"}, headers=trader)
    assert stored.status_code == 201, stored.text
    assert stored.json()["n_prices"] == 120
    assert client.post("/backtests", json={"strategy": "rsi", "symbol": "NOPE"}, headers=trader).status_code == 404
    both = client.post("/backtests", json={"strategy": "rsi", "symbol": "SYM", "prices": [1.0, 2.0]}, headers=trader)
    assert both.status_code == 422
    unknown = client.post("/backtests", json={"strategy": "moon", "prices": [1.0, 2.0]}, headers=trader)
    assert unknown.status_code == 422
    crossed = client.post("/backtests", json={"strategy": "sma_crossover", "params": {"fast": 30, "slow": 10},
                                              "prices": _walk(50)}, headers=trader)
    assert crossed.status_code == 422


def test_anomalies_on_stored_prices_find_an_injected_spike(client: TestClient, trader: dict[str, str]) -> None:
    assert client.get("/anomalies/ZZZ", headers=trader).status_code == 404
    closes = _walk(400, seed=3)
    client.post("/prices/SPK", json={"points": _points(closes)}, headers=trader)
    calm = client.get("/anomalies/SPK", headers=trader).json()
    assert calm["points"] == 400 and calm["latest"]["is_anomaly"] is False
    # A new price 20% above the last one: the detector catches up incrementally and flags it.
    spike_time = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=400)
    client.post("/prices/SPK", json={"points": [{"timestamp": spike_time.isoformat(), "price": closes[-1] * 1.2}]},
                headers=trader)
    spiked = client.get("/anomalies/SPK", headers=trader).json()
    assert spiked["points"] == 401
    assert spiked["latest"]["is_anomaly"] is True and spiked["latest"]["score"] > 3
    ranged = client.get("/anomalies/SPK", params={"start": "2024-01-01T06:00:00Z", "threshold": 4},
                        headers=trader).json()
    assert [a["timestamp"] for a in ranged["anomalies"]] == [spike_time.strftime("%Y-%m-%dT%H:%M:%S.000000Z")]
    robust = client.get("/anomalies/SPK", params={"method": "mad", "window": 50}, headers=trader).json()
    assert robust["method"] == "mad" and robust["latest"]["is_anomaly"] is True
    assert client.get("/anomalies/SPK", params={"method": "nope"}, headers=trader).status_code == 422
    assert client.get("/anomalies/SPK", params={"window": 1}, headers=trader).status_code == 422


def test_anomalies_without_bounds_scan_the_whole_series_and_say_so(client: TestClient, trader: dict[str, str]) -> None:
    closes = _walk(300, seed=5)
    for spike in (120, 240):
        closes[spike] *= 1.25  # two isolated jumps (each also makes a jump back down)
    client.post("/prices/WHOLE", json={"points": _points(closes)}, headers=trader)
    everything = client.get("/anomalies/WHOLE", params={"threshold": 4}, headers=trader).json()
    flagged = {a["timestamp"] for a in everything["anomalies"]}
    assert len(flagged) >= 2, everything  # an empty list would read as "nothing anomalous"
    assert everything["scanned"]["points"] == 300
    first, last = _points(closes)[0]["timestamp"], _points(closes)[-1]["timestamp"]
    assert everything["scanned"]["start"].startswith(first[:19]) and everything["scanned"]["end"].startswith(last[:19])
    later = client.get("/anomalies/WHOLE", params={"threshold": 4, "start": _points(closes)[200]["timestamp"]},
                       headers=trader).json()
    assert later["scanned"]["points"] == 100
    assert {a["timestamp"] for a in later["anomalies"]} == {t for t in flagged if t >= later["scanned"]["start"]}
