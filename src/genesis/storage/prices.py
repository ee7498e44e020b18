"""Price series in the relational store, idempotent on (symbol, timestamp)."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from genesis.storage.database import SQLITE_PRAGMAS, sqlite_path
from genesis.storage.models import prices
from genesis.storage.outbox import Runner, SqlAlchemyRunner, SqliteRunner, write_outbox
from genesis.storage.protocols import Announcer, Ingested, PricePoint
from genesis.timeutil import now_us

_CHUNK = 5_000


# Columns in PricePoint's field order, then the symbol: each row is ``point + (symbol,)``, built in C.
_SQLITE_INSERT = (
    "INSERT OR IGNORE INTO prices (ts_us, close, open, high, low, volume, symbol) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


_LATEST = "SELECT max(ts_us) FROM prices WHERE symbol = :symbol"
_STORED_IN = "SELECT ts_us FROM prices WHERE symbol = :symbol AND ts_us >= :low AND ts_us <= :high"
_TAIL = "SELECT close FROM prices WHERE symbol = :symbol AND ts_us < :before ORDER BY ts_us DESC LIMIT :n"


def _announce(
    run: Runner, symbol: str, inserted: list[PricePoint], latest_before: int | None, announcer: Announcer,
    outbox_limit: int,
) -> Ingested:
    """Inside the ingesting transaction: the notices of what was inserted, and their outbox rows."""
    if not inserted:
        return Ingested(0, [])
    appended_from = len(inserted)
    for index, point in enumerate(inserted):
        if latest_before is None or point.ts_us > latest_before:
            appended_from = index
            break
    tail: list[float] = []
    if appended_from < len(inserted):
        rows = run.rows(_TAIL, {"symbol": symbol, "before": inserted[appended_from].ts_us, "n": announcer.history})
        tail = [float(r[0]) for r in reversed(rows)]
    notices = announcer.announce(symbol, inserted, appended_from, tail)
    outboxed = write_outbox(run, notices, limit=outbox_limit, now_us=now_us())
    return Ingested(len(inserted), notices, outboxed)


class SqlPriceStore:
    """PriceStore over SQLAlchemy Core.

    On SQLite, bulk inserts go through the stdlib driver in a worker thread: a
    10,000-point request costs ~15 ms that way against ~250 ms through the
    aiosqlite adapter (one thread hand-off per statement and row conversion).
    """

    def __init__(self, engine: AsyncEngine, *, database_url: str | None = None) -> None:
        self._engine = engine
        self._sqlite_path = sqlite_path(database_url) if database_url else None
        dialect = engine.dialect.name
        base = postgresql.insert(prices) if dialect == "postgresql" else sqlite.insert(prices)
        # RETURNING counts the rows really inserted on both backends (executemany rowcount does not).
        self._insert = base.on_conflict_do_nothing(index_elements=["symbol", "ts_us"]).returning(prices.c.ts_us)

    async def add_many(self, symbol: str, points: Sequence[PricePoint]) -> int:
        """Insert points, skipping timestamps already stored; returns how many were new."""
        if self._sqlite_path is not None:
            return await asyncio.to_thread(self._add_many_sqlite, symbol, points)
        inserted = 0
        async with self._engine.begin() as conn:
            for start in range(0, len(points), _CHUNK):
                rows: list[dict[str, Any]] = [
                    {"symbol": symbol, "ts_us": p.ts_us, "open": p.open, "high": p.high,
                     "low": p.low, "close": p.close, "volume": p.volume}
                    for p in points[start : start + _CHUNK]
                ]
                result = await conn.execute(self._insert, rows)
                inserted += len(result.all())
        return inserted

    async def ingest(
        self, symbol: str, points: Sequence[PricePoint], *, announcer: Announcer, outbox_limit: int,
    ) -> Ingested:
        """Insert points (skipping stored timestamps) and, in the same transaction, announce what was inserted.

        Ingestions of one symbol are serialised (SQLite: the write lock; PostgreSQL: a transaction-scoped
        advisory lock on the symbol), so the closes the announcer scores against are exactly those before.
        """
        if self._sqlite_path is not None:
            return await asyncio.to_thread(self._ingest_sqlite, symbol, points, announcer, outbox_limit)
        async with self._engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"prices:{symbol}"})
            latest = (await conn.execute(text(_LATEST), {"symbol": symbol})).scalar()
            stored: set[int] = set()
            for start in range(0, len(points), _CHUNK):
                rows: list[dict[str, Any]] = [
                    {"symbol": symbol, "ts_us": p.ts_us, "open": p.open, "high": p.high,
                     "low": p.low, "close": p.close, "volume": p.volume}
                    for p in points[start : start + _CHUNK]
                ]
                stored.update(r[0] for r in (await conn.execute(self._insert, rows)).all())
            inserted = sorted((p for p in points if p.ts_us in stored), key=lambda p: p.ts_us)

            def announce(sync: Connection) -> Ingested:
                return _announce(SqlAlchemyRunner(sync), symbol, inserted, latest, announcer, outbox_limit)

            return await conn.run_sync(announce)

    def _ingest_sqlite(
        self, symbol: str, points: Sequence[PricePoint], announcer: Announcer, outbox_limit: int,
    ) -> Ingested:
        assert self._sqlite_path is not None
        conn = sqlite3.connect(self._sqlite_path, timeout=10.0, isolation_level=None)
        try:
            for pragma in SQLITE_PRAGMAS:
                conn.execute(pragma)
            conn.execute("BEGIN IMMEDIATE")
            try:
                run = SqliteRunner(conn)
                latest = run.rows(_LATEST, {"symbol": symbol})[0][0]
                fresh = list(points)
                if points:
                    low, high = min(p.ts_us for p in points), max(p.ts_us for p in points)
                    stored = {r[0] for r in run.rows(_STORED_IN, {"symbol": symbol, "low": low, "high": high})}
                    if stored:
                        fresh = [p for p in points if p.ts_us not in stored]
                fresh.sort(key=lambda p: p.ts_us)
                before = conn.total_changes
                conn.executemany(_SQLITE_INSERT, map(tuple.__add__, fresh, itertools.repeat((symbol,))))
                if conn.total_changes - before != len(fresh):  # duplicates within the request itself
                    raise ValueError("duplicate timestamps in one ingestion")
                result = _announce(run, symbol, fresh, latest, announcer, outbox_limit)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return result
        finally:
            conn.close()

    def _add_many_sqlite(self, symbol: str, points: Sequence[PricePoint]) -> int:
        assert self._sqlite_path is not None
        conn = sqlite3.connect(self._sqlite_path, timeout=10.0, isolation_level=None)
        try:
            for pragma in SQLITE_PRAGMAS:
                conn.execute(pragma)
            before = conn.total_changes
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_SQLITE_INSERT, map(tuple.__add__, points, itertools.repeat((symbol,))))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return conn.total_changes - before
        finally:
            conn.close()

    async def range(
        self, symbol: str, *, start_us: int | None, end_us: int | None, limit: int | None
    ) -> list[PricePoint]:
        query = select(prices).where(prices.c.symbol == symbol)
        if start_us is not None:
            query = query.where(prices.c.ts_us >= start_us)
        if end_us is not None:
            query = query.where(prices.c.ts_us < end_us)
        query = query.order_by(prices.c.ts_us)
        if limit is not None:
            query = query.limit(limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [PricePoint(r.ts_us, r.close, r.open, r.high, r.low, r.volume) for r in rows]

    async def closes(
        self, symbol: str, *, start_us: int | None = None, end_us: int | None = None
    ) -> tuple[list[int], list[float]]:
        query = select(prices.c.ts_us, prices.c.close).where(prices.c.symbol == symbol)
        if start_us is not None:
            query = query.where(prices.c.ts_us >= start_us)
        if end_us is not None:
            query = query.where(prices.c.ts_us < end_us)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query.order_by(prices.c.ts_us))).all()
        return [r[0] for r in rows], [r[1] for r in rows]

    async def exists(self, symbol: str) -> bool:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(prices.c.ts_us).where(prices.c.symbol == symbol).limit(1))).first()
        return row is not None

    async def stats(self, symbol: str) -> tuple[int, int | None]:
        """(number of points, latest timestamp) of a symbol."""
        query = select(func.count(), func.max(prices.c.ts_us)).where(prices.c.symbol == symbol)
        async with self._engine.connect() as conn:
            count, latest = (await conn.execute(query)).one()
        return int(count), latest
