"""The analytics routes read the one table: enums, listings, one error for unknown names, examples that succeed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from genesis.analytics import INDICATORS, SIGNAL_STRATEGIES, STRATEGY_CALCULATORS, TABLE, IndicatorSpec
from genesis.api.app import create_app
from genesis.config import Settings
from tests.conftest import bearer, token_for

# The three operations whose request names an entry of the table, and where the name sits.
CALCULATE, COMPUTE, BACKTEST = ("/strategy/calculate", "post"), ("/indicators/{name}", "post"), ("/backtests", "post")


@pytest.fixture
def client(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings())) as test_client:
        yield test_client


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    return bearer(token_for(client)["access_token"])


@pytest.fixture
def openapi(client: TestClient) -> dict[str, Any]:
    schema: dict[str, Any] = client.get("/openapi.json").json()
    return schema


def _body_schema(openapi: dict[str, Any], operation: tuple[str, str]) -> dict[str, Any]:
    path, method = operation
    ref = openapi["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema: dict[str, Any] = openapi["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return schema


def _path_name_schema(openapi: dict[str, Any]) -> dict[str, Any]:
    (param,) = openapi["paths"][COMPUTE[0]][COMPUTE[1]]["parameters"]
    assert param["name"] == "name" and param["in"] == "path"
    schema: dict[str, Any] = param["schema"]
    return schema


# --- enums and listings ------------------------------------------------------------------------------


def test_every_name_field_is_an_enum_of_its_view_of_the_table(openapi: dict[str, Any]) -> None:
    indicators = sorted(spec.name for spec in TABLE if isinstance(spec, IndicatorSpec))
    single = sorted(spec.name for spec in TABLE if isinstance(spec, IndicatorSpec) and len(spec.outputs) == 1)
    strategies = sorted(spec.name for spec in TABLE if not isinstance(spec, IndicatorSpec))
    assert _path_name_schema(openapi)["enum"] == indicators == list(INDICATORS.names)
    assert _body_schema(openapi, CALCULATE)["properties"]["strategy_name"]["enum"] == single
    assert single == list(STRATEGY_CALCULATORS.names)
    assert _body_schema(openapi, BACKTEST)["properties"]["strategy"]["enum"] == strategies
    assert strategies == list(SIGNAL_STRATEGIES.names)


def test_the_listings_are_the_table(client: TestClient, admin: dict[str, str]) -> None:
    listed = client.get("/indicators", headers=admin).json()
    assert [entry["name"] for entry in listed] == list(INDICATORS.names)
    assert listed == INDICATORS.describe()
    strategies = client.get("/strategies", headers=admin).json()
    assert strategies == {"calculators": list(STRATEGY_CALCULATORS.names),
                          "signal_strategies": SIGNAL_STRATEGIES.describe()}


def test_names_are_accepted_in_any_case_with_surrounding_blanks(client: TestClient, admin: dict[str, str]) -> None:
    prices = [float(100 + i % 7) for i in range(40)]
    calculated = client.post("/strategy/calculate", json={"strategy_name": " StdDev\t", "prices": prices, "period": 5},
                             headers=admin)
    assert calculated.status_code == 200, calculated.text
    computed = client.post("/indicators/%20MACD%20", json={"prices": prices}, headers=admin)
    assert computed.status_code == 200, computed.text
    assert computed.json()["name"] == "macd"
    backtest = client.post("/backtests", json={"strategy": "  Sma_Crossover ", "prices": prices,
                                               "params": {"fast": 2, "slow": 5}}, headers=admin)
    assert backtest.status_code == 201, backtest.text
    assert backtest.json()["strategy"] == "sma_crossover"


# --- one error -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "body", "supported"), [
    ("/strategy/calculate", {"strategy_name": "vwap", "prices": [1.0, 2.0], "period": 1}, STRATEGY_CALCULATORS.names),
    ("/strategy/calculate", {"strategy_name": "macd", "prices": [1.0, 2.0], "period": 1}, STRATEGY_CALCULATORS.names),
    ("/indicators/kama", {"prices": [1.0, 2.0]}, INDICATORS.names),
    ("/backtests", {"strategy": "moon", "prices": [1.0, 2.0]}, SIGNAL_STRATEGIES.names),
    ("/indicators/bbands", {"prices": [1.0, 2.0], "params": {"window": 2}}, ("period", "num_std")),
    ("/backtests", {"strategy": "rsi", "prices": [1.0, 2.0], "params": {"fast": 2}},
     ("period", "oversold", "overbought")),
], ids=["strategy", "multi-output-strategy", "indicator", "signal-strategy", "indicator-param", "strategy-param"])
def test_an_unknown_name_or_parameter_is_one_422_listing_the_supported_values(
    client: TestClient, admin: dict[str, str], path: str, body: dict[str, Any], supported: tuple[str, ...]
) -> None:
    response = client.post(path, json=body, headers=admin)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"].endswith("/invalid-input")
    assert problem["supported"] == list(supported)
    assert problem["detail"].startswith("unknown ") and problem["detail"].endswith(f"supported: {', '.join(supported)}")


@pytest.mark.parametrize(("period", "detail"), [
    (0, "period must be >= 1 (got period=0)"),
    (-4, "period must be >= 1 (got period=-4)"),
    (9, "period must be <= the number of prices (got period=9, 8 prices)"),
])
def test_a_bad_period_is_refused_by_the_one_guard_with_one_message_on_every_route(
    client: TestClient, admin: dict[str, str], period: int, detail: str
) -> None:
    prices = [10.0, 11.0, 12.0, 11.5, 12.5, 13.0, 12.0, 12.8]
    for path, body in (
        ("/strategy/calculate", {"strategy_name": "rsi", "prices": prices, "period": period}),
        ("/indicators/rsi", {"prices": prices, "params": {"period": period}}),
        ("/backtests", {"strategy": "rsi", "prices": prices, "params": {"period": period}}),
    ):
        response = client.post(path, json=body, headers=admin)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["detail"] == detail, path


# --- examples that succeed as shown ----------------------------------------------------------------------


def test_each_request_example_succeeds_as_shown(
    client: TestClient, admin: dict[str, str], openapi: dict[str, Any]
) -> None:
    (calculate,) = _body_schema(openapi, CALCULATE)["examples"]
    response = client.post("/strategy/calculate", json=calculate, headers=admin)
    assert response.status_code == 200, response.text
    assert response.json() == {"result": 103.0}  # the README's walk-through shows this body and this answer

    (name,) = _path_name_schema(openapi)["examples"]
    (series,) = _body_schema(openapi, COMPUTE)["examples"]
    response = client.post(f"/indicators/{name}", json=series, headers=admin)
    assert response.status_code == 200, response.text
    assert len(response.json()["values"]["value"]) == len(series["prices"])

    (backtest,) = _body_schema(openapi, BACKTEST)["examples"]
    response = client.post("/backtests", json=backtest, headers=admin)
    assert response.status_code == 201, response.text
    assert response.json()["n_prices"] == len(backtest["prices"])


def test_the_examples_succeed_whichever_name_is_picked_from_the_enum(
    client: TestClient, admin: dict[str, str], openapi: dict[str, Any]
) -> None:
    # Swagger's "Try it out" shows the enum as a list beside the example body: every choice must work with it.
    calculate = _body_schema(openapi, CALCULATE)
    for name in calculate["properties"]["strategy_name"]["enum"]:
        response = client.post("/strategy/calculate", json={**calculate["examples"][0], "strategy_name": name},
                               headers=admin)
        assert response.status_code == 200, (name, response.text)
    (series,) = _body_schema(openapi, COMPUTE)["examples"]
    for name in _path_name_schema(openapi)["enum"]:
        response = client.post(f"/indicators/{name}", json=series, headers=admin)
        assert response.status_code == 200, (name, response.text)
        body = response.json()
        assert all(value is not None for values in body["values"].values() for value in values[body["warmup"]:])
