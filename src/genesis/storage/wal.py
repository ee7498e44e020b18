"""WAL mode for SQLite files, safe when several connections open a fresh file at once."""

from __future__ import annotations

import time
from typing import Any


def enable_wal(cursor: Any, *, timeout: float) -> None:
    """Put a SQLite database in WAL mode, waiting up to ``timeout`` s for other connections.

    Switching the journal mode needs an exclusive lock and SQLite answers "database is
    locked" at once instead of calling the busy handler, so several connections opening a
    fresh file together (worker threads, worker processes) retry here. A database already in
    WAL mode costs one read. ``cursor`` is a DBAPI cursor (sqlite3's or an async adapter's).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            cursor.execute("PRAGMA journal_mode")
            if str(cursor.fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.fetchall()
            return
        except Exception as exc:  # sqlite3 or the async adapter's OperationalError
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)
