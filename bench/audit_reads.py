"""Figure 4 (and the export-memory figure 5): reading a large audit trail.

A SQLite store of N events (1,000,000 at full size, spread over 30 days) is built
once; then the first page of a one-hour range is queried (the store's ``query``,
and ``GET /audit/events`` when the API has it), the whole chain is verified, the
whole trail is exported, and inclusion proofs of random events in the 1,000,000-event
tree are served (the service's ``inclusion``: proof and event, and
``GET /audit/proofs/inclusion``). Verification and export run in child processes so
that their peak RSS is their own. Anchors: the same SQL through bare ``sqlite3``
(query), a bare ``sqlite3`` scan of every row (verify), the child's RSS before
exporting (export), one event read by seq through bare ``sqlite3`` (proof), ``GET /health``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

from bench.core import MB, Figure, Scale, Target, best_time, proc_status, skipped
from bench.servers import REPO, admin_token, http, start_genesis

STEP_US = 2_592_000  # 1,000,000 events span 30 days; one hour holds ~1,389 of them
HOUR_US = 3_600_000_000
PAGE = 100


def build_store(url: str, n: int, *, chunk: int = 20_000) -> tuple[int, int]:
    """Append ``n`` events 2.6 s apart, ending an hour ago; returns (first, last) occurred_at_us."""
    from genesis.audit.chain import prepare
    from genesis.audit.events import new_event, now_us
    from genesis.storage.audit_sql import open_audit_store

    store = open_audit_store(url)
    end = now_us() - HOUR_US
    step = STEP_US
    start = end - n * step
    actions = ("strategy.calculate", "prices.ingest", "auth.login", "backtests.run")
    try:
        for base in range(0, n, chunk):
            store.append([
                prepare(new_event(actions[i % 4], actor=f"user-{i % 50}", message=f"event {i}",
                                  metadata={"i": i, "symbol": "BTC/USD"}, correlation_id=f"c-{i // 10}",
                                  source_ip="127.0.0.1", method="POST", path="/strategy/calculate", status=200,
                                  occurred_at_us=start + i * step))
                for i in range(base, min(n, base + chunk))
            ])
    finally:
        store.close()
    return start, end


def query_figure(url: str, db: Path, start: int, n: int, repeat: int) -> Figure:
    from genesis.storage.audit_sql import open_audit_store

    lo = start + n * STEP_US // 2 - HOUR_US
    hi = lo + HOUR_US
    store = open_audit_store(url)
    try:
        events, _ = store.query(start_us=lo, end_us=hi, limit=PAGE)
        assert len(events) == PAGE, len(events)
        ours = best_time(lambda: store.query(start_us=lo, end_us=hi, limit=PAGE), repeat=repeat)
    finally:
        store.close()
    with contextlib.closing(sqlite3.connect(db)) as conn:
        sql = ("SELECT * FROM audit_events WHERE occurred_at_us >= ? AND occurred_at_us < ? "
               "ORDER BY seq ASC LIMIT ?")
        raw = best_time(lambda: conn.execute(sql, (lo, hi, PAGE + 1)).fetchall(), repeat=repeat)
    return Figure("audit query: first page of one hour (store)", ours * 1e3, "ms", "bare sqlite3, same SQL",
                  raw * 1e3, "ms", Target("value", "<", 20, "ms"), note=f"page of {PAGE}")


def child(kind: str, url: str, out: str) -> None:
    """Run in a child process: verify or export, print timings and peak RSS as JSON."""
    from genesis.audit.trail import export_events, verify_store
    from genesis.storage.audit_sql import open_audit_store

    result: dict[str, Any] = {}
    db = urllib.parse.unquote(urllib.parse.urlsplit(url).path)[1:]
    if kind == "scan":
        with contextlib.closing(sqlite3.connect(db)) as conn:
            began = time.perf_counter()
            cur = conn.execute("SELECT * FROM audit_events ORDER BY seq")
            n = 0
            while rows := cur.fetchmany(5000):
                n += len(rows)
            result = {"events": n, "seconds": time.perf_counter() - began}
    store = open_audit_store(url)
    result["rss_before"] = proc_status().get("VmRSS", 0)
    if kind == "verify":
        began = time.perf_counter()
        report = verify_store(store)
        result.update(events=report.events_checked, seconds=time.perf_counter() - began, ok=report.ok)
    elif kind == "export":
        from genesis.audit.checkpoints import load_or_create_signing_key
        from genesis.audit.heads import HeadMaker, log_signer

        heads = HeadMaker(store, log_signer(load_or_create_signing_key(Path(out).parent / "keys")))
        began = time.perf_counter()
        summary = export_events(store, Path(out), heads=heads)
        result.update(events=summary.count, seconds=time.perf_counter() - began)
    store.close()
    result["peak_rss"] = proc_status().get("VmHWM", 0)
    print(json.dumps(result))


def run_child(kind: str, url: str, out: Path) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "bench.audit_reads", kind, url, str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=600, check=True)
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def cli_verify(data_dir: Path, url: str) -> float | None:
    """Wall seconds of ``genesis audit verify`` (None when the CLI has no such command)."""
    env = {"GENESIS_DATA_DIR": str(data_dir), "GENESIS_DATABASE_URL": url, "GENESIS_LOG_CONSOLE": "false"}
    base = [sys.executable, "-m", "genesis", "audit", "verify"]
    import os

    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith("GENESIS_")}, **env}
    if subprocess.run([*base, "--help"], env=full_env, capture_output=True, check=False).returncode != 0:
        return None
    began = time.perf_counter()
    proc = subprocess.run(base, env=full_env, capture_output=True, text=True, check=False, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"genesis audit verify failed: {proc.stdout[-500:]} {proc.stderr[-500:]}")
    return time.perf_counter() - began


def proof_figure(url: str, db: Path, n: int, repeat: int) -> Figure:
    """The service's inclusion proof (O(log n) node reads in one query, plus the event) on the n-event tree."""
    import random

    from genesis.audit.merkle import leaf_hash, verify_inclusion
    from genesis.services import audit_trail
    from genesis.storage.audit_sql import open_audit_store

    picks = random.Random(3).sample(range(1, n + 1), min(n, 200))
    store = open_audit_store(url)
    try:
        size, root = store.tree_root()
        assert size == n, (size, n)
        sample = audit_trail.inclusion(store, tree_size=n, seq=picks[0])
        path = [_b64decode(h) for h in sample["audit_path"]]
        verify_inclusion(leaf_hash(_b64decode(sample["leaf_input"])), picks[0] - 1, n, path, root)
        ours = best_time(lambda: [audit_trail.inclusion(store, tree_size=n, seq=s) for s in picks],
                         repeat=repeat) / len(picks)
    finally:
        store.close()
    with contextlib.closing(sqlite3.connect(db)) as conn:
        sql = "SELECT * FROM audit_events WHERE seq = ?"
        raw = best_time(lambda: [conn.execute(sql, (s,)).fetchall() for s in picks], repeat=repeat) / len(picks)
    return Figure(f"inclusion proof, {n:,}-event trail (storage)", ours * 1e3, "ms",
                  "bare sqlite3, the event by seq", raw * 1e3, "ms", Target("value", "<", 5, "ms"),
                  note=f"proof ({len(path)} hashes, one node query) and the event; {len(picks)} random events")


