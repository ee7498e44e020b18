"""The documented clients run against a live server: the two Python examples and the curl -N line of docs/push.md."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.live import LiveServer, wait_until
from tests.push.wire import PUSH_ENV, auth, login

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"


def test_the_examples_are_the_ones_in_the_docs() -> None:
    doc = (ROOT / "docs" / "push.md").read_text()
    for name in ("push_websocket.py", "push_sse.py"):
        assert (EXAMPLES / name).read_text().strip() in doc, f"docs/push.md does not show {name} as it is"
    assert 'curl -sN -H "Authorization: Bearer $TOKEN" "$BASE/stream?topics=anomalies.BTC/USD"' in doc


def spikes(base: str, token: str, day: int) -> None:
    """Quiet prices, then a spike and its return: two anomalies on anomalies.BTC/USD."""
    prices = [100.0 * (1.001 if i % 2 else 1 / 1.001) for i in range(103)] + [150.0, 100.0]
    points = [{"timestamp": f"2026-01-{day:02d}T{i // 60:02d}:{i % 60:02d}:00Z", "price": p}
              for i, p in enumerate(prices)]
    response = httpx.post(f"{base}/prices/BTC/USD", json={"points": points}, headers=auth(token), timeout=30)
    assert response.status_code == 200, response.text


def test_the_documented_clients_receive_the_anomalies(tmp_path: Path) -> None:
    with LiveServer(data_dir=tmp_path / "data", env=PUSH_ENV) as server:
        token = login(server.base_url)
        env = {**os.environ, "GENESIS_TOKEN": token, "GENESIS_URL": server.base_url,
               "GENESIS_WS_URL": server.base_url.replace("http", "ws") + "/ws", "GENESIS_EXAMPLE_LIMIT": "2"}
        procs = [subprocess.Popen([sys.executable, str(EXAMPLES / name), "anomalies.BTC/USD"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for name in ("push_websocket.py", "push_sse.py")]
        curl = subprocess.Popen(["curl", "-sN", "--max-time", "60", "-H", f"Authorization: Bearer {token}",
                                 f"{server.base_url}/stream?topics=anomalies.BTC/USD"],
                                stdout=subprocess.PIPE, text=True)
        try:
            # A client that subscribes late gets the next round's anomalies: publish until each has its two.
            day = 1
            while any(p.poll() is None for p in procs) and day < 20:
                spikes(server.base_url, token, day)
                day += 1
                wait_until(lambda: all(p.poll() is not None for p in procs), timeout=3)
        finally:
            for p in [*procs, curl]:
                if p.poll() is None:
                    p.kill()
            outputs = [p.communicate(timeout=30) for p in procs]  # reaps them and closes their pipes
            curl_out, _ = curl.communicate(timeout=30)
        for (out, err), name in zip(outputs, ("websocket", "sse"), strict=True):
            lines = [line for line in out.splitlines() if line.strip()]
            assert len(lines) == 2, (name, out, err)
            assert all('"type": "anomaly"' in line and '"symbol": "BTC/USD"' in line for line in lines), (name, out)
        assert "event: message" in curl_out and '"type":"anomaly"' in curl_out
