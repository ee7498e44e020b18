"""PerformanceTracker: the original get_last_score / get_history, backed by recorded backtests."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from genesis.analytics import run_backtest, signal_strategy_for
from genesis.services.backtests import PerformanceTracker, run_and_record
from genesis.storage.backtests import SqlBacktestStore
from genesis.storage.database import create_engine
from genesis.storage.migrate import upgrade_database


def test_scores_are_the_recorded_sharpe_ratios_oldest_first(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'perf.db'}"
    upgrade_database(url)

    async def scenario() -> None:
        engine = create_engine(url)
        store = SqlBacktestStore(engine)
        tracker = PerformanceTracker(store)
        assert await tracker.get_last_score("sma_crossover") is None
        assert await tracker.get_history("sma_crossover") == []
        rng = np.random.default_rng(11)
        expected = []
        for seed_shift in range(3):
            closes = list(100 * np.exp(np.cumsum(rng.normal(0.0005 * seed_shift, 0.01, 250))))
            record = await run_and_record(store=store, owner="user:t", strategy_name="SMA_Crossover",
                                          params={"fast": 5, "slow": 20}, closes=closes, symbol=None,
                                          commission=0.0, include_equity=False)
            positions = signal_strategy_for("sma_crossover", fast=5, slow=20).positions(closes)
            independent = run_backtest(closes, positions).sharpe
            assert record.score == pytest.approx(independent)
            expected.append(independent)
        assert await tracker.get_history("sma_crossover") == pytest.approx(expected)
        assert await tracker.get_last_score("SMA_CROSSOVER") == pytest.approx(expected[-1])
        summary = await tracker.summary()
        assert summary == [{"strategy_name": "sma_crossover", "last_score": pytest.approx(expected[-1]),
                            "history": pytest.approx(expected)}]
        await engine.dispose()

    asyncio.run(scenario())
