"""Database engines: one async engine for the service, URLs normalised per driver.

Users configure a plain URL (``sqlite:///var/genesis.db`` or
``postgresql://user@host/db``); Genesis picks the drivers: aiosqlite / sqlite3
for SQLite and psycopg 3 (async and sync from the same package) for PostgreSQL.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from genesis.secretfile import PRIVATE_FILE_MODE, make_private_dirs
from genesis.storage.audit_sql import DURABLE_COMMITS_SQL
from genesis.storage.wal import enable_wal

log = logging.getLogger("genesis.storage")

# The busy timeout comes from the driver's ``timeout`` (GENESIS_DATABASE_TIMEOUT_SECONDS), not a pragma.
SQLITE_PRAGMAS = (
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
)


def backend_of(url: str) -> str:
    """``sqlite`` or ``postgresql`` for a configured database URL."""
    name = make_url(url).get_backend_name()
    if name not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database backend {name!r}: use sqlite:// or postgresql://")
    return name


def async_url(url: str) -> str:
    """The URL with the async driver Genesis uses for its backend."""
    parsed = make_url(url)
    driver = "aiosqlite" if backend_of(url) == "sqlite" else "psycopg"
    return parsed.set(drivername=f"{parsed.get_backend_name()}+{driver}").render_as_string(hide_password=False)


def sync_url(url: str) -> str:
    """The URL with the sync driver (migrations, CLI tools)."""
    parsed = make_url(url)
    driver = "pysqlite" if backend_of(url) == "sqlite" else "psycopg"
    return parsed.set(drivername=f"{parsed.get_backend_name()}+{driver}").render_as_string(hide_password=False)


def sqlite_path(url: str) -> str | None:
    """The file path of a SQLite URL (None for in-memory or non-SQLite URLs)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return parsed.database


def prepare_sqlite_file(path: str) -> None:
    """Make the SQLite file (and its directory, when missing) private before SQLite opens it.

    The database holds password hashes. SQLite creates a missing file with the process umask (often 0644) and
    gives its -wal, -shm and -journal files the database file's own mode, so creating the file empty with 0600
    first makes all of them 0600. A file left group- or world-readable by an earlier version is tightened.
    """
    file = Path(path)
    make_private_dirs(file.parent)
    with contextlib.suppress(FileExistsError):  # an empty file is a new database to SQLite
        os.close(os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    for candidate in (file, *(file.with_name(file.name + suffix) for suffix in ("-wal", "-shm", "-journal"))):
        try:
            mode = stat.S_IMODE(candidate.stat().st_mode)
            if mode & 0o077:
                candidate.chmod(mode & 0o700)
                log.warning("made %s private (it was mode %o)", candidate.name, mode)
        except FileNotFoundError:
            continue
        except OSError as exc:  # not ours to change: say so, do not stop
            log.warning("could not make %s private: %s", candidate.name, type(exc).__name__)


def _sqlite_pragmas(timeout: float) -> Callable[[Any, Any], None]:
    """The ``connect`` listener: WAL (waiting up to ``timeout`` s) and the pragmas."""

    def apply(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        enable_wal(cursor, timeout=timeout)
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    return apply


def create_engine(
    url: str, *, pool_size: int = 10, max_overflow: int = 10, timeout: float = 5.0
) -> AsyncEngine:
    """An async engine for ``url`` with pragmas (SQLite) or a sized pool (PostgreSQL)."""
    if backend_of(url) == "sqlite":
        path = sqlite_path(url)
        if path is not None:
            prepare_sqlite_file(path)
        # Keep connections (and their aiosqlite threads) open: a new one per checkout costs a thread
        # start plus the pragmas, which dominated request time.
        engine = create_async_engine(
            async_url(url), connect_args={"timeout": timeout}, poolclass=AsyncAdaptedQueuePool,
            pool_size=pool_size, max_overflow=max_overflow, pool_timeout=timeout,
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas(timeout))
        return engine
    engine = create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=timeout,
        pool_pre_ping=True,
        connect_args={"connect_timeout": max(1, int(timeout))},
    )
    event.listen(engine.sync_engine, "connect", _postgresql_session)
    return engine


def _postgresql_session(dbapi_connection: Any, _record: Any) -> None:
    """What is acknowledged is on disk: a server, role or URL default of off/local is raised to on."""
    cursor = dbapi_connection.cursor()
    cursor.execute(DURABLE_COMMITS_SQL)  # stronger settings (remote_write, remote_apply) are kept
    cursor.close()
    dbapi_connection.commit()  # a setting made in a transaction that is rolled back would be undone


async def ping(engine: AsyncEngine) -> bool:
    """Whether the database answers ``SELECT 1``."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        return False
    return True
