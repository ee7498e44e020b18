"""Recorded backtest results (the source of strategy performance scores)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from genesis.storage.models import backtests
from genesis.storage.outbox import SqlAlchemyRunner, write_outbox
from genesis.storage.protocols import BacktestRecord, Outboxed
from genesis.timeutil import now_us

if TYPE_CHECKING:
    from genesis.push.notice import Notice


def _record(row: Any) -> BacktestRecord:
    return BacktestRecord(
        id=row.id, owner=row.owner, strategy_name=row.strategy_name, params=orjson.loads(row.params),
        symbol=row.symbol, n_prices=row.n_prices, metrics=orjson.loads(row.metrics), score=row.score,
        equity=orjson.loads(row.equity) if row.equity else None, created_at_us=row.created_at_us,
    )


class SqlBacktestStore:
    """BacktestStore over SQLAlchemy Core."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(
        self, record: BacktestRecord, *, notices: Sequence[Notice] = (), outbox_limit: int = 0,
    ) -> Outboxed:
        """Record a run and, in the same transaction, the webhook deliveries of ``notices``."""
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(backtests).values(
                    id=record.id, owner=record.owner, strategy_name=record.strategy_name,
                    params=orjson.dumps(record.params).decode(), symbol=record.symbol,
                    n_prices=record.n_prices, metrics=orjson.dumps(record.metrics).decode(),
                    score=record.score,
                    equity=orjson.dumps(record.equity).decode() if record.equity is not None else None,
                    created_at_us=record.created_at_us,
                )
            )
            if not notices:
                return Outboxed()

            def outbox(sync: Connection) -> Outboxed:
                return write_outbox(SqlAlchemyRunner(sync), notices, limit=outbox_limit, now_us=now_us())

            return await conn.run_sync(outbox)

    async def get(self, backtest_id: str) -> BacktestRecord | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(backtests).where(backtests.c.id == backtest_id))).first()
        return _record(row) if row else None

    async def scores(
        self, strategy_name: str | None = None, *, owner: str | None = None
    ) -> dict[str, list[tuple[int, float | None]]]:
        """Scores per strategy, oldest first; only ``owner``'s backtests when given."""
        query = select(backtests.c.strategy_name, backtests.c.created_at_us, backtests.c.score)
        if strategy_name is not None:
            query = query.where(backtests.c.strategy_name == strategy_name)
        if owner is not None:
            query = query.where(backtests.c.owner == owner)
        query = query.order_by(backtests.c.strategy_name, backtests.c.created_at_us)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        result: dict[str, list[tuple[int, float | None]]] = {}
        for name, created, score in rows:
            result.setdefault(name, []).append((created, score))
        return result
