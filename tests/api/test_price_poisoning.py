"""Prices that cannot be poisoned in advance: no future points, conflicts are not duplicates, one symbol grammar."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from genesis.services import market
from tests.conftest import bearer, token_for


@pytest.fixture
def trader(client: TestClient) -> dict[str, str]:
    admin = token_for(client)["access_token"]
    client.post("/users", json={"username": "tom", "role": "trader", "password": "trader-password"},
                headers=bearer(admin))
    return bearer(token_for(client, "tom", "trader-password")["access_token"])


def _stamp(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _post(client: TestClient, headers: dict[str, str], points: list[dict[str, Any]], **params: str) -> Any:
    return client.post("/prices/POI/USD", json={"points": points}, params=params, headers=headers)


def test_a_timestamp_beyond_now_plus_the_skew_is_refused_with_422(client: TestClient, trader: dict[str, str]) -> None:
    for far in ("9999-12-31T23:59:59Z", _stamp(timedelta(seconds=400))):
        refused = _post(client, trader, [{"timestamp": "2026-01-01T00:00:00Z", "price": 1.0},
                                          {"timestamp": far, "price": 2.0}])
        assert refused.status_code == 422, refused.text
        assert "points[1].timestamp is in the future" in refused.json()["detail"]
    assert client.get("/prices/POI/USD", headers=trader).status_code == 404  # nothing of it was stored
    near = _post(client, trader, [{"timestamp": _stamp(timedelta(seconds=200)), "price": 2.0}])
    assert near.status_code == 200  # within the 300 s default skew


def test_a_conflicting_point_is_a_409_with_the_stored_value_and_nothing_is_stored(
    client: TestClient, trader: dict[str, str]
) -> None:
    first = [{"timestamp": "2026-01-02T00:00:00Z", "price": 43000.5}]
    assert _post(client, trader, first).json()["inserted"] == 1
    again = _post(client, trader, first)  # identical: an idempotent duplicate
    assert again.status_code == 200 and again.json() == {"symbol": "POI/USD", "received": 1, "inserted": 0,
                                                         "duplicates": 1}
    poisoned = [{"timestamp": "2026-01-02T00:01:00Z", "price": 1.0},  # new
                {"timestamp": "2026-01-02T00:00:00Z", "price": 99999.0}]  # conflicts
    poisoned.sort(key=lambda p: p["timestamp"])
    conflict = _post(client, trader, poisoned)
    assert conflict.status_code == 409, conflict.text
    body = conflict.json()
    assert body["type"].endswith("/price-conflict") and body["conflict_count"] == 1
    assert body["conflicts"] == [{"stored": {"timestamp": "2026-01-02T00:00:00.000000Z", "close": 43000.5,
                                             "open": None, "high": None, "low": None, "volume": None}}]
    stored = client.get("/prices/POI/USD", headers=trader).json()
    assert [p["close"] for p in stored["points"]] == [43000.5]  # the new point of the refused request is not kept


def test_a_replacement_is_asked_for_and_audited_with_the_old_and_new_values(
    client: TestClient, trader: dict[str, str]
) -> None:
    _post(client, trader, [{"timestamp": "2026-01-03T00:00:00Z", "price": 10.0}])
    replaced = _post(client, trader, [{"timestamp": "2026-01-03T00:00:00Z", "close": 11.0, "volume": 5.0}],
                     on_conflict="replace")
    assert replaced.status_code == 200, replaced.text
    assert client.get("/prices/POI/USD", headers=trader).json()["points"][0]["close"] == 11.0
    admin = bearer(token_for(client)["access_token"])
    events = client.get("/audit/events", params={"action": "prices.replaced"}, headers=admin).json()["events"]
    assert len(events) == 1 and events[0]["actor"] == "user:tom"
    change = events[0]["metadata"]["points"][0]
    assert change["old"]["close"] == 10.0 and change["old"]["volume"] is None
    assert change["new"]["close"] == 11.0 and change["new"]["volume"] == 5.0
    outcome = client.get("/audit/events", params={"action": "prices.ingest", "outcome": "success"},
                         headers=admin).json()["events"]
    assert outcome[-1]["metadata"]["replaced"] == 1
    assert outcome[-1]["correlation_id"] == events[0]["correlation_id"]


@pytest.mark.parametrize("symbol", ["A//B", "A/../B", "A/./B", "A/", "/A", "A/.hidden", "BTC\n", "A B",
                                    "X" * 33, ".."])
def test_symbols_off_the_grammar_are_refused_everywhere(
    client: TestClient, trader: dict[str, str], symbol: str
) -> None:
    assert not market.is_symbol(symbol)
    with pytest.raises(market.InvalidInput):
        market.check_symbol(symbol)
    from urllib.parse import quote

    if symbol.endswith("\n"):
        return  # over HTTP Starlette's route pattern stops before a trailing newline: that writes "BTC", a valid symbol
    path = "/prices/" + quote(symbol, safe="")  # escaped, so that the client does not resolve "." and ".." itself
    write = client.post(path, json={"points": [{"timestamp": "2026-01-01T00:00:00Z", "price": 1.0}]},
                        headers=trader)
    assert write.status_code in (404, 422), (symbol, write.status_code)  # "/A" and "A/" do not match the route
    assert client.get(path, headers=trader).status_code in (404, 422)


@pytest.mark.parametrize("symbol", ["BTC/USD", "BRK.B", "ES=F", "EUR:USD", "X^Y", "A/B/C", "a-b_c", "X" * 32])
def test_symbols_on_the_grammar_are_accepted(symbol: str) -> None:
    assert market.check_symbol(symbol) == symbol


def test_the_csv_import_reports_conflicts_apart_from_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from genesis.cli.main import app
    from genesis.config import get_settings

    monkeypatch.setenv("GENESIS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GENESIS_LOG_CONSOLE", "false")
    monkeypatch.delenv("GENESIS_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        first = tmp_path / "a.csv"
        first.write_text("Date,Close\n2024-01-02,10.5\n2024-01-03,11.5\n")
        assert runner.invoke(app, ["prices", "import", str(first), "-s", "CSV", "--json"]).exit_code == 0
        second = tmp_path / "b.csv"
        second.write_text("Date,Close\n2024-01-02,10.5\n2024-01-03,99.0\n2024-01-04,12.0\n2999-01-01,1.0\n")
        result = runner.invoke(app, ["prices", "import", str(second), "-s", "CSV", "--json"])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.output)
        assert (summary["inserted"], summary["duplicates"], summary["replaced"]) == (1, 1, 0)
        assert [(c["line"], c["stored"]["close"], c["file"]["close"]) for c in summary["conflicts"]] == [
            (3, 11.5, 99.0)]
        assert [r["line"] for r in summary["rejected"]] == [5]  # the future row
        text = runner.invoke(app, ["prices", "import", str(second), "-s", "CSV"]).output
        assert "1 conflicting with stored points" in text and "line 3: stored close 11.5, file close 99" in text
        forced = json.loads(runner.invoke(app, ["prices", "import", str(second), "-s", "CSV", "--replace",
                                                "--json"]).output)
        assert forced["replaced"] == 1
        trail = [json.loads(line) for line in runner.invoke(app, ["audit", "query", "--action", "prices.replaced",
                                                                  "--json"]).output.splitlines()]
        assert [(p["line"], p["old"]["close"], p["new"]["close"]) for p in trail[0]["metadata"]["points"]] == [
            (3, 11.5, 99.0)]
    finally:
        get_settings.cache_clear()
