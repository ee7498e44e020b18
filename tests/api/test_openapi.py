"""The API documents itself: security schemes, tags, summaries and error responses for every route."""

from __future__ import annotations

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
    flows = schema["components"]["securitySchemes"]["OAuth2"]["flows"]
    assert flows["password"]["tokenUrl"] == "token"
    assert flows["clientCredentials"]["tokenUrl"] == "token"
    assert "audit:read" in flows["password"]["scopes"]
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
                assert operation["security"][0]["OAuth2"] is not None, where
