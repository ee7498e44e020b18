"""The original audit handler, reimplemented faithfully as the anchor of the ingestion figure.

Each record opens a new SQLite connection, runs one INSERT, commits and closes
(SQLite's defaults: rollback journal, ``synchronous=FULL``). The original replaced
``Handler.lock`` (an RLock) with a plain ``Lock`` that ``handle()`` already holds
when ``emit()`` takes it again, so it deadlocked on the first record; here the
handler keeps its RLock, which is the only change.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
from pathlib import Path

AUDIT_LEVEL = 25

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp TEXT NOT NULL,
    level TEXT NOT NULL,
    user TEXT,
    message TEXT NOT NULL,
    metadata TEXT
)
"""


class SQLiteAuditHandler(logging.Handler):
    """One connection, one INSERT and one commit per record (the original design)."""

    def __init__(self, db_path: Path) -> None:
        super().__init__()
        self.db_path = db_path
        with sqlite3.connect(db_path) as conn:
            conn.execute(SCHEMA)

    # The original: ``def createLock(self): self.lock = threading.Lock()`` and then
    # ``with self.lock:`` inside emit() -> deadlock. Fixed by keeping the RLock.

    def emit(self, record: logging.LogRecord) -> None:
        try:
            with self.lock:  # type: ignore[union-attr]  # the reentrant lock handle() holds
                conn = sqlite3.connect(self.db_path, timeout=30)
                try:
                    conn.execute(
                        "INSERT INTO audit_logs (timestamp, level, user, message, metadata) VALUES (?, ?, ?, ?, ?)",
                        (
                            dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
                            record.levelname,
                            getattr(record, "user", None),
                            record.getMessage(),
                            json.dumps(getattr(record, "metadata", {}) or {}),
                        ),
                    )
                    conn.commit()
                finally:
                    conn.close()
        except Exception:
            self.handleError(record)


class JsonLineFormatter(logging.Formatter):
    """The stdlib anchor's formatter: one ``json.dumps`` line per record."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage(),
                "user": getattr(record, "user", None),
                "metadata": getattr(record, "metadata", None),
            }
        )