def _b64decode(text: str) -> bytes:
    import base64

    return base64.b64decode(text)


def http_figures(data_dir: Path, start: int, n: int, scale: Scale) -> list[Figure]:
    with start_genesis(data_dir) as server:
        token = admin_token(server)
        return [http_query_figure(server, token, start, n, scale.pick(30, 3)),
                http_proof_figure(server, token, n, scale.pick(5, 1))]


def http_proof_figure(server: Any, token: str, n: int, repeat: int) -> Figure:
    import random

    name = f"inclusion proof, {n:,}-event trail (GET /audit/proofs/inclusion)"
    headers = {"Authorization": f"Bearer {token}"}
    picks = random.Random(4).sample(range(1, n + 1), min(n, 100))
    paths = [f"/audit/proofs/inclusion?tree_size={n}&seq={s}" for s in picks]
    status, body = http("GET", server.base + paths[0], headers=headers)
    if status != 200:
        return skipped(name, f"the route answered {status}: {body[:200]!r}")
    took = best_time(lambda: [http("GET", server.base + p, headers=headers) for p in paths],
                     repeat=repeat) / len(paths)
    hello = best_time(lambda: http("GET", server.base + "/health"), repeat=repeat)
    return Figure(name, took * 1e3, "ms", "GET /health on the same server", hello * 1e3, "ms",
                  Target("value", "<", 5, "ms"), note=f"{len(picks)} random events, one request each, sequential")


