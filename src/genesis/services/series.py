"""Price series for charts: a stored range reduced to at most ``max_points`` points for display."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from genesis.analytics.downsample import lttb, ohlc_buckets
from genesis.services.compute import run_sized
from genesis.storage.protocols import PricePoint

LTTB = "lttb"
OHLC = "ohlc"


@dataclass(frozen=True, slots=True)
class Downsampling:
    """How a series was reduced: the method, and how many stored points became how many."""

    method: str
    source_points: int
    points: int


def _is_bar(point: PricePoint) -> bool:
    return point.open is not None and point.high is not None and point.low is not None


def reduce_points(points: Sequence[PricePoint], max_points: int) -> tuple[list[PricePoint], Downsampling | None]:
    """At most ``max_points`` points for display: bars merged into buckets, ticks reduced by LTTB.

    A series where every point is a bar (open, high and low known) keeps every extreme through OHLC bucket
    resampling; anything else is a line of closes, reduced by LTTB to real stored points. ``None`` when the series
    already fits.
    """
    n = len(points)
    if n <= max_points:
        return list(points), None
    ts = np.fromiter((p.ts_us for p in points), dtype=np.int64, count=n)
    close = np.fromiter((p.close for p in points), dtype=np.float64, count=n)
    if all(map(_is_bar, points)):
        column = [np.fromiter((p[k] for p in points), dtype=np.float64, count=n) for k in (2, 3, 4)]
        volume = None
        if all(p.volume is not None for p in points):
            volume = np.fromiter((p.volume for p in points), dtype=np.float64, count=n)  # type: ignore[misc]
        merged = ohlc_buckets(column[0], column[1], column[2], close, volume, max_points)
        out = [PricePoint(int(t), float(c), float(o), float(h), float(lo), None if v is None else float(v))
               for t, o, h, lo, c, v in zip(ts[merged.first].tolist(), merged.open.tolist(), merged.high.tolist(),
                                             merged.low.tolist(), merged.close.tolist(),
                                             merged.volume.tolist() if merged.volume is not None
                                             else [None] * len(merged.first), strict=True)]
        return out, Downsampling(OHLC, n, len(out))
    # Seconds since the first point: small magnitudes keep the triangle areas precise.
    kept = lttb((ts - ts[0]) / 1e6, close, max(max_points, 3))
    return [points[i] for i in kept.tolist()], Downsampling(LTTB, n, int(kept.size))


async def reduce_for_display(
    points: Sequence[PricePoint], max_points: int
) -> tuple[list[PricePoint], Downsampling | None]:
    """:func:`reduce_points` off the event loop for long series (within the compute limits)."""
    return await run_sized(len(points), reduce_points, points, max_points)
