"""Price series in the relational store, idempotent on (symbol, timestamp)."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from genesis.storage.database import SQLITE_PRAGMAS, sqlite_path
from genesis.storage.models import prices
from genesis.storage.protocols import PriceColumns, PricePoint

_CHUNK = 5_000
# Prices and volumes are never negative, so -1 stands for NULL in the columnar read and becomes NaN.
_ABSENT = -1.0
_SQLITE_COLUMNS = (
    "SELECT ts_us, close, COALESCE(open, -1.0), COALESCE(high, -1.0), COALESCE(low, -1.0), COALESCE(volume, -1.0) "
    "FROM prices WHERE symbol = ? AND ts_us >= ? AND ts_us < ? ORDER BY ts_us LIMIT ?"
)
_COLUMNS = np.dtype([("ts_us", np.int64), ("close", np.float64), ("open", np.float64), ("high", np.float64),
                     ("low", np.float64), ("volume", np.float64)])


# Columns in PricePoint's field order, then the symbol: each row is ``point + (symbol,)``, built in C.
_SQLITE_INSERT = (
    "INSERT OR IGNORE INTO prices (ts_us, close, open, high, low, volume, symbol) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


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

    async def columns(
        self, symbol: str, *, start_us: int | None, end_us: int | None, limit: int | None
    ) -> PriceColumns:
        """A range as NumPy columns, without a Python object per row (charts of a million points).

        1,000,000 ticks take ~1 s this way on SQLite, against ~10 s through :meth:`range`.
        """
        if self._sqlite_path is not None:
            rows = await asyncio.to_thread(self._columns_sqlite, symbol, start_us, end_us, limit)
        else:
            query = select(prices.c.ts_us, prices.c.close, *(func.coalesce(c, _ABSENT) for c in (
                prices.c.open, prices.c.high, prices.c.low, prices.c.volume))).where(prices.c.symbol == symbol)
            if start_us is not None:
                query = query.where(prices.c.ts_us >= start_us)
            if end_us is not None:
                query = query.where(prices.c.ts_us < end_us)
            query = query.order_by(prices.c.ts_us)
            if limit is not None:
                query = query.limit(limit)
            async with self._engine.connect() as conn:
                result = await conn.execute(query)
                rows = np.fromiter(map(tuple, result.all()), dtype=_COLUMNS)
        return _as_columns(rows)

    def _columns_sqlite(
        self, symbol: str, start_us: int | None, end_us: int | None, limit: int | None
    ) -> npt.NDArray[np.void]:
        assert self._sqlite_path is not None
        args = (symbol, -(2**63) if start_us is None else start_us, 2**63 - 1 if end_us is None else end_us,
                -1 if limit is None else limit)
        conn = sqlite3.connect(self._sqlite_path, timeout=10.0)
        try:
            return np.fromiter(conn.execute(_SQLITE_COLUMNS, args), dtype=_COLUMNS)
        finally:
            conn.close()

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


def _as_columns(rows: npt.NDArray[np.void]) -> PriceColumns:
    def column(name: str) -> npt.NDArray[np.float64]:
        values = np.ascontiguousarray(rows[name], dtype=np.float64)
        values[values < 0] = np.nan  # the NULL stand-in
        return values

    return PriceColumns(np.ascontiguousarray(rows["ts_us"], dtype=np.int64), np.ascontiguousarray(rows["close"]),
                        column("open"), column("high"), column("low"), column("volume"))