def http_query_figure(server: Any, token: str, start: int, n: int, repeat: int) -> Figure:
    name = "audit query: GET /audit/events first page of one hour"
    lo = start + n * STEP_US // 2 - HOUR_US
    headers = {"Authorization": f"Bearer {token}"}
    path = f"/audit/events?start={lo}&end={lo + HOUR_US}&limit={PAGE}"
    status, _ = http("GET", server.base + path, headers=headers)
    if status == 404:
        return skipped(name, "the route is not there yet")
    if status != 200:
        from datetime import UTC, datetime

        def iso(us: int) -> str:
            return urllib.parse.quote(datetime.fromtimestamp(us / 1e6, UTC).isoformat())

        path = f"/audit/events?start={iso(lo)}&end={iso(lo + HOUR_US)}&limit={PAGE}"
        status, body = http("GET", server.base + path, headers=headers)
        if status != 200:
            return skipped(name, f"the route answered {status}: {body[:200]!r}")
    took = best_time(lambda: http("GET", server.base + path, headers=headers), repeat=repeat)
    hello = best_time(lambda: http("GET", server.base + "/health"), repeat=repeat)
    return Figure(name, took * 1e3, "ms", "GET /health on the same server", hello * 1e3, "ms",
                  Target("value", "<", 20, "ms"))


def run(scale: Scale) -> list[Figure]:
    n = scale.pick(1_000_000, 3_000)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="genesis-bench-audit-") as name:
        tmp = Path(name)
        data_dir = tmp / "genesis"
        data_dir.mkdir()
        db = data_dir / "genesis.db"
        url = f"sqlite:///{db}"
        from genesis.storage.migrate import upgrade_database

        upgrade_database(url)
        began = time.perf_counter()
        start, _ = build_store(url, n)
        built = time.perf_counter() - began

        figures.append(query_figure(url, db, start, n, scale.pick(30, 3)))
        scan = run_child("scan", url, tmp / "unused")
        verify = run_child("verify", url, tmp / "unused")
        assert verify["ok"] and verify["events"] == n, verify
        figures.append(Figure("audit verify (store, 1 process)", verify["events"] / verify["seconds"], "events/s",
                              "bare sqlite3 scan of the rows", scan["events"] / scan["seconds"], "events/s",
                              Target("value", ">=", 500_000, "events/s"),
                              note=f"{n:,} events (built in {built:.0f} s)"))
        seconds = cli_verify(data_dir, url)
        if seconds is None:
            figures.append(skipped("genesis audit verify (CLI)", "the CLI has no `audit verify` command yet"))
        else:
            figures.append(Figure("genesis audit verify (CLI, wall time)", n / seconds, "events/s",
                                  "verify_store in-process", verify["events"] / verify["seconds"], "events/s",
                                  Target("value", ">=", 500_000, "events/s"), note="includes process start"))
        export = run_child("export", url, tmp / "export.ndjson")
        assert export["events"] == n, export
        figures.append(Figure(f"audit export of {n:,} events, peak RSS", export["peak_rss"] / MB, "MB",
                              "same process before exporting", export["rss_before"] / MB, "MB",
                              Target("value", "<=", 100, "MB"),
                              note=f"{export['events'] / export['seconds']:,.0f} events/s"))
        figures.append(proof_figure(url, db, n, scale.pick(5, 1)))
        figures += http_figures(data_dir, start, n, scale)
    return figures


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2], sys.argv[3])
