"""Anomaly detection on stored prices, kept up to date incrementally.

One streaming :class:`AnomalyDetector` per (method, window, threshold) is kept
per process. Before answering, the detector of a symbol catches up with the
database: when only newer points were added since it last looked (by this or
any other process), just those are fed to it; if anything else changed (a
backfill of older timestamps), or after a restart, its state is rebuilt from
the stored prices in one vectorised pass.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from genesis.analytics import METHODS, AnomalyDetector, scan
from genesis.errors import InvalidInput, NotFound
from genesis.services.compute import run_sized
from genesis.services.market import check_symbol
from genesis.storage.protocols import PriceStore

MAX_DETECTORS = 32


@dataclass(slots=True)
class _Synced:
    count: int
    last_ts: int | None


@dataclass(frozen=True, slots=True)
class AnomalyReport:
    """The latest verdict, and every anomalous point of the range that was scanned (which the report states)."""

    symbol: str
    latest: dict[str, Any] | None
    points: int
    anomalies: list[dict[str, Any]]
    scanned_points: int = 0
    scanned_first_us: int | None = None
    scanned_last_us: int | None = None


class AnomalyService:
    """Answers "is the latest price of SYMBOL anomalous, and which points in a range were"."""

    def __init__(self, store: PriceStore) -> None:
        self._store = store
        self._detectors: OrderedDict[tuple[str, int, float], tuple[AnomalyDetector, dict[str, _Synced]]] = (
            OrderedDict()
        )

    def _detector(self, method: str, window: int, threshold: float) -> tuple[AnomalyDetector, dict[str, _Synced]]:
        key = (method, window, threshold)
        found = self._detectors.get(key)
        if found is None:
            found = (AnomalyDetector(threshold=threshold, window_size=window, method=method), {})  # type: ignore[arg-type]
            self._detectors[key] = found
            if len(self._detectors) > MAX_DETECTORS:
                self._detectors.popitem(last=False)
        else:
            self._detectors.move_to_end(key)
        return found

    async def _catch_up(self, symbol: str, detector: AnomalyDetector, synced: dict[str, _Synced]) -> int:
        count, last_ts = await self._store.stats(symbol)
        if count == 0:
            raise NotFound("no prices stored for this symbol")
        seen = synced.get(symbol)
        if seen is not None and seen.count == count and seen.last_ts == last_ts:
            return count
        if seen is not None and seen.last_ts is not None and count > seen.count:
            timestamps, closes = await self._store.closes(symbol, start_us=seen.last_ts + 1)
            if len(closes) == count - seen.count:  # only newer points were appended
                await run_sized(len(closes), detector.update_prices, symbol, np.asarray(closes))
                synced[symbol] = _Synced(count, timestamps[-1] if timestamps else seen.last_ts)
                return count
        timestamps, closes = await self._store.closes(symbol)
        detector.reset(symbol)
        await run_sized(len(closes), detector.update_prices, symbol, np.asarray(closes))
        synced[symbol] = _Synced(len(closes), timestamps[-1] if timestamps else None)
        return len(closes)

    async def report(
        self, *, symbol: str, method: str = "log_return_zscore", window: int = 100, threshold: float = 3.0,
        start_us: int | None = None, end_us: int | None = None,
    ) -> AnomalyReport:
        check_symbol(symbol)
        if method not in METHODS:
            raise InvalidInput(f"unknown method; choose one of {', '.join(METHODS)}")
        detector, synced = self._detector(method, window, threshold)
        count = await self._catch_up(symbol, detector, synced)
        latest = detector.detect(symbol)
        return await self._in_range(symbol, method, window, threshold, start_us, end_us,
                                    latest=latest.to_dict() if latest else None, count=count)

    async def _in_range(
        self, symbol: str, method: str, window: int, threshold: float, start_us: int | None, end_us: int | None,
        *, latest: dict[str, Any] | None, count: int,
    ) -> AnomalyReport:
        """Scan [start, end) - without bounds, the whole stored series - and say which points it covered."""
        # Score with the full history before the range so the first points have their window.
        timestamps, closes = await self._store.closes(symbol, end_us=end_us)
        if not closes:
            return AnomalyReport(symbol, latest, count, [])
        result = await run_sized(len(closes), scan, np.asarray(closes), threshold=threshold, window_size=window,
                                 method=method)  # type: ignore[arg-type]
        ts = np.asarray(timestamps, dtype=np.int64)
        first = 0 if start_us is None else int(np.searchsorted(ts, start_us, side="left"))
        out = [{"index": int(index), "ts_us": int(ts[index]), "price": float(closes[index]),
                "score": float(result.scores[index])} for index in result.anomalies() if index >= first]
        scanned = len(ts) - first
        return AnomalyReport(symbol, latest, count, out, scanned, int(ts[first]) if scanned else None,
                             int(ts[-1]) if scanned else None)
