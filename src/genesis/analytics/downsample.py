"""Downsampling for display: a long series reduced to a bounded number of points that still looks like it.

Two methods, both returning data drawn from the input (nothing is interpolated):

* :func:`lttb` (Largest-Triangle-Three-Buckets, Steinarsson 2013) for lines (ticks, closes): keeps the first and
  last points and, from each of ``n_out - 2`` equal-count buckets in between, the one point that forms the largest
  triangle with the point kept before it and the average of the next bucket. Peaks and troughs that shape the
  line survive; flat stretches thin out.
* :func:`ohlc_buckets` for bars: consecutive bars merged into ``n_out`` equal-count buckets (first open, highest
  high, lowest low, last close, summed volume), so every extreme of the source is still on the chart.

Both run in O(n): bucket boundaries, averages and aggregates are whole-array NumPy operations; LTTB's choice
within a bucket depends on the point kept in the bucket before, so it loops once per *bucket* (never per point)
over a vectorised argmax.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from genesis.analytics.types import FloatArray
from genesis.analytics.validation import _as_float_vector, check_int  # as_prices' guard, minus its "> 0" rule
from genesis.errors import InvalidInput

__all__ = ["OhlcBuckets", "bucket_bounds", "lttb", "ohlc_buckets"]

IntArray = npt.NDArray[np.intp]


class OhlcBuckets(NamedTuple):
    """Merged bars: ``first`` is the index of each bucket's first source bar (its timestamp is the bucket's)."""

    first: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray | None


def _check_n_out(n_out: int, minimum: int) -> int:
    return check_int(n_out, name="n_out", minimum=minimum)


def lttb(x: npt.ArrayLike, y: npt.ArrayLike, n_out: int) -> IntArray:
    r"""Indices of the points Largest-Triangle-Three-Buckets keeps.

    With :math:`n` points and :math:`m` = ``n_out``, let :math:`e = (n - 2) / (m - 2)`. Point 0 is kept. For
    bucket :math:`i = 0 \ldots m - 3`, the candidates are the indices
    :math:`[\lfloor i e \rfloor + 1, \lfloor (i + 1) e \rfloor + 1)`, and :math:`c` is the mean
    :math:`(\bar x, \bar y)` of the next bucket :math:`[\lfloor (i + 1) e \rfloor + 1,
    \min(\lfloor (i + 2) e \rfloor + 1, n))`. With :math:`a` the point kept last, the candidate :math:`j`
    maximising the triangle area

    .. math:: A_j = \tfrac12 \left| (x_a - \bar x)(y_j - y_a) - (x_a - x_j)(\bar y - y_a) \right|

    is kept (the first one on a tie). Point :math:`n - 1` is kept last.

    Parameters
    ----------
    x : array_like
        1-D, finite and strictly increasing (time). Pass times relative to the first one (e.g. seconds since
        ``x[0]``) to keep full float64 precision in the areas.
    y : array_like
        1-D, finite, as long as ``x``.
    n_out : int
        Points to keep, ``>= 3``. When ``n_out >= len(x)`` every index is returned.

    Returns
    -------
    numpy.ndarray
        Increasing ``intp`` indices into ``x``/``y``, ``min(n_out, len(x))`` of them, starting at 0 and ending at
        ``len(x) - 1``.

    Raises
    ------
    InvalidInput
        On non-finite or unsorted ``x``, lengths that differ, or ``n_out < 3``.

    Notes
    -----
    Steinarsson, *Downsampling Time Series for Visual Representation*, M.Sc. thesis, University of Iceland, 2013,
    section 4.2; the loop structure follows his reference implementation (flot-downsample). The extremes of the
    series are not guaranteed to survive (use :func:`ohlc_buckets` when they must).
    """
    xs = _as_float_vector(x, "x")
    ys = _as_float_vector(y, "y")
    if xs.size != ys.size:
        raise InvalidInput(f"x and y must have the same length ({xs.size} != {ys.size})")
    if xs.size > 1 and not bool(np.all(np.diff(xs) > 0)):
        raise InvalidInput("x must be strictly increasing")
    m = _check_n_out(n_out, 3)
    n = xs.size
    if m >= n:
        return np.arange(n, dtype=np.intp)

    every = (n - 2) / (m - 2)
    # Bucket i holds [edges[i], edges[i + 1]); the floor of the float product, exactly as the reference computes it.
    edges = (np.floor(np.arange(m - 1, dtype=np.float64) * every) + 1).astype(np.intp)
    # The "next bucket" average of bucket i is over [edges[i + 1], edges[i + 2]), the last one ending at n.
    avg_edges = np.append(edges[1:], n)
    counts = np.diff(avg_edges)
    avg_x = np.add.reduceat(xs, avg_edges[:-1]) / counts
    avg_y = np.add.reduceat(ys, avg_edges[:-1]) / counts

    kept = np.empty(m, dtype=np.intp)
    kept[0], kept[-1] = 0, n - 1
    a = 0
    for i in range(m - 2):  # one iteration per bucket: the choice depends on the point kept before
        lo, hi = edges[i], edges[i + 1]
        ax, ay = xs[a], ys[a]
        areas = np.abs((ax - avg_x[i]) * (ys[lo:hi] - ay) - (ax - xs[lo:hi]) * (avg_y[i] - ay))
        a = lo + int(np.argmax(areas))
        kept[i + 1] = a
    return kept


def bucket_bounds(n: int, n_out: int) -> IntArray:
    """Start indices of ``n_out`` consecutive equal-count buckets over ``n`` items (sizes differ by at most 1).

    Parameters
    ----------
    n : int
        Items, ``>= 1``.
    n_out : int
        Buckets, ``1 <= n_out <= n``.

    Returns
    -------
    numpy.ndarray
        ``n_out`` increasing ``intp`` starts, the first 0: bucket ``k`` is ``[starts[k], starts[k + 1])``.
    """
    return (np.arange(n_out, dtype=np.int64) * n // n_out).astype(np.intp)


def ohlc_buckets(
    open_: npt.ArrayLike, high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike,
    volume: npt.ArrayLike | None, n_out: int,
) -> OhlcBuckets:
    r"""Merge consecutive bars into ``n_out`` equal-count buckets.

    For a bucket :math:`B = [s, e)`:

    .. math::

        O_B = o_s, \quad H_B = \max_{t \in B} h_t, \quad L_B = \min_{t \in B} l_t, \quad C_B = c_{e-1},
        \quad V_B = \sum_{t \in B} v_t

    with :math:`s_k = \lfloor k n / m \rfloor` (:func:`bucket_bounds`), so bucket sizes differ by at most one.

    Parameters
    ----------
    open_, high, low, close : array_like
        1-D, finite, all of the same length ``n``.
    volume : array_like or None
        1-D, finite, length ``n``; ``None`` when the bars carry no volume.
    n_out : int
        Buckets, ``>= 1``. When ``n_out >= n`` each bar is its own bucket (the input, unchanged).

    Returns
    -------
    OhlcBuckets
        ``min(n_out, n)`` merged bars and the index of each one's first source bar.

    Raises
    ------
    InvalidInput
        On non-finite values, lengths that differ, or ``n_out < 1``.
    """
    o = _as_float_vector(open_, "open")
    h = _as_float_vector(high, "high")
    lo = _as_float_vector(low, "low")
    c = _as_float_vector(close, "close")
    v = None if volume is None else _as_float_vector(volume, "volume")
    n = o.size
    for name, arr in (("high", h), ("low", lo), ("close", c), ("volume", v)):
        if arr is not None and arr.size != n:
            raise InvalidInput(f"{name} must be as long as open ({arr.size} != {n})")
    m = min(_check_n_out(n_out, 1), n)
    starts = bucket_bounds(n, m)
    ends = np.append(starts[1:], n)
    return OhlcBuckets(
        first=starts,
        open=o[starts],
        high=np.maximum.reduceat(h, starts),
        low=np.minimum.reduceat(lo, starts),
        close=c[ends - 1],
        volume=None if v is None else np.add.reduceat(v, starts),
    )
