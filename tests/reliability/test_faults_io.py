"""I/O faults: the audit store failing (an injected insert error, a held SQLite write lock, PostgreSQL cut off, a
full disk) refuses state changes with 503 before anything changes; failing log sinks (a full disk, a directory
replaced by a file) never stop the API, are reported once and counted; everything recovers without a restart.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from genesis.api.app import create_app
from genesis.audit.logging import active_logging
from genesis.config import Settings
from tests.conftest import bearer, token_for
from tests.live import TcpProxy, wait_until
from tests.reliability.conftest import settings_for, strict_json

pytestmark = pytest.mark.timeout(180)
FAULT_TRIGGER = ("CREATE TRIGGER reliability_fault BEFORE INSERT ON audit_events "
                 "BEGIN SELECT RAISE(ABORT, 'injected I/O error'); END")


def _state_changes(tag: str) -> list[tuple[str, str, dict[str, Any]]]:
    """One request of each state-changing kind (method, url, json body), unique per ``tag``."""
    return [
        ("POST", f"/prices/F{tag}", {"points": [{"timestamp": "2025-01-01T00:00:00Z", "price": 1.0}]}),
        ("POST", "/users", {"username": f"u{tag}", "role": "viewer", "password": "viewer-password"}),
        ("POST", "/clients", {"client_id": f"c{tag}", "role": "viewer"}),
        ("POST", "/backtests", {"strategy": "sma_crossover", "params": {"fast": 1, "slow": 2},
                                "prices": [1.0, 2.0, 3.0], "symbol": None}),
    ]


def _send_all(client: TestClient, headers: dict[str, str], requests: list[tuple[str, str, dict[str, Any]]],
              tag: str) -> list[Any]:
    """Send ``requests`` concurrently (a held lock makes each wait for its timeout)."""
    results: list[Any] = [None] * len(requests)

    def send(i: int) -> None:
        method, url, body = requests[i]
        results[i] = client.request(method, url, json=body, headers={**headers, "X-Request-ID": f"{tag}-{i}"})

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def _no_effect(client: TestClient, admin: dict[str, str], tag: str) -> None:
    assert client.get(f"/prices/F{tag}", headers=admin).status_code == 404
    assert f"u{tag}" not in {u["username"] for u in client.get("/users", headers=admin).json()}
    assert f"c{tag}" not in {c["client_id"] for c in client.get("/clients", headers=admin).json()}


def _events_of(client: TestClient, admin: dict[str, str], prefix: str, count: int) -> list[dict[str, Any]]:
    found = []
    for i in range(count):
        page = client.get("/audit/events", params={"correlation_id": f"{prefix}-{i}"}, headers=admin).json()
        found += page["events"]
    return found


def _assert_refused(responses: list[Any], *, within: float | None = None) -> None:
    for response in responses:
        assert response is not None, "a request hung"
        assert response.status_code == 503, response.text
        assert int(response.headers["retry-after"]) >= 1
        body = strict_json(response.content)
        assert body["status"] == 503 and "audit" in body["detail"]


def _integrity(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def test_an_audit_store_that_cannot_insert_refuses_changes_before_they_happen(
    fresh_settings: Callable[..., Settings],
) -> None:
    settings = fresh_settings(rate_limits_enabled=False, database_timeout_seconds=1)
    db = settings.data_dir / "genesis.db"
    with TestClient(create_app(settings)) as client:
        admin = bearer(token_for(client)["access_token"])
        before = client.get("/audit/verify", headers=admin).json()["events_checked"]
        with sqlite3.connect(db, isolation_level=None) as dba:  # another process breaks audit inserts only
            dba.execute(FAULT_TRIGGER)
            started = time.monotonic()
            refused = _send_all(client, admin, [*_state_changes("io1"), ("GET", "/me", {})], "inject")
            login = client.post("/token", data={"grant_type": "password", "username": "admin",
                                                "password": settings.admin_password.get_secret_value()})  # type: ignore[union-attr]
            assert time.monotonic() - started < 10
            _assert_refused(refused)
            assert login.status_code == 503 and "access_token" not in login.text
            assert client.get("/health").status_code == 200  # not audited: still served
            dba.execute("DROP TRIGGER reliability_fault")
        _no_effect(client, admin, "io1")
        assert _events_of(client, admin, "inject", 5) == []  # no event, not even a partial one
        recovered = _send_all(client, admin, _state_changes("io2"), "after")
        assert [r.status_code for r in recovered] == [200, 201, 201, 201]
        assert {e["outcome"] for e in _events_of(client, admin, "after", 4)} == {"started", "success"}
        report = client.get("/audit/verify", headers=admin).json()
        assert report["ok"] is True and report["events_checked"] > before
    assert _integrity(db) == "ok"


def test_a_held_sqlite_write_lock_fails_closed_within_the_timeout_then_recovers(
    fresh_settings: Callable[..., Settings],
) -> None:
    settings = fresh_settings(rate_limits_enabled=False, database_timeout_seconds=1)
    db = settings.data_dir / "genesis.db"
    with TestClient(create_app(settings)) as client:
        admin = bearer(token_for(client)["access_token"])
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another connection holds the write lock
        try:
            started = time.monotonic()
            refused = _send_all(client, admin, [*_state_changes("lk1"), ("GET", "/me", {})], "locked")
            elapsed = time.monotonic() - started
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        _assert_refused(refused)
        assert elapsed < 15, f"requests waited {elapsed:.1f} s for the lock"
        _no_effect(client, admin, "lk1")
        assert _events_of(client, admin, "locked", 5) == []
        assert [r.status_code for r in _send_all(client, admin, _state_changes("lk2"), "unlocked")] == [200, 201,
                                                                                                        201, 201]
        assert client.get("/audit/verify", headers=admin).json()["ok"] is True
    assert _integrity(db) == "ok"


@pytest.mark.postgres
def test_postgresql_cut_off_fails_closed_without_hanging_then_recovers(
    fresh_settings: Callable[..., Settings], pg_database_url: str,
) -> None:
    from genesis.storage.migrate import upgrade_database

    upgrade_database(pg_database_url)
    url = make_url(pg_database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = fresh_settings(database_url=proxied, rate_limits_enabled=False, database_timeout_seconds=2)
    try:
        with TestClient(create_app(settings)) as client:
            admin = bearer(token_for(client)["access_token"])
            assert client.get("/me", headers=admin).status_code == 200
            proxy.cut()
            started = time.monotonic()
            refused = _send_all(client, admin, [*_state_changes("pg1"), ("GET", "/me", {})], "cut")
            elapsed = time.monotonic() - started
            ready = client.get("/ready")
            for response in refused:
                assert response is not None and response.status_code == 503, response and response.text
                assert int(response.headers["retry-after"]) >= 1
            assert elapsed < 20, f"requests took {elapsed:.1f} s with the database gone"
            assert ready.status_code == 503
            proxy.restore()
            assert wait_until(lambda: client.get("/me", headers=admin).status_code == 200, timeout=30)
            _no_effect(client, admin, "pg1")
            assert _events_of(client, admin, "cut", 5) == []
            assert [r.status_code for r in _send_all(client, admin, _state_changes("pg2"), "back")] == [200, 201,
                                                                                                         201, 201]
            assert client.get("/audit/verify", headers=admin).json()["ok"] is True
    finally:
        proxy.close()


# --- full disks and broken log directories -------------------------------------------------------------------------


@contextmanager
def tiny_tmpfs(path: Path, size: str) -> Iterator[bool]:
    """Mount a tmpfs of ``size`` at ``path`` when this process may (root in a container); yield whether it did."""
    path.mkdir(parents=True, exist_ok=True)
    mount, umount = shutil.which("mount"), shutil.which("umount")
    mounted = False
    if mount and umount and os.geteuid() == 0:
        result = subprocess.run([mount, "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                                capture_output=True, check=False, timeout=30)
        mounted = result.returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run([umount, "-l", str(path)], capture_output=True, check=False, timeout=30)


def _metric(client: TestClient, admin: dict[str, str], name: str) -> float:
    text = client.get("/metrics", headers=admin).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


def _fill(directory: Path) -> Path:
    """Fill the filesystem of ``directory`` to the last byte; return the ballast file."""
    ballast = directory / f"ballast-{uuid.uuid4().hex[:6]}"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                continue
    finally:
        os.close(fd)
    return ballast


def _sink_fault_then_recovery(
    client: TestClient, admin: dict[str, str], logs: Path, capfd: pytest.CaptureFixture[str],
    break_logs: Callable[[], None], repair_logs: Callable[[], None],
) -> None:
    errors_before = _metric(client, admin, "genesis_log_sink_errors_total")
    capfd.readouterr()
    break_logs()
    codes = [client.get("/me", headers={**admin, "X-Request-ID": f"sink-{i}"}).status_code for i in range(40)]
    codes += [client.post("/prices/SINK", headers=admin, json={"points": [
        {"timestamp": f"2025-01-01T00:00:{i:02d}Z", "price": 1.0}]}).status_code for i in range(10)]
    assert active_logging().flush(5)
    assert set(codes) == {200}, "requests must be served while logging fails"
    err = capfd.readouterr().err
    failures = [line for line in err.splitlines() if "genesis logging: sink" in line and "failed" in line]
    assert failures, err
    assert len(failures) == len({line.split("'")[1] for line in failures}), f"reported more than once:\n{err}"
    assert _metric(client, admin, "genesis_log_sink_errors_total") > errors_before
    repair_logs()
    client.get("/me", headers={**admin, "X-Request-ID": "sink-recovered"})
    assert active_logging().flush(5)
    assert wait_until(lambda: "recovered" in (capfd.readouterr().err or "") or _logged(logs, "sink-recovered"),
                      timeout=10)
    client.get("/me", headers={**admin, "X-Request-ID": "sink-recovered-2"})
    assert active_logging().flush(5)
    assert wait_until(lambda: _logged(logs, "sink-recovered-2"), timeout=10)


def _logged(logs: Path, correlation_id: str) -> bool:
    text = (logs / "genesis.log").read_bytes() if (logs / "genesis.log").is_file() else b""
    return f'"correlation_id":"{correlation_id}"'.encode() in text


def _full_log_disk(tmp_path: Path, fresh_settings: Callable[..., Settings], capfd: pytest.CaptureFixture[str]) -> Path:
    logs = tmp_path / "logs"
    with tiny_tmpfs(logs, "256k") as mounted:
        if not mounted:
            pytest.skip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN); the next test covers the rest")
        settings = fresh_settings(rate_limits_enabled=False, log_dir=logs)
        ballast: list[Path] = []
        with TestClient(create_app(settings)) as client:
            admin = bearer(token_for(client)["access_token"])
            _sink_fault_then_recovery(client, admin, logs, capfd, lambda: ballast.append(_fill(logs)),
                                      lambda: ballast.pop().unlink())
        kept = tmp_path / "kept-logs"
        shutil.copytree(logs, kept, ignore=shutil.ignore_patterns("ballast-*"))
    return kept


def test_a_full_log_disk_never_stops_the_api_and_logging_resumes_when_space_is_freed(
    tmp_path: Path, fresh_settings: Callable[..., Settings], capfd: pytest.CaptureFixture[str],
) -> None:
    _full_log_disk(tmp_path, fresh_settings, capfd)


def test_a_full_log_disk_leaves_no_torn_line_behind(
    tmp_path: Path, fresh_settings: Callable[..., Settings], capfd: pytest.CaptureFixture[str],
) -> None:
    kept = _full_log_disk(tmp_path, fresh_settings, capfd)
    for path in kept.glob("genesis*.log"):
        for raw in path.read_bytes().splitlines():
            if raw:
                strict_json(raw)


def test_a_log_directory_replaced_by_a_file_never_stops_the_api(
    tmp_path: Path, fresh_settings: Callable[..., Settings], capfd: pytest.CaptureFixture[str],
) -> None:
    logs = tmp_path / "logs"
    settings = fresh_settings(rate_limits_enabled=False, log_dir=logs)
    moved = tmp_path / "logs.moved"
    stand_in = tmp_path / "stand-in"

    def replace_with_file() -> None:
        logs.rename(moved)
        stand_in.write_text("not a directory")
        for _ in range(50):  # the log thread may recreate the directory in between: remove it and retry
            try:
                os.replace(stand_in, logs)
                return
            except OSError:
                shutil.rmtree(logs, ignore_errors=True)
        raise AssertionError("could not put a file where the log directory was")

    def restore() -> None:
        logs.unlink()  # the sinks create the directory again themselves

    with TestClient(create_app(settings)) as client:
        admin = bearer(token_for(client)["access_token"])
        _sink_fault_then_recovery(client, admin, logs, capfd, replace_with_file, restore)


def test_a_full_disk_under_the_database_fails_closed_then_recovers(
    tmp_path: Path, fresh_settings: Callable[..., Settings],
) -> None:
    data = tmp_path / "data"
    with tiny_tmpfs(data, "16m") as mounted:
        if not mounted:
            pytest.skip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)")
        settings = settings_for(data, rate_limits_enabled=False, log_dir=tmp_path / "logs",
                                database_timeout_seconds=1)
        with TestClient(create_app(settings)) as client:
            admin = bearer(token_for(client)["access_token"])
            assert client.get("/me", headers=admin).status_code == 200
            ballast = _fill(data)
            refused = _send_all(client, admin, [*_state_changes("df1"), ("GET", "/me", {})], "full")
            for response in refused:
                assert response is not None and response.status_code == 503, response and response.text
            assert client.get("/health").status_code == 200
            ballast.unlink()
            assert wait_until(lambda: client.get("/me", headers=admin).status_code == 200, timeout=20)
            _no_effect(client, admin, "df1")
            assert [r.status_code for r in _send_all(client, admin, _state_changes("df2"), "freed")] == [200, 201,
                                                                                                          201, 201]
            assert client.get("/audit/verify", headers=admin).json()["ok"] is True
        assert _integrity(data / "genesis.db") == "ok"



def test_the_nth_audit_write_failing_fails_closed_and_loses_nothing(
    fresh_settings: Callable[..., Settings],
) -> None:
    """SQLite's fault-injection loop, at the audit store: for every N, the Nth write (and its one retry) fails.

    Four state-changing requests make eight appends (a write-ahead ``started`` event and an outcome event each).
    Whichever fails: no 500, every 2xx has its success event, no 503 has one, a request whose ``started`` event
    was refused changed nothing, and a request whose outcome event was refused left its ``started`` event (the
    trail records the attempt the client was told failed). The chain verifies and the same requests succeed after.
    """
    settings = fresh_settings(rate_limits_enabled=False)
    with TestClient(create_app(settings)) as client:
        admin = bearer(token_for(client)["access_token"])
        store = client.app.state.runtime.audit.store  # type: ignore[attr-defined]
        real_insert_rows = store._insert_rows
        for n in range(1, 9):
            calls = 0

            def failing_insert_rows(cur: Any, rows: Any, n: int = n) -> Any:
                nonlocal calls
                calls += 1
                if calls in (n, n + 1):  # the Nth write and the store's retry of it, inside its transaction
                    raise sqlite3.OperationalError("disk I/O error (injected)")
                return real_insert_rows(cur, rows)

            store._insert_rows = failing_insert_rows
            tag = f"nth{n}"
            responses = []
            for i, (method, url, body) in enumerate(_state_changes(tag)):
                responses.append(client.request(method, url, json=body,
                                                 headers={**admin, "X-Request-ID": f"{tag}-{i}"}))
            store._insert_rows = real_insert_rows
            statuses = [r.status_code for r in responses]
            assert all(s in (200, 201, 503) for s in statuses), (n, statuses)
            assert statuses.count(503) == 1, (n, statuses)  # exactly the request whose write failed
            refused = statuses.index(503)
            assert refused == (n - 1) // 2, (n, statuses)
            events = _events_of(client, admin, tag, 4)
            outcomes = {(e["correlation_id"], e["outcome"]) for e in events}
            for i, status in enumerate(statuses):
                if status != 503:
                    assert (f"{tag}-{i}", "success") in outcomes, (n, i)
                else:
                    assert (f"{tag}-{i}", "success") not in outcomes, (n, i)
                    started = (f"{tag}-{i}", "started") in outcomes
                    assert started == (n % 2 == 0), (n, i, outcomes)  # odd N: the started event failed
            if n % 2 == 1 and refused < 3:  # refused before the change (backtests have no lookup by tag)
                method, url, body = _state_changes(tag)[refused]
                if url.startswith("/prices"):
                    assert client.get(url, headers=admin).status_code == 404
                elif url == "/users":
                    assert f"u{tag}" not in {u["username"] for u in client.get("/users", headers=admin).json()}
                else:
                    assert f"c{tag}" not in {c["client_id"] for c in client.get("/clients", headers=admin).json()}
        # A single failed write (the retry succeeds on a fresh connection) is invisible to clients: all succeed,
        # each with exactly one success event.
        for n in range(1, 9):
            calls = 0

            def failing_once(cur: Any, rows: Any, n: int = n) -> Any:
                nonlocal calls
                calls += 1
                if calls == n:
                    raise sqlite3.OperationalError("disk I/O error (injected)")
                return real_insert_rows(cur, rows)

            store._insert_rows = failing_once
            tag = f"once{n}"
            statuses = [client.request(method, url, json=body, headers={**admin, "X-Request-ID": f"{tag}-{i}"})
                        .status_code for i, (method, url, body) in enumerate(_state_changes(tag))]
            store._insert_rows = real_insert_rows
            assert statuses == [200, 201, 201, 201], (n, statuses)
            successes = [e for e in _events_of(client, admin, tag, 4) if e["outcome"] == "success"]
            assert sorted(e["correlation_id"] for e in successes) == [f"{tag}-{i}" for i in range(4)]
        recovered = _send_all(client, admin, _state_changes("nth-after"), "nth-after")
        assert [r.status_code for r in recovered] == [200, 201, 201, 201]
        report = client.get("/audit/verify", headers=admin).json()
        assert report["ok"] is True, report
    assert _integrity(settings.data_dir / "genesis.db") == "ok"


class _ShortThenFullDisk:
    """``os`` for the log sinks, whose Nth ``write`` is cut short and whose next one fails with ENOSPC."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def write(self, fd: int, data: Any) -> int:
        self.calls += 1
        if self.calls == self.n:
            return os.write(fd, bytes(data)[: max(1, len(data) // 2)])  # a torn line on disk, for now
        if self.calls == self.n + 1:
            raise OSError(28, "No space left on device (injected)")
        return os.write(fd, data)


def test_the_nth_log_write_cut_short_never_fails_a_request_nor_leaves_a_torn_line(
    tmp_path: Path, fresh_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """SQLite's fault-injection loop, at the log sinks: for every N, the Nth write is short and the next fails."""
    from genesis.audit import sinks

    logs = tmp_path / "logs"
    settings = fresh_settings(rate_limits_enabled=False, log_dir=logs)
    with TestClient(create_app(settings)) as client:
        admin = bearer(token_for(client)["access_token"])
        flush = active_logging().flush  # type: ignore[union-attr]
        for n in range(1, 13):
            flush(5.0)
            faulty = _ShortThenFullDisk(n)
            monkeypatch.setattr(sinks, "os", faulty)
            statuses: list[int] = []
            for _ in range(20):  # until the fault was reached and writing went on after it (batching varies)
                statuses += [client.get("/me", headers={**admin, "X-Request-ID": f"log{n}-{len(statuses)}"})
                             .status_code for _ in range(4)]
                flush(5.0)
                if faulty.calls > n + 1:
                    break
            monkeypatch.setattr(sinks, "os", os)
            assert statuses == [200] * len(statuses), (n, statuses)
            assert faulty.calls > n + 1, (n, faulty.calls)
        assert client.get("/me", headers={**admin, "X-Request-ID": "log-after"}).status_code == 200
        flush(5.0)
    files = list(logs.glob("genesis*.log"))
    assert files
    text = ""
    for path in files:
        for raw in path.read_bytes().splitlines():
            if raw:
                strict_json(raw)  # every line whole: the short writes were truncated back
        text += path.read_text("utf-8")
    assert "log-after" in text and "log12-" in text  # logging went on after every fault
    assert "No space left on device" in capfd.readouterr().err  # reported
