"""Kill -9 at a random moment under load, GENESIS_KILL_RUNS times; after each crash the history must hold.

Each run: a few threads send authenticated POST /prices (a unique timestamp each) and GET /me (a unique
X-Request-ID each) to a live ``genesis serve`` on SQLite; after a random 0.3-1.5 s the whole process group gets
SIGKILL. Every request is recorded as in Jepsen: ``ok`` (a 2xx arrived), ``fail`` (a 4xx/5xx arrived, or the
connection was refused so nothing was sent) or ``info`` (sent, no answer). Then, before restarting:
``PRAGMA integrity_check`` is ok; after restarting: every ok request has its audit event (correlation id) and every
ok ingest its price, no fail request has a success event, and the chain verifies: in-process after every run, and
with ``genesis audit verify --json`` (exit 0) after every fifth and the last run, in the background during the next
run - a process start per run would double the loop's time (GENESIS_KILL_CLI_VERIFY_EVERY=1 runs it every time).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from genesis.services import audit_trail
from genesis.storage.audit_sql import open_audit_store
from tests.conftest import ADMIN_PASSWORD
from tests.live import LiveServer
from tests.reliability.conftest import FUZZ_SEED

KILL_RUNS = int(os.environ.get("GENESIS_KILL_RUNS", "20"))
CLI_VERIFY_EVERY = int(os.environ.get("GENESIS_KILL_CLI_VERIFY_EVERY", "5"))  # 1: the CLI after every run
THREADS = 4
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120 + 12 * KILL_RUNS)]
BASE_TIME = datetime(2030, 1, 1, tzinfo=UTC)


@dataclass
class Op:
    rid: str
    kind: str  # "ingest" or "me"
    symbol: str | None = None
    timestamp: str | None = None
    outcome: str = "info"  # ok / fail / info
    status: int | None = None


@dataclass
class Load:
    """Threads making requests until stopped; every request ends up in ``ops`` with its outcome."""

    base_url: str
    token: str
    run: int
    ops: list[Op] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        self._threads = [threading.Thread(target=self._work, args=(t,), daemon=True) for t in range(THREADS)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def _work(self, index: int) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(5.0, connect=1.0)) as client:
            n = 0
            while not self._stop.is_set():
                n += 1
                rid = f"kill-r{self.run}-t{index}-n{n}"
                if n % 2:
                    stamp = (BASE_TIME + timedelta(seconds=self.run * 1_000_000 + index * 100_000 + n)).isoformat()
                    op = Op(rid, "ingest", f"KILL{index}", stamp)
                    request = client.build_request("POST", f"/prices/KILL{index}", headers={
                        **headers, "X-Request-ID": rid}, json={"points": [{"timestamp": stamp, "price": 100.0 + n}]})
                else:
                    op = Op(rid, "me")
                    request = client.build_request("GET", "/me", headers={**headers, "X-Request-ID": rid})
                self.ops.append(op)
                try:
                    response = client.send(request)
                except httpx.ConnectError:
                    op.outcome = "fail"  # refused: the request never reached a server
                    time.sleep(0.01)
                    continue
                except httpx.HTTPError:
                    op.outcome = "info"  # sent, no answer: it may or may not have happened
                    continue
                op.status = response.status_code
                op.outcome = "ok" if response.status_code < 300 else "fail"


def _audit_outcomes(db: Path, prefix: str) -> dict[str, set[str]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT correlation_id, outcome FROM audit_events WHERE correlation_id LIKE ?",
                            (f"{prefix}%",)).fetchall()
    found: dict[str, set[str]] = {}
    for correlation_id, outcome in rows:
        found.setdefault(correlation_id, set()).add(outcome)
    return found


def _integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def _verify(data_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "GENESIS_DATA_DIR": str(data_dir), "GENESIS_LOG_CONSOLE": "false"}
    return subprocess.Popen([sys.executable, "-m", "genesis", "audit", "verify", "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _verify_in_process(data_dir: Path, db: Path) -> Any:
    """What ``genesis audit verify`` checks (chain, tree and signed heads), without a process start."""
    store = open_audit_store(f"sqlite:///{db}")
    try:
        return audit_trail.verify(store, hmac_key=None, keys=audit_trail.trusted_keys(data_dir, None))
    finally:
        store.close()


def _check_verify(process: subprocess.Popen[str], run: int) -> None:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, f"run {run}: audit verify failed:\n{out}\n{err[-2000:]}"
    assert json.loads(out)["ok"] is True


def test_kill_minus_nine_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    rng = random.Random(FUZZ_SEED)
    data_dir = tmp_path / "data"
    db = data_dir / "genesis.db"
    env = {"GENESIS_ADMIN_PASSWORD": ADMIN_PASSWORD, "GENESIS_RATE_LIMITS_ENABLED": "false"}
    server = LiveServer(data_dir=data_dir, env=env).start()
    token = httpx.post(f"{server.base_url}/token", timeout=30, data={
        "grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD}).json()["access_token"]
    totals: Counter[str] = Counter()
    pending_verify: tuple[subprocess.Popen[str], int] | None = None
    started = time.monotonic()
    try:
        for run in range(KILL_RUNS):
            load = Load(server.base_url, token, run).start()
            time.sleep(rng.uniform(0.3, 1.5))
            assert server.proc is not None
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait(timeout=30)
            load.stop()
            assert _integrity(db) == "ok", f"run {run}: integrity_check failed after the crash"
            if pending_verify is not None:
                _check_verify(*pending_verify)
                pending_verify = None
            server.stop()
            server = LiveServer(data_dir=data_dir, env=env).start()  # recovery happens here
            report = _verify_in_process(data_dir, db)
            assert report.ok, f"run {run}: the chain does not verify after recovery: {report.to_dict()}"
            if run % CLI_VERIFY_EVERY == 0 or run == KILL_RUNS - 1:
                pending_verify = (_verify(data_dir), run)  # the CLI too, in the background

            ops = list(load.ops)
            outcomes = Counter(op.outcome for op in ops)
            totals.update(outcomes)
            assert outcomes["ok"] > 0, f"run {run}: no request succeeded before the kill ({outcomes})"
            audited = _audit_outcomes(db, f"kill-r{run}-")
            lost = [op.rid for op in ops if op.outcome == "ok" and "success" not in audited.get(op.rid, set())]
            assert not lost, f"run {run}: acknowledged requests without their audit event: {lost[:10]}"
            phantom = [op.rid for op in ops if op.outcome == "fail" and "success" in audited.get(op.rid, set())]
            assert not phantom, f"run {run}: refused requests with a success event: {phantom[:10]}"
            _check_prices(server.base_url, token, [op for op in ops if op.kind == "ingest" and op.outcome == "ok"])
        if pending_verify is not None:
            _check_verify(*pending_verify)
            pending_verify = None
    finally:
        server.stop()
        if pending_verify is not None and pending_verify[0].poll() is None:
            pending_verify[0].kill()
            pending_verify[0].wait(timeout=30)
    elapsed = time.monotonic() - started
    print(f"\nkill loop: {KILL_RUNS} runs in {elapsed:.1f} s; requests {dict(totals)}")


def _check_prices(base_url: str, token: str, acknowledged: list[Op]) -> None:
    by_symbol: dict[str, set[str]] = {}
    for op in acknowledged:
        assert op.symbol is not None and op.timestamp is not None
        by_symbol.setdefault(op.symbol, set()).add(op.timestamp)
    with httpx.Client(base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
        for symbol, stamps in by_symbol.items():
            response = client.get(f"/prices/{symbol}", params={"limit": 100_000})
            assert response.status_code == 200, response.text
            stored = {_normalise(p["timestamp"]) for p in response.json()["points"]}
            missing = {s for s in stamps if _normalise(s) not in stored}
            assert not missing, f"acknowledged prices lost for {symbol}: {sorted(missing)[:5]}"


def _normalise(stamp: Any) -> datetime:
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
