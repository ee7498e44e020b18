"""Backtests: run a signal strategy over prices, record the result, read it back."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from genesis.analytics import SIGNAL_STRATEGIES, run_backtest
from genesis.errors import InvalidInput, NotFound
from genesis.services.announce import backtest_notice
from genesis.services.compute import run_sized
from genesis.services.market import Announced, check_symbol
from genesis.storage.protocols import BacktestRecord, BacktestStore, PriceStore
from genesis.timeutil import now_us


async def prices_for(
    *, prices: Sequence[float] | None, symbol: str | None, start_us: int | None, end_us: int | None,
    store: PriceStore,
) -> list[float]:
    """The closes to backtest on: posted ones, or a stored symbol's within [start, end)."""
    if (prices is None) == (symbol is None):
        raise InvalidInput("give either prices or symbol (with an optional start/end), not both")
    if prices is not None:
        if start_us is not None or end_us is not None:
            raise InvalidInput("start and end apply to a stored symbol only, not to posted prices")
        return list(prices)
    assert symbol is not None
    check_symbol(symbol)
    _, closes = await store.closes(symbol, start_us=start_us, end_us=end_us)
    if not closes:
        if not await store.exists(symbol):
            raise NotFound("no prices stored for this symbol")
        raise InvalidInput("no prices for this symbol in the requested range")
    return closes


async def run_and_record(
    *, store: BacktestStore, owner: str, strategy_name: str, params: Mapping[str, Any], closes: Sequence[float],
    symbol: str | None, commission: float, include_equity: bool, publisher: Announced | None = None,
) -> BacktestRecord:
    """Run ``strategy_name`` over ``closes`` and record the result under ``owner``.

    Raises:
        InvalidInput: the strategy or a parameter name is unknown (``details["supported"]`` lists the accepted
            ones), the strategy refuses a value, or there are fewer than 2 prices.
    """
    spec = SIGNAL_STRATEGIES.lookup(strategy_name)
    if len(closes) < 2:
        raise InvalidInput("a backtest needs at least 2 prices")
    resolved = spec.resolve(params)
    strategy = spec.create(**resolved)  # refuses bad values before a computation slot is taken

    def work() -> Any:
        positions = strategy.positions(closes)
        return run_backtest(closes, positions, commission=commission, include_equity=include_equity)

    result = await run_sized(len(closes), work)
    record = BacktestRecord(
        id=str(uuid.uuid4()), owner=owner, strategy_name=spec.name, params=dict(resolved), symbol=symbol,
        n_prices=len(closes), metrics=result.metrics(), score=result.sharpe,
        equity=result.equity.tolist() if result.equity is not None else None, created_at_us=now_us(),
    )
    if publisher is None:
        await store.add(record)
        return record
    notices = [backtest_notice(record)]
    outboxed = await store.add(record, notices=notices, outbox_limit=publisher.outbox_limit)
    await publisher.committed(notices, outboxed)
    return record


async def get_backtest(*, store: BacktestStore, backtest_id: str, owner: str, is_admin: bool) -> BacktestRecord:
    """A recorded backtest; someone else's is reported as not found (no existence leak).

    Raises:
        NotFound: no such backtest, or it belongs to someone else; in that case the error's audit facts say so
            (``{"refused": "owner", "owner": ...}``), so the trail tells a refused read from a mistyped id.
    """
    record = await store.get(backtest_id)
    if record is None:
        raise NotFound("no such backtest")
    if record.owner != owner and not is_admin:
        raise NotFound("no such backtest", audit={"refused": "owner", "owner": record.owner})
    return record


class PerformanceTracker:
    """Strategy scores from recorded backtests.

    The score of a backtest is its annualised Sharpe ratio (sqrt(252), risk-free 0);
    ``None`` where the Sharpe ratio is undefined (no variation in returns). Backtests are private:
    with an ``owner``, only that owner's count (administrators pass None and see all).
    """

    def __init__(self, store: BacktestStore, *, owner: str | None = None) -> None:
        self._store = store
        self._owner = owner

    async def get_last_score(self, strategy: str) -> float | None:
        history = await self.get_history(strategy)
        return history[-1] if history else None

    async def get_history(self, strategy: str) -> list[float | None]:
        scores = await self._store.scores(strategy.strip().lower(), owner=self._owner)
        return [score for _, score in scores.get(strategy.strip().lower(), [])]

    async def summary(self) -> list[dict[str, Any]]:
        """``[{strategy_name, last_score, history}]`` for every strategy with a recorded backtest."""
        return [
            {"strategy_name": name, "last_score": points[-1][1], "history": [score for _, score in points]}
            for name, points in sorted((await self._store.scores(owner=self._owner)).items())
        ]
