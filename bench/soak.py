"""Soak: a steady request rate against a live ``genesis serve`` for a while; zero 5xx and zero lost audit events.

    python -m bench.soak --seconds 60 --rate 500 --threads 12    # what `make soak` runs
    python -m bench.soak --seconds 5 --json out.json

An open-loop schedule (requests are due at fixed times whether or not earlier ones have answered, so a slow server
cannot slow the load down and hide its latency) spreads authenticated POST /prices, GET /me, GET /prices and
POST /strategy/calculate over client threads, each with a unique X-Request-ID. The server is then stopped with
SIGTERM (which drains the audit writer); every request answered 2xx must have its audit event, and
``genesis audit verify --json`` must exit 0. Prints one JSON object with the figures; exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.live import LiveServer

PASSWORD = "soak-admin-Pa55word"
BASE_TIME = datetime(2020, 1, 1, tzinfo=UTC)  # in the past: prices may not be stamped in the future


@dataclass
class Results:
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    late: list[float] = field(default_factory=list)  # how far behind schedule each request started
    ok_ids: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _request(client: httpx.Client, n: int, prices: list[float]) -> httpx.Request:
    rid = f"soak-{n}"
    headers = {"X-Request-ID": rid}
    kind = n % 4
    if kind == 0:
        stamp = (BASE_TIME + timedelta(seconds=n)).isoformat()
        return client.build_request("POST", f"/prices/SOAK{n % 8}", headers=headers,
                                    json={"points": [{"timestamp": stamp, "price": 100.0 + n % 50}]})
    if kind == 1:
        return client.build_request("GET", "/me", headers=headers)
    if kind == 2:
        return client.build_request("GET", f"/prices/SOAK{n % 8}", params={"limit": 100}, headers=headers)
    return client.build_request("POST", "/strategy/calculate", headers=headers,
                                json={"strategy_name": "ema", "prices": prices, "period": 20})


def run_load(base_url: str, token: str, *, seconds: float, rate: float, threads: int) -> Results:
    """Send ``rate`` requests per second for ``seconds`` from ``threads`` threads on a fixed schedule."""
    results = Results()
    total = int(seconds * rate)
    start = time.monotonic() + 0.2
    prices = [100.0 + (i % 17) * 0.5 for i in range(200)]
    next_index = iter(range(total))
    index_lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(base_url=base_url, timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
            while True:
                with index_lock:
                    n = next(next_index, None)
                if n is None:
                    return
                due = start + n / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                request = _request(client, n, prices)
                began = time.monotonic()
                try:
                    response = client.send(request)
                except httpx.HTTPError as exc:
                    with results.lock:
                        results.errors[type(exc).__name__] += 1
                    continue
                elapsed = time.monotonic() - began
                with results.lock:
                    results.statuses[response.status_code] += 1
                    results.latencies.append(elapsed)
                    results.late.append(max(0.0, began - due))
                    if response.status_code < 300:
                        results.ok_ids.append(f"soak-{n}")

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=seconds + 120)
    return results


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _audited(db: Path) -> set[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT correlation_id FROM audit_events WHERE correlation_id LIKE 'soak-%' "
                            "AND outcome = 'success'").fetchall()
    return {row[0] for row in rows}


def _verify(data_dir: Path) -> dict[str, Any]:
    env = {**os.environ, "GENESIS_DATA_DIR": str(data_dir), "GENESIS_LOG_CONSOLE": "false"}
    out = subprocess.run([sys.executable, "-m", "genesis", "audit", "verify", "--json"], env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    report: dict[str, Any] = json.loads(out.stdout) if out.stdout.strip() else {"ok": False, "detail": out.stderr}
    report["exit_code"] = out.returncode
    return report


def soak(*, seconds: float, rate: float, threads: int, workers: int, data_dir: Path) -> dict[str, Any]:
    """Run the soak and return its figures (``passed`` says whether every check held)."""
    env = {"GENESIS_ADMIN_PASSWORD": PASSWORD, "GENESIS_RATE_LIMITS_ENABLED": "false"}
    server = LiveServer(data_dir=data_dir, env=env, workers=workers).start()
    try:
        token = httpx.post(f"{server.base_url}/token", timeout=30, data={
            "grant_type": "password", "username": "admin", "password": PASSWORD}).json()["access_token"]
        for i in range(8):  # every symbol read during the soak exists from the start
            seeded = httpx.post(f"{server.base_url}/prices/SOAK{i}", timeout=30, headers={
                "Authorization": f"Bearer {token}"}, json={"points": [{"timestamp": "2019-12-31T00:00:00Z",
                                                                        "price": 100.0}]})
            seeded.raise_for_status()
        started = time.monotonic()
        results = run_load(server.base_url, token, seconds=seconds, rate=rate, threads=threads)
        wall = time.monotonic() - started
    finally:
        server.stop()  # SIGTERM: the audit writer drains before the process exits
    audited = _audited(data_dir / "genesis.db")
    lost = sorted(set(results.ok_ids) - audited)
    verify = _verify(data_dir)
    sent = sum(results.statuses.values()) + sum(results.errors.values())
    server_errors = sum(count for status, count in results.statuses.items() if status >= 500)
    figures = {
        "seconds": seconds, "target_rate": rate, "requests": sent, "achieved_rate": round(sent / wall, 1),
        "statuses": {str(k): v for k, v in sorted(results.statuses.items())}, "transport_errors": dict(results.errors),
        "server_errors": server_errors, "acknowledged": len(results.ok_ids), "lost_audit_events": len(lost),
        "latency_ms": {name: round(_percentile(results.latencies, q) * 1000, 1)
                       for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))},
        "schedule_lag_p99_ms": round(_percentile(results.late, 0.99) * 1000, 1),
        "audit_verify_ok": bool(verify.get("ok")) and verify["exit_code"] == 0,
        "audit_events_checked": verify.get("events_checked"),
    }
    figures["passed"] = (server_errors == 0 and not results.errors and not lost and figures["audit_verify_ok"]
                         and sent == int(seconds * rate))
    if lost:
        figures["lost_sample"] = lost[:10]
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to keep the load on (default 60)")
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second (default 100)")
    parser.add_argument("--threads", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--workers", type=int, default=1, help="genesis serve --workers (default 1)")
    parser.add_argument("--data-dir", type=Path, default=None, help="keep the server's data here (default: temp)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="genesis-soak-") as scratch:
        data_dir = args.data_dir or Path(scratch) / "data"
        figures = soak(seconds=args.seconds, rate=args.rate, threads=args.threads, workers=args.workers,
                       data_dir=data_dir)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if figures["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
