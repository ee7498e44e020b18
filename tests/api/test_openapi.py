"""The API documents itself: security schemes, tags, summaries and error responses for every route."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from genesis.api.app import create_app
from genesis.config import Settings


@pytest.fixture
def docs_client(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings())) as client:
        yield client


def test_swagger_ui_and_oauth2_flows_are_published(docs_client: TestClient) -> None:
    docs = docs_client.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    schema = docs_client.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    password, client = schemes["OAuth2Password"]["flows"], schemes["OAuth2ClientCredentials"]["flows"]
    assert list(password) == ["password"] and list(client) == ["clientCredentials"]  # one scheme per flow
    assert password["password"]["tokenUrl"] == client["clientCredentials"]["tokenUrl"] == "token"
    assert "audit:read" in password["password"]["scopes"]
    assert {t["name"] for t in schema["tags"]} >= {"auth", "analytics", "prices", "backtests", "anomalies", "audit"}


def test_every_operation_has_a_summary_a_tag_and_documented_errors(docs_client: TestClient) -> None:
    schema = docs_client.get("/openapi.json").json()
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            assert operation.get("tags"), where
            assert operation.get("summary") or operation.get("description"), where
            if operation.get("security"):
                assert {"401", "403"} <= set(operation["responses"]), where
                assert [set(r) for r in operation["security"]] == [{"OAuth2Password"}, {"OAuth2ClientCredentials"}]
                assert operation["security"][0]["OAuth2Password"] == operation["security"][1]["OAuth2ClientCredentials"]


def test_operation_ids_are_stable_camel_case_and_summaries_are_sentences(docs_client: TestClient) -> None:
    schema = docs_client.get("/openapi.json").json()
    ids = {(m.upper(), p): op["operationId"] for p, item in schema["paths"].items() for m, op in item.items()}
    assert ids[("POST", "/strategy/calculate")] == "strategyCalculate"
    assert ids[("POST", "/prices/{symbol}")] == "pricesIngest"
    assert len(set(ids.values())) == len(ids)
    for where, operation_id in ids.items():
        assert re.fullmatch(r"[a-z]+(?:[A-Z][a-z0-9]*)*", operation_id), where
    summaries = [op["summary"] for item in schema["paths"].values() for op in item.values()]
    assert not [s for s in summaries if re.fullmatch(r"[A-Z][a-z]*(\.[A-Z][a-z]*)+", s)]  # no "Strategy.Calculate"


def test_every_error_answer_is_a_problem_document_with_an_example_of_its_status(docs_client: TestClient) -> None:
    schema = docs_client.get("/openapi.json").json()
    assert {"type", "title", "status", "detail"} <= set(schema["components"]["schemas"]["Problem"]["properties"])
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                content = response["content"]
                assert list(content) == ["application/problem+json"], (method, path, status)
                assert content["application/problem+json"]["schema"]["$ref"].endswith("Problem")
                example = content["application/problem+json"]["example"]
                assert example["status"] == int(status), (method, path, status)
                assert example["type"].startswith("https://genesis.dev/problems/")


def test_closed_sets_are_enums(docs_client: TestClient) -> None:
    from genesis.analytics import INDICATORS, SIGNAL_STRATEGIES, STRATEGY_CALCULATORS
    from genesis.security.scopes import ROLES

    schema = docs_client.get("/openapi.json").json()
    models = schema["components"]["schemas"]
    assert models["UserCreate"]["properties"]["role"]["enum"] == list(ROLES)
    assert models["ClientCreate"]["properties"]["role"]["enum"] == list(ROLES)
    assert set(models["StrategyCalculate"]["properties"]["strategy_name"]["enum"]) == set(STRATEGY_CALCULATORS)
    assert set(models["BacktestCreate"]["properties"]["strategy"]["enum"]) == set(SIGNAL_STRATEGIES)
    params = {p["name"]: p for p in schema["paths"]["/indicators/{name}"]["post"]["parameters"]}
    assert set(params["name"]["schema"]["enum"]) == set(INDICATORS)
    query = {p["name"]: p for p in schema["paths"]["/audit/events"]["get"]["parameters"]}
    outcomes = {s.get("enum", [None])[0] for s in query["outcome"]["schema"].get("anyOf", [])} - {None}
    assert outcomes or query["outcome"]["schema"].get("enum")
