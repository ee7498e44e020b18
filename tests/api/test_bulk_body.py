"""POST /prices reads its body itself (api/bulk_body.py): the answers are those FastAPI gave for the declared model,
except where the module says otherwise (413 first, the first unknown member only, 100 errors at most, no offset)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from genesis.api.app import create_app
from genesis.config import Settings
from tests.conftest import bearer, token_for


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    return bearer(token_for(client)["access_token"])


def _post(client: TestClient, headers: dict[str, str], content: bytes, content_type: str | None = "application/json"
          ) -> Any:
    extra = {"Content-Type": content_type} if content_type else {}
    return client.post("/prices/BULK", content=content, headers={**headers, **extra})


def _errors(response: Any) -> list[tuple[Any, ...]]:
    if response.status_code == 415:  # a body that is not JSON: the problem type says so, as for every JSON route
        return [(("body",), response.json()["type"].rsplit("/", 1)[1])]
    assert response.status_code == 422, response.text
    return [(tuple(e["loc"]), e["type"]) for e in response.json()["errors"]]  # (the problem shows loc as text)


@pytest.mark.parametrize(("content", "content_type", "expected"), [
    (b'{"points": [{"timestamp": "2026-01-01T00:00:00Z", "price": 1}]}', "text/plain",
     [(("body",), "unsupported-media-type")]),
    (b'{"points": [{"timestamp": "2026-01-01T00:00:00Z", "price": 1}]}', None, [(("body",), "unsupported-media-type")]),
    (b"", "application/json", [(("body",), "missing")]),
    (b"   ", "application/json", [(("body",), "json_invalid")]),
    (b'{"points": [', "application/json", [(("body",), "json_invalid")]),
    (b"[1, 2]", "application/json", [(("body",), "model_attributes_type")]),
    (b"{}", "application/json", [(("body", "points"), "missing")]),
    (b'{"points": 5}', "application/json", [(("body", "points"), "list_type")]),
    (b'{"points": []}', "application/json", [(("body", "points"), "too_short")]),
    (b'{"role": "admin", "points": []}', "application/json", [(("body", "role"), "extra_forbidden")]),
    (b'{"points": [{"timestamp": "x", "price": 1}, 7, {"timestamp": "2026-01-01T00:00:00Z", "price": -1}]}',
     "application/vnd.api+json",
     [(("body", "points", "0", "timestamp"), "string_pattern_mismatch"),
      (("body", "points", "1"), "model_attributes_type"),
      (("body", "points", "2", "price"), "greater_than")]),
    # The same points as text: FastAPI's answer word for word (from_attributes, as it validates bodies).
    (b'{"points": ["x"]}', "application/json", [(("body", "points", "0"), "model_attributes_type")]),
])
def test_bad_bodies_get_the_answers_fastapi_gave(
    client: TestClient, admin: dict[str, str], content: bytes, content_type: str | None, expected: list[Any]
) -> None:
    assert _errors(_post(client, admin, content, content_type)) == expected


def test_a_good_body_in_any_json_form_is_stored(client: TestClient, admin: dict[str, str]) -> None:
    body = (b' \n{ "points" : [ {"price": 2.5, "timestamp": "2026-01-01T00:00:00Z"},\n'
            b'{"timestamp": "2026-01-01T00:01:00Z", "close": 3, "volume": 0} ] }\n')
    response = _post(client, admin, body, "application/json; charset=utf-8")
    assert response.status_code == 200, response.text
    assert response.json() == {"symbol": "BULK", "received": 2, "inserted": 2, "duplicates": 0}


def test_too_many_points_are_refused_before_any_is_validated(make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(make_settings(max_prices_per_request=3))) as client:
        points = b",".join(b'{"junk": true}' for _ in range(4))
        response = _post(client, bearer(token_for(client)["access_token"]), b'{"points": [' + points + b"]}")
    assert response.status_code == 413, response.text


def test_a_body_with_thousands_of_bad_points_gets_the_first_hundred_errors(
    client: TestClient, admin: dict[str, str]
) -> None:
    body = b'{"points": [' + b",".join(b'{"timestamp": "x"}' for _ in range(5000)) + b"]}"
    errors = _errors(_post(client, admin, body))
    assert len(errors) == 100 and errors[0][0][:3] == ("body", "points", "0")
