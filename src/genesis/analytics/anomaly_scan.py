"""Batch anomaly scoring: every point of a price series at once, vectorised.

:func:`scan` gives each point the score :meth:`~genesis.analytics.anomaly.AnomalyDetector.detect`
would give right after that price was appended (same methods, windows, floor and
clamp; see :mod:`genesis.analytics.anomaly`), which is what an API needs to list the
anomalous points of a time range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from genesis.analytics.anomaly import (
    LOG_RATIO_HIGH,
    LOG_RATIO_LOW,
    MAD_TO_SIGMA,
    MAX_SCORE,
    PRICE_ZSCORE_BOUNDS,
    SCORE_FLOOR,
    Method,
    check_detector_config,
)
from genesis.analytics.types import BoolArray, FloatArray
from genesis.analytics.validation import as_prices
from genesis.errors import InvalidInput

__all__ = ["ScanResult", "scan"]

_SCAN_CHUNK: Final = 8192  # rows per median batch in the MAD scan (bounds memory)
_SCAN_BATCH: Final = 1 << 16  # values per batch of the z-score scan (keeps it in cache)


@dataclass(frozen=True, slots=True)
class ScanResult:
    """Scores of every point of a series (see :func:`scan`).

    Attributes
    ----------
    scores, mean, std : numpy.ndarray
        float64 arrays as long as the prices, NaN over the warm-up.
    is_anomaly : numpy.ndarray
        bool array, False over the warm-up.
    warmup : int
        Number of leading prices without a score.
    """

    scores: FloatArray
    is_anomaly: BoolArray
    mean: FloatArray
    std: FloatArray
    warmup: int

    def anomalies(self) -> npt.NDArray[np.intp]:
        """Return the indices of the anomalous prices."""
        return np.flatnonzero(self.is_anomaly)


def _log_returns(p: FloatArray) -> FloatArray:
    """Log returns as the streaming detector computes them, vectorised (equal to a few ulps)."""
    with np.errstate(over="ignore", under="ignore"):
        ratio = p[1:] / p[:-1]
    direct = (ratio > LOG_RATIO_LOW) & (ratio < LOG_RATIO_HIGH)
    if direct.all():
        out: FloatArray = np.log(ratio)
        return out
    return np.where(direct, np.log(np.where(direct, ratio, 1.0)), np.log(p[1:]) - np.log(p[:-1]))


def _rolling_zscore(x: FloatArray, w: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Deviation, mean and std of ``x[j]`` against ``x[j-w:j]`` for ``j >= w``.

    Outputs are computed in blocks of ``w``: each block's windows lie in a segment of
    ``2w`` values that is centred on its own mean before the cumulative sums, which
    keeps the sums small (no cancellation at large offsets) and the error local.
    Blocks are processed in cache-sized batches.
    """
    m = x.size
    n_out = m - w
    blocks = -(-n_out // w)
    padded = np.empty((blocks + 1) * w)
    padded[:m] = x
    padded[m:] = x[-1]
    segments = sliding_window_view(padded, 2 * w)[::w]
    deviation = np.empty((blocks, w))
    mean = np.empty((blocks, w))
    spread = np.empty((blocks, w))
    rows = max(1, _SCAN_BATCH // w)
    sums = np.empty((min(rows, blocks), 2 * w + 1))
    sums[:, 0] = 0.0
    for start in range(0, blocks, rows):  # batches of blocks, not elements
        stop = min(start + rows, blocks)
        segment = segments[start:stop]
        anchor = segment.mean(axis=1, keepdims=True)
        d = segment - anchor
        c = sums[: stop - start]
        np.cumsum(d, axis=1, out=c[:, 1:])
        mean_d = (c[:, w : 2 * w] - c[:, :w]) / w
        deviation[start:stop] = d[:, w:] - mean_d
        mean[start:stop] = anchor + mean_d
        np.square(d, out=d)
        np.cumsum(d, axis=1, out=c[:, 1:])
        var = (c[:, w : 2 * w] - c[:, :w]) / w - mean_d * mean_d
        np.sqrt(np.maximum(var, 0.0), out=spread[start:stop])
    return deviation.ravel()[:n_out], mean.ravel()[:n_out], spread.ravel()[:n_out]


def _rolling_mad(x: FloatArray, w: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Deviation from the median and scaled MAD of ``x[j]`` against ``x[j-w:j]``; O(n w)."""
    windows = sliding_window_view(x, w)[: x.size - w]
    center = np.empty(windows.shape[0])
    spread = np.empty(windows.shape[0])
    for start in range(0, windows.shape[0], _SCAN_CHUNK):  # batches of rows bound the memory
        rows = windows[start : start + _SCAN_CHUNK]
        med = np.median(rows, axis=1)
        center[start : start + med.size] = med
        spread[start : start + med.size] = np.median(np.abs(rows - med[:, None]), axis=1)
    return x[w:] - center, center, MAD_TO_SIGMA * spread


def scan(
    prices: npt.ArrayLike,
    *,
    threshold: float = 3.0,
    window_size: int = 100,
    method: Method = "log_return_zscore",
) -> ScanResult:
    r"""Score every point of a price series at once (vectorised).

    Point ``t`` gets the score :meth:`AnomalyDetector.detect` would give right after
    ``prices[t]`` was appended (to within a few ulps of the window statistics).

    Parameters
    ----------
    prices : array_like
        1-D prices, oldest first; finite and > 0.
    threshold : float, default 3.0
        Absolute score above which a point is anomalous; > 0.
    window_size : int, default 100
        Previous values each point is scored against; >= 2.
    method : {"log_return_zscore", "price_zscore", "mad"}
        Scoring method (see the module docstring).

    Returns
    -------
    ScanResult
        ``scores``/``mean``/``std`` with NaN over the warm-up, ``is_anomaly`` flags.

    Notes
    -----
    Warm-up: ``window_size + 1`` prices for the log-return methods, ``window_size``
    for ``price_zscore``. O(n) for the z-score methods, O(n * window_size) for ``mad``.
    """
    level, w, kind = check_detector_config(threshold, window_size, method)
    p = as_prices(prices)
    if kind == "price_zscore":
        low, high = PRICE_ZSCORE_BOUNDS
        if not (p.min() > low and p.max() < high):
            raise InvalidInput(f"prices must lie in ({low:g}, {high:g}) for method 'price_zscore'")
        x, offset = p, 0
    else:
        x, offset = _log_returns(p), 1
    warmup = min(w + offset, p.size)
    scores = np.full(p.size, np.nan)
    mean = np.full(p.size, np.nan)
    std = np.full(p.size, np.nan)
    if x.size > w:
        if kind == "mad":
            deviation, center, spread = _rolling_mad(x, w)
            floor: FloatArray | float = SCORE_FLOOR
        else:
            deviation, center, spread = _rolling_zscore(x, w)
            floor = SCORE_FLOOR * np.abs(center) if kind == "price_zscore" else SCORE_FLOOR
        with np.errstate(over="ignore"):
            z = deviation / np.maximum(spread, floor)
        scores[warmup:] = np.clip(z, -MAX_SCORE, MAX_SCORE)
        mean[warmup:] = center
        std[warmup:] = spread
    flags = np.zeros(p.size, dtype=bool)
    flags[warmup:] = np.abs(scores[warmup:]) > level
    return ScanResult(scores=scores, is_anomaly=flags, mean=mean, std=std, warmup=warmup)
