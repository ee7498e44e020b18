"""Figure 3c, price ingestion through the API: POST /prices/{symbol} with 10,000-point requests.

Anchor: raw ``sqlite3`` ``executemany`` of the same rows into the same ``prices``
table (same schema, WAL, ``synchronous=FULL``, one transaction per request) in the
same run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.core import Figure, Scale, Target
from bench.servers import admin_token, http, start_genesis

START_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def batches(n_requests: int, points: int) -> list[list[tuple[int, float]]]:
    """Strictly increasing one-second ticks, ``points`` per request."""
    out = []
    for r in range(n_requests):
        base = START_US + r * points * 1_000_000
        out.append([(base + i * 1_000_000, 100.0 + ((r * points + i) % 997) / 100) for i in range(points)])
    return out


def rfc3339(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def raw_sqlite_rate(path: Path, symbol: str, data: list[list[tuple[int, float]]]) -> float:
    import sqlalchemy

    from genesis.storage.models import metadata, prices

    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    metadata.create_all(engine, tables=[prices])
    engine.dispose()
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        sql = ("INSERT INTO prices (symbol, ts_us, open, high, low, close, volume) VALUES (?, ?, NULL, NULL, NULL, ?, "
               "NULL) ON CONFLICT (symbol, ts_us) DO NOTHING")
        began = time.perf_counter()
        for batch in data:
            conn.execute("BEGIN")
            conn.executemany(sql, [(symbol, ts, price) for ts, price in batch])
            conn.execute("COMMIT")
        return sum(map(len, data)) / (time.perf_counter() - began)


def api_rate(data_dir: Path, symbol: str, data: list[list[tuple[int, float]]]) -> tuple[float, dict[str, Any]]:
    bodies = [json.dumps({"points": [{"timestamp": rfc3339(ts), "price": p} for ts, p in batch]}).encode()
              for batch in data]
    with start_genesis(data_dir) as server:
        token = admin_token(server)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        # warm-up on another symbol: imports, statement caches, the audit writer
        status, body = http("POST", f"{server.base}/prices/WARMUP", body=bodies[0], headers=headers)
        if status != 200:
            raise RuntimeError(f"price ingestion failed ({status}): {body[:300]!r}")
        began = time.perf_counter()
        for raw in bodies:
            status, body = http("POST", f"{server.base}/prices/{symbol}", body=raw, headers=headers, timeout=120)
            if status != 200:
                raise RuntimeError(f"price ingestion failed ({status}): {body[:300]!r}")
        elapsed = time.perf_counter() - began
        return sum(map(len, data)) / elapsed, json.loads(body)


def run(scale: Scale) -> list[Figure]:
    points = scale.pick(10_000, 200)
    data = batches(scale.pick(10, 2), points)
    with tempfile.TemporaryDirectory(prefix="genesis-bench-prices-") as name:
        tmp = Path(name)
        raw = raw_sqlite_rate(tmp / "raw.db", "BENCH", data)
        api, last = api_rate(tmp / "genesis", "BENCH", data)
    return [Figure(f"price ingestion via API ({points:,}-point requests)", api, "points/s",
                   "raw SQLite executemany", raw, "points/s", Target("value", ">=", 100_000, "points/s"),
                   note=f"{len(data)} sequential requests; last answer {last}")]
