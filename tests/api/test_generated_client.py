"""A client generated from the OpenAPI document with openapi-python-client compiles and runs the walk-through.

The generator reads the document a running server publishes; the generated package is imported and used exactly
as its README shows, against that server on 127.0.0.1: log in, calculate, ingest, read anomalies, revoke.
"""

from __future__ import annotations

import compileall
import importlib
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD
from tests.live import LiveServer

pytestmark = pytest.mark.slow


def _generator() -> str:
    found = Path(sys.executable).with_name("openapi-python-client")
    if not found.exists():
        pytest.skip("openapi-python-client is not installed (make install)")
    return str(found)


def test_a_generated_python_client_compiles_and_calls_the_walkthrough(tmp_path: Path) -> None:
    generator = _generator()
    with LiveServer(data_dir=tmp_path / "data", env={"GENESIS_ADMIN_PASSWORD": ADMIN_PASSWORD}) as server:
        (tmp_path / "openapi.json").write_bytes(httpx.get(f"{server.base_url}/openapi.json", timeout=30).content)
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        generated = subprocess.run(
            [generator, "generate", "--path", "openapi.json", "--meta", "none", "--output-path", "genesis_client",
             "--overwrite"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert generated.returncode == 0, generated.stdout + generated.stderr
        assert "will not be generated" not in generated.stdout + generated.stderr  # every operation made it
        assert compileall.compile_dir(tmp_path / "genesis_client", quiet=1)
        sys.path.insert(0, str(tmp_path))
        try:
            _walkthrough(server.base_url)
        finally:
            sys.path.remove(str(tmp_path))
            for name in [m for m in sys.modules if m == "genesis_client" or m.startswith("genesis_client.")]:
                del sys.modules[name]
    shutil.rmtree(tmp_path / "genesis_client", ignore_errors=True)


def _walkthrough(base_url: str) -> None:
    pkg = importlib.import_module("genesis_client")
    models = importlib.import_module("genesis_client.models")
    issue = importlib.import_module("genesis_client.api.auth.auth_token_issue")
    revoke = importlib.import_module("genesis_client.api.auth.auth_token_revoke")
    me = importlib.import_module("genesis_client.api.auth.auth_me")
    calculate = importlib.import_module("genesis_client.api.analytics.strategy_calculate")
    ingest = importlib.import_module("genesis_client.api.prices.prices_ingest")
    anomalies = importlib.import_module("genesis_client.api.anomalies.anomalies_read")

    # As context managers: the generated clients hold httpx connection pools, closed on exit.
    with pkg.Client(base_url=base_url) as anonymous:
        tokens = issue.sync(client=anonymous, body=models.BodyAuthTokenIssue(
            grant_type="password", username="admin", password=ADMIN_PASSWORD))
        assert isinstance(tokens, models.TokenResponse), tokens
        with pkg.AuthenticatedClient(base_url=base_url, token=tokens.access_token) as client:
            _calls(models, calculate, ingest, anomalies, client)
            revoke.sync_detailed(client=anonymous, body=models.BodyAuthTokenRevoke(token=tokens.access_token))
            assert me.sync_detailed(client=client).status_code == 401


def _calls(models: Any, calculate: Any, ingest: Any, anomalies: Any, client: Any) -> None:
    result = calculate.sync(client=client, body=models.StrategyCalculate(
        strategy_name=models.StrategyCalculateStrategyName.SMA, prices=[101.2, 102.5, 101.9, 103.1, 104.0], period=3))
    assert isinstance(result, models.StrategyResult) and result.result == pytest.approx(103.0)

    start = datetime(2026, 1, 2, tzinfo=UTC)
    points = [models.PointIn(timestamp=start + timedelta(minutes=i), price=43000.0 + i) for i in range(30)]
    stored = ingest.sync(symbol="BTC/USD", client=client, body=models.PricesIn(points=points))
    assert isinstance(stored, models.IngestOut) and stored.inserted == 30
    verdict = anomalies.sync(symbol="BTC/USD", client=client, window=10)
    assert isinstance(verdict, models.AnomalyOut) and verdict.scanned.points == 30

    refused = calculate.sync(client=client, body=models.StrategyCalculate(
        strategy_name=models.StrategyCalculateStrategyName.SMA, prices=[1.0, 2.0], period=3))
    assert isinstance(refused, models.ValidationProblem) and refused.status == 422  # errors come back typed, too
    assert refused.type_.endswith("/invalid-input") and "period" in refused.detail
