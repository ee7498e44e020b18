"""Figure 2 (and the worker-memory figure 5): the API under load next to a bare FastAPI hello app.

Both are served by uvicorn with the settings of ``genesis serve`` (uvloop, httptools)
and loaded with wrk ``-t2 -c32`` (or the Python generator) in the same run. Genesis
runs on a temp data dir with rate limits off and the audit trail on; the number of
audit events committed during the load is reported next to the request count.
The PostgreSQL + Redis variant (2 workers) runs when GENESIS_BENCH_DATABASE_URL and
GENESIS_BENCH_REDIS_URL are set, on a scratch database created and dropped here.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench.core import MB, Figure, Scale, Target, skipped
from bench.loadgen import LoadGenerator, LoadResult, Request
from bench.servers import Server, admin_token, start_genesis, start_hello

CONNECTIONS = 32
PRICES = [round(100.0 + 0.5 * ((i * 7919) % 41 - 20) / 20, 4) for i in range(100)]


def requests(token: str) -> dict[str, Request]:
    auth = {"Authorization": f"Bearer {token}"}
    body = json.dumps({"strategy_name": "sma", "prices": PRICES, "period": 20}).encode()
    return {
        "POST /strategy/calculate": Request("POST", "/strategy/calculate", body,
                                            {**auth, "Content-Type": "application/json"}),
        "GET /health": Request("GET", "/health"),
        "GET /performance": Request("GET", "/performance", headers=auth),
    }


def audit_rows(data_dir: Path, database_url: str | None = None) -> int | None:
    """Events in the audit table (None when it cannot be read)."""
    try:
        if database_url:
            import psycopg

            with psycopg.connect(database_url) as conn:
                row = conn.execute("SELECT count(*) FROM audit_events").fetchone()
        else:
            with contextlib.closing(sqlite3.connect(f"file:{data_dir / 'genesis.db'}?mode=ro", uri=True)) as conn:
                row = conn.execute("SELECT count(*) FROM audit_events").fetchone()
        return int(row[0]) if row else None
    except Exception:
        return None


def measure(gen: LoadGenerator, server: Server, request: Request, seconds: float) -> LoadResult:
    gen.run(server.base, request, connections=CONNECTIONS, seconds=seconds / 5)  # warm-up
    result = gen.run(server.base, request, connections=CONNECTIONS, seconds=seconds)
    if result.errors:
        raise RuntimeError(f"{request.method} {request.path}: {result.errors} errors under load "
                           f"(see {server.log})")
    return result


def hello_rps(gen: LoadGenerator, tmp: Path, workers: int, seconds: float) -> tuple[LoadResult, int]:
    with start_hello(tmp / f"hello-{workers}", workers=workers) as hello:
        result = measure(gen, hello, Request("GET", "/hello"), seconds)
        return result, hello.worker_peak_rss()


def genesis_load(gen: LoadGenerator, data_dir: Path, *, workers: int, seconds: float,
                 env: dict[str, str] | None = None) -> tuple[dict[str, LoadResult], int, int | None, int | None]:
    """Per-route results, the worker peak RSS, and audit rows before/after the load."""
    with start_genesis(data_dir, workers=workers, env=env) as server:
        token = admin_token(server)
        url = (env or {}).get("GENESIS_DATABASE_URL")
        before = audit_rows(data_dir, url)
        results = {name: measure(gen, server, req, seconds) for name, req in requests(token).items()}
        after = audit_rows(data_dir, url)
        return results, server.worker_peak_rss(), before, after


def _audit_note(results: dict[str, LoadResult], before: int | None, after: int | None) -> str:
    authed = sum(r.requests for name, r in results.items() if name != "GET /health")
    if before is None or after is None:
        return "audit table unreadable"
    return f"audit events committed during the load: {after - before:,} for {authed:,} authenticated requests"


def sqlite_figures(gen: LoadGenerator, tmp: Path, seconds: float) -> list[Figure]:
    hello, hello_rss = hello_rps(gen, tmp, 1, seconds)
    results, rss, before, after = genesis_load(gen, tmp / "genesis", workers=1, seconds=seconds)
    if seconds >= 5:  # the anchor again after Genesis, the better of the two (drift on a shared machine)
        hello2, _ = hello_rps(gen, tmp, 1, seconds)
        hello = hello if hello.rps >= hello2.rps else hello2
    anchor = hello
    calc = results["POST /strategy/calculate"]
    note = f"{gen.tool}, {CONNECTIONS} connections, {seconds:g} s per route; {_audit_note(results, before, after)}"
    figures = [
        Figure("API POST /strategy/calculate (1 worker, SQLite)", calc.rps, "req/s", "bare FastAPI /hello",
               anchor.rps, "req/s", Target("ratio", ">=", 0.5), note=note),
        Figure("API POST /strategy/calculate p99", calc.p99_ms, "ms", "bare FastAPI /hello p99", anchor.p99_ms, "ms",
               Target("value", "<=", 25, "ms")),
    ]
    for name in ("GET /health", "GET /performance"):
        r = results[name]
        figures.append(Figure(f"API {name} (1 worker, SQLite)", r.rps, "req/s", "bare FastAPI /hello", anchor.rps,
                              "req/s", note=f"p99 {r.p99_ms:.1f} ms (hello {anchor.p99_ms:.1f} ms)"))
    figures.append(Figure("API worker peak RSS under load", rss / MB, "MB", "bare FastAPI worker", hello_rss / MB,
                          "MB", Target("value", "<=", 200, "MB")))
    return figures


@contextlib.contextmanager
def scratch_database(url: str) -> Iterator[str]:
    """A PostgreSQL database created for this run and dropped after it."""
    import psycopg

    name = f"genesis_bench_{secrets.token_hex(4)}"
    admin = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(admin)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_figures(gen: LoadGenerator, tmp: Path, seconds: float) -> list[Figure]:
    db, redis = os.environ.get("GENESIS_BENCH_DATABASE_URL"), os.environ.get("GENESIS_BENCH_REDIS_URL")
    if not db or not redis:
        return [skipped("API on PostgreSQL + Redis (2 workers)",
                        "set GENESIS_BENCH_DATABASE_URL and GENESIS_BENCH_REDIS_URL to run it")]
    hello, _ = hello_rps(gen, tmp, 2, seconds)
    with scratch_database(db) as url:
        env = {"GENESIS_DATABASE_URL": url, "GENESIS_REDIS_URL": redis,
               "GENESIS_KEY_PREFIX": f"bench-{secrets.token_hex(4)}"}
        results, rss, before, after = genesis_load(gen, tmp / "genesis-pg", workers=2, seconds=seconds, env=env)
    note = f"no target yet; {_audit_note(results, before, after)}"
    figures = [
        Figure(f"API {name} (2 workers, PostgreSQL + Redis)", r.rps, "req/s", "bare FastAPI /hello, 2 workers",
               hello.rps, "req/s", note=f"p99 {r.p99_ms:.1f} ms" + ("; " + note if i == 0 else ""))
        for i, (name, r) in enumerate(results.items())
    ]
    figures.append(Figure("API worker peak RSS (2 workers, PostgreSQL)", rss / MB, "MB"))
    return figures


def run(scale: Scale) -> list[Figure]:
    gen = LoadGenerator(prefer_wrk=not scale.tiny)
    seconds = scale.pick(10.0, 0.5)
    with tempfile.TemporaryDirectory(prefix="genesis-bench-api-") as name:
        tmp = Path(name)
        figures = sqlite_figures(gen, tmp, seconds)
        if scale.tiny:
            figures.append(skipped("API on PostgreSQL + Redis (2 workers)", "not run at the tiny size"))
        else:
            figures += postgres_figures(gen, tmp, seconds)
    return figures
