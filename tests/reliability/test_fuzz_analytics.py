"""Hypothesis on the analytics inputs through the API: extreme numbers give a clear 4xx, never a 500 or NaN.

Bodies are sent as raw JSON text, so NaN and Infinity travel as the non-standard tokens a careless client (or
Python's ``json.dumps``) would send. Every response is parsed strictly: a NaN or Infinity token in a response
fails the test, and so does a ``null`` (what NaN becomes when serialised) where the schema promises a number.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from genesis.analytics import INDICATORS, SIGNAL_STRATEGIES, STRATEGY_CALCULATORS
from tests.reliability.conftest import HYPOTHESIS_EXAMPLES, Api, strict_json

pytestmark = pytest.mark.timeout(240)

FUZZ_SETTINGS = settings(
    max_examples=HYPOTHESIS_EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CLIENT_ERRORS = {400, 404, 413, 422}

# Finite and non-finite doubles, the extremes named explicitly so that small budgets still meet them.
EXTREMES = st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, 0.0, -0.0, -1.0, 1.0])
ANY_FLOAT = st.one_of(EXTREMES, st.floats(allow_nan=True, allow_infinity=True))
SANE_PRICE = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False)
PRICES = st.one_of(
    st.lists(SANE_PRICE, min_size=0, max_size=60),
    st.lists(st.one_of(SANE_PRICE, ANY_FLOAT), min_size=0, max_size=60),
)
PERIODS = st.one_of(st.integers(min_value=-3, max_value=80), st.sampled_from([0, 1, 10**6, 2**63]))


def _post(api: Api, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    raw = json.dumps(body, allow_nan=True)  # NaN/Infinity tokens go out as a careless client would send them
    return api.client.post(path, content=raw, headers={**headers, "Content-Type": "application/json"})


def _assert_clear_answer(response: Any) -> Any:
    """No 5xx; a strictly parseable JSON body; a 4xx is a problem document that says what is wrong."""
    assert response.status_code < 500, response.text
    body = strict_json(response.content)
    if response.status_code >= 400:
        assert response.status_code in CLIENT_ERRORS, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert body["status"] == response.status_code and body["detail"]
    return body


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _assert_numbers_finite(value: Any, path: str = "$") -> None:
    if isinstance(value, float):
        assert math.isfinite(value), f"{path} is {value}"
    elif isinstance(value, dict):
        for key, item in value.items():
            _assert_numbers_finite(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _assert_numbers_finite(item, f"{path}[{i}]")


@pytest.fixture(scope="module")
def trader(module_api: Api) -> dict[str, str]:
    return module_api.user("fuzz-trader", "trader")


@FUZZ_SETTINGS
@given(name=st.sampled_from(sorted(STRATEGY_CALCULATORS)), prices=PRICES, period=PERIODS)
@example(name="sma", prices=[math.nan, 1.0, 2.0], period=2)
@example(name="sma", prices=[math.inf, 1.0, 2.0], period=2)
@example(name="ema", prices=[-math.inf, 1.0], period=1)
@example(name="sma", prices=[1e308, 1e308, 1e308], period=3)
@example(name="stddev", prices=[1e308, 5e-324, 1e308], period=3)
@example(name="roc", prices=[5e-324, 1e308], period=1)
@example(name="rsi", prices=[], period=1)
@example(name="wma", prices=[1.0, 2.0, 3.0], period=4)
@example(name="rsi", prices=[5.0] * 30, period=14)
def test_fuzz_strategy_calculate_answers_a_finite_number_or_a_clear_4xx(
    module_api: Api, trader: dict[str, str], name: str, prices: list[float], period: int
) -> None:
    response = _post(module_api, "/strategy/calculate", {"strategy_name": name, "prices": prices, "period": period},
                     trader)
    body = _assert_clear_answer(response)
    valid_input = 1 <= period <= len(prices) and all(_finite(p) and p > 0 for p in prices)
    if not valid_input:
        assert response.status_code == 422, response.text
    if response.status_code == 200:
        assert _finite(body["result"]), body


@FUZZ_SETTINGS
@given(name=st.sampled_from(sorted(INDICATORS)), prices=PRICES,
       params=st.dictionaries(st.sampled_from(["period", "fast_period", "slow_period", "signal_period", "num_std"]),
                              st.one_of(PERIODS, ANY_FLOAT), max_size=3))
@example(name="macd", prices=[1e308] * 40, params={})
@example(name="bbands", prices=[1e308, 5e-324] * 15, params={"period": 5, "num_std": 1e308})
@example(name="sma", prices=[1.0] * 5, params={"period": 50})
@example(name="rsi", prices=[7.0] * 40, params={})
def test_fuzz_indicator_series_holds_no_nan_beyond_its_warmup(
    module_api: Api, trader: dict[str, str], name: str, prices: list[float], params: dict[str, Any]
) -> None:
    response = _post(module_api, f"/indicators/{name}", {"prices": prices, "params": params}, trader)
    body = _assert_clear_answer(response)
    if response.status_code == 200:
        warmup = body["warmup"]
        for output, values in body["values"].items():
            assert len(values) == len(prices), output
            assert all(v is None for v in values[:warmup]), (output, values[:warmup])
            assert all(_finite(v) for v in values[warmup:]), (output, values[warmup:])


@FUZZ_SETTINGS
@given(strategy=st.sampled_from(sorted(SIGNAL_STRATEGIES)), prices=PRICES,
       commission=st.one_of(st.sampled_from([0.0, 0.1, math.nan, -0.0]), ANY_FLOAT))
@example(strategy="sma_crossover", prices=[1e308, 5e-324] * 40, commission=0.0)
@example(strategy="rsi", prices=[5e-324, 1e308] * 40, commission=0.1)
@example(strategy="sma_crossover", prices=[100.0] * 50, commission=0.0)
@example(strategy="sma_crossover", prices=[1.0], commission=0.0)
def test_fuzz_backtest_metrics_are_finite_or_null_never_nan(
    module_api: Api, trader: dict[str, str], strategy: str, prices: list[float], commission: float
) -> None:
    response = _post(module_api, "/backtests", {"strategy": strategy, "prices": prices, "commission": commission,
                                                "include_equity": True}, trader)
    body = _assert_clear_answer(response)
    if response.status_code == 201:
        _assert_numbers_finite(body)  # null is allowed for an undefined metric; NaN/Infinity never
        assert body["score"] is None or _finite(body["score"])
        assert all(_finite(v) for v in body["equity"]), body["equity"]
        read = module_api.client.get(f"/backtests/{body['id']}", headers=trader)
        assert read.status_code == 200 and strict_json(read.content)["id"] == body["id"]


_BASE = datetime(2024, 1, 1, tzinfo=UTC)
OFFSETS = st.lists(st.integers(min_value=-5, max_value=200), min_size=0, max_size=40)


@FUZZ_SETTINGS
@given(offsets=OFFSETS, prices=st.lists(st.one_of(SANE_PRICE, ANY_FLOAT), min_size=40, max_size=40),
       window=st.one_of(st.integers(min_value=-1, max_value=300), st.just(10**9)),
       threshold=st.one_of(st.sampled_from(["nan", "inf", "-inf", "1e308", "0", "-1"]),
                           st.floats(min_value=0.01, max_value=10).map(str)),
       method=st.sampled_from(["log_return_zscore", "price_zscore", "mad"]))
@example(offsets=[3, 1, 2, 0], prices=[10.0] * 40, window=2, threshold="3", method="mad")  # unsorted
@example(offsets=[1, 1, 1, 2], prices=[10.0, 11.0, 12.0] + [10.0] * 37, window=2, threshold="3",
         method="log_return_zscore")  # duplicate timestamps
@example(offsets=[0, 1, 2], prices=[10.0] * 40, window=500, threshold="3", method="price_zscore")  # window > series
@example(offsets=[0, 1, 2, 3, 4, 5], prices=[5e-324, 1e308] * 20, window=2, threshold="1e308",
         method="log_return_zscore")
def test_fuzz_price_ingest_and_anomalies_with_unsorted_duplicate_and_extreme_points(
    module_api: Api, trader: dict[str, str], offsets: list[int], prices: list[float], window: int,
    threshold: str, method: str,
) -> None:
    symbol = "FZ" + hashlib.sha256(repr((offsets, prices, window, threshold, method)).encode()).hexdigest()[:12]
    points = [{"timestamp": (_BASE + timedelta(minutes=o)).isoformat(), "price": prices[i]}
              for i, o in enumerate(offsets)]
    ingest = _post(module_api, f"/prices/{symbol}", {"points": points}, trader)
    ingest_body = _assert_clear_answer(ingest)
    if not points or not all(_finite(p["price"]) and p["price"] > 0 for p in points):
        assert ingest.status_code == 422, ingest.text
    if ingest.status_code == 200:
        assert ingest_body["received"] == len(points)
        assert ingest_body["inserted"] + ingest_body["duplicates"] == len(points)
        stored = module_api.client.get(f"/prices/{symbol}", params={"limit": 1000}, headers=trader)
        stored_body = _assert_clear_answer(stored)
        stamps = [p["timestamp"] for p in stored_body["points"]]
        assert stamps == sorted(set(stamps)), "stored prices must come back once each, in time order"
        assert all(_finite(p["close"]) for p in stored_body["points"])
    report = module_api.client.get(f"/anomalies/{symbol}", params={"window": window, "threshold": threshold,
                                                                   "method": method}, headers=trader)
    body = _assert_clear_answer(report)
    if report.status_code == 200:
        _assert_numbers_finite(body)
        if body["latest"] is not None:
            assert all(_finite(body["latest"][k]) for k in ("score", "value", "price", "mean", "std"))


@pytest.mark.parametrize(("stamp", "status"), [
    ("0001-01-01T00:00:00Z", 200), ("1970-01-01T00:00:00Z", 200),
    ("9999-12-31T23:59:59.999999Z", 422),  # a valid instant, but the future: it could poison a later real price
    ("2024-02-29T12:00:00+05:30", 200), ("2024-01-01T00:00:00", 200),  # naive: UTC, as documented
    ("0001-01-01T00:00:00+00:18", 422), ("9999-12-31T23:59:59-01:00", 422),  # RFC 3339, but not a UTC instant
    ("2024-01-01", 422), ("0.5", 422), (1700000000, 422), (True, 422), ("2024-13-01T00:00:00Z", 422),
    ("2024-01-01T25:00:00Z", 422), ("", 422), ("2023-02-29T00:00:00Z", 422), ("2024-04-31T00:00:00Z", 422),
    ("2024-01-01t00:00:00.123456789z", 200), ("2024-01-01 00:00:00-00:00", 200),
    # non-ASCII digits
    ("\uff12\uff10\uff12\uff14-01-01T00:00:00Z", 422), ("\u0662\u0660\u0662\u0664-01-01T00:00:00Z", 422),
])
def test_fuzz_timestamps_at_the_edges_of_the_calendar(
    module_api: Api, trader: dict[str, str], stamp: object, status: int
) -> None:
    symbol = "EDGE" + hashlib.sha256(repr(stamp).encode()).hexdigest()[:8]
    response = module_api.client.post(f"/prices/{symbol}", json={"points": [{"timestamp": stamp, "price": 1.0}]},
                                      headers=trader)
    _assert_clear_answer(response)
    assert response.status_code == status, response.text
    if status == 200:  # what was stored can be read back
        read = module_api.client.get(f"/prices/{symbol}", headers=trader)
        assert read.status_code == 200 and strict_json(read.content)["count"] == 1
