"""WAL mode is switched on safely when several connections open a fresh SQLite file together."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from genesis.storage.wal import enable_wal


def test_connections_opening_a_fresh_file_together_all_get_wal(tmp_path: Path) -> None:
    # Without the retry about one round in ten fails with "database is locked": SQLite does
    # not call the busy handler for a journal-mode change.
    failures: list[BaseException] = []
    for round_ in range(25):
        path = tmp_path / f"fresh-{round_}.db"
        sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
        barrier = threading.Barrier(6)
        modes: list[str] = []

        def open_one(path: Path = path, barrier: threading.Barrier = barrier, modes: list[str] = modes) -> None:
            conn = sqlite3.connect(path, timeout=5.0, isolation_level=None)
            try:
                barrier.wait()
                enable_wal(conn.cursor(), timeout=5.0)
                modes.append(conn.execute("PRAGMA journal_mode").fetchone()[0])
            except BaseException as exc:
                failures.append(exc)
            finally:
                conn.close()

        threads = [threading.Thread(target=open_one) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failures, failures[0]
        assert modes == ["wal"] * 6


def test_other_errors_are_not_retried() -> None:
    calls: list[str] = []

    class FailingCursor:
        def execute(self, sql: str) -> Any:
            calls.append(sql)
            raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        enable_wal(FailingCursor(), timeout=5.0)
    assert calls == ["PRAGMA journal_mode"]


def test_a_lock_held_past_the_timeout_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "held.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        conn = sqlite3.connect(path, timeout=0.05, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            enable_wal(conn.cursor(), timeout=0.2)
        conn.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
