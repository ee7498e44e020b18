"""Price series for charts: a stored range reduced to at most ``max_points`` points for display."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from genesis.analytics.downsample import lttb, ohlc_buckets
from genesis.errors import InvalidInput, NotFound
from genesis.services.compute import run_sized
from genesis.services.market import check_symbol
from genesis.storage.protocols import PriceColumns, PricePoint, PriceStore

LTTB = "lttb"
OHLC = "ohlc"


@dataclass(frozen=True, slots=True)
class Downsampling:
    """How a series was reduced: the method, and how many stored points became how many."""

    method: str
    source_points: int
    points: int


def reduce_columns(cols: PriceColumns, max_points: int) -> tuple[PriceColumns, Downsampling | None]:
    """At most ``max_points`` points for display: bars merged into buckets, ticks reduced by LTTB.

    A series where every point is a bar (open, high and low known) keeps every extreme through OHLC bucket
    resampling; anything else is a line of closes, reduced by LTTB to real stored points. ``None`` when the series
    already fits.
    """
    n = cols.ts_us.size
    if n <= max_points:
        return cols, None
    bars = not (np.isnan(cols.open).any() or np.isnan(cols.high).any() or np.isnan(cols.low).any())
    if bars:
        volume = None if np.isnan(cols.volume).any() else cols.volume
        merged = ohlc_buckets(cols.open, cols.high, cols.low, cols.close, volume, max_points)
        out = PriceColumns(cols.ts_us[merged.first], merged.close, merged.open, merged.high, merged.low,
                           merged.volume if merged.volume is not None else np.full(merged.first.size, np.nan))
        return out, Downsampling(OHLC, n, int(merged.first.size))
    # Seconds since the first point: small magnitudes keep the triangle areas precise.
    kept = lttb((cols.ts_us - cols.ts_us[0]) / 1e6, cols.close, max(max_points, 3))
    out = PriceColumns(cols.ts_us[kept], cols.close[kept], cols.open[kept], cols.high[kept], cols.low[kept],
                       cols.volume[kept])
    return out, Downsampling(LTTB, n, int(kept.size))


def to_points(cols: PriceColumns) -> list[PricePoint]:
    """Columns back to points (NaN becomes None)."""
    def values(column: npt.NDArray[np.float64]) -> list[float | None]:
        return [None if v != v else v for v in column.tolist()]

    return [PricePoint(*row) for row in zip(cols.ts_us.tolist(), cols.close.tolist(), values(cols.open),
                                             values(cols.high), values(cols.low), values(cols.volume), strict=True)]


async def read_for_display(
    *, store: PriceStore, symbol: str, start_us: int | None, end_us: int | None, limit: int, max_points: int
) -> tuple[list[PricePoint], Downsampling | None]:
    """Up to ``limit`` stored points of a symbol from ``start_us``, reduced to at most ``max_points``.

    Raises:
        InvalidInput: the range is empty or reversed.
        NotFound: nothing is stored for the symbol.
    """
    check_symbol(symbol)
    if start_us is not None and end_us is not None and end_us <= start_us:
        raise InvalidInput("end must be later than start")
    cols = await store.columns(symbol, start_us=start_us, end_us=end_us, limit=limit)
    if cols.ts_us.size == 0 and not await store.exists(symbol):
        raise NotFound(f"no prices stored for symbol {symbol!r}")
    reduced, how = await run_sized(cols.ts_us.size, reduce_columns, cols, max_points)
    return to_points(reduced), how
