"""Performance measures of a backtest (returns, Sharpe and Sortino ratios, drawdown, trades), computed from per-bar
returns, equity and positions.

Inputs are the validated float64 arrays :func:`~genesis.analytics.backtest.run_backtest`
builds: ``returns`` and ``equity`` have one value per bar, equity starts from 1.0
before bar 0, ``positions`` are the target positions per bar. Every function returns
a finite float (or int), or ``None`` where the metric is undefined, never NaN or
infinity, so the values can go straight into JSON.
"""

from __future__ import annotations

import math

import numpy as np

from genesis.analytics.types import FloatArray

__all__ = [
    "annualized_volatility",
    "cagr",
    "exposure",
    "max_drawdown",
    "round_trips",
    "sharpe_ratio",
    "sortino_ratio",
    "total_return",
    "trade_count",
    "win_rate",
]

# A dispersion this small relative to the largest return is rounding noise of a
# constant series (e.g. std of [0.01, 0.01, ...] is ~1e-18, not 0): ratios over it
# would be meaningless huge numbers, so they are reported as undefined instead.
_ZERO_DISPERSION = 1e-12


def _is_zero_dispersion(dispersion: float, returns: FloatArray) -> bool:
    return dispersion <= _ZERO_DISPERSION * float(np.max(np.abs(returns)))


def total_return(equity: FloatArray) -> float:
    r"""Total return over the backtest.

    .. math:: \mathrm{TR} = E_{n-1} - 1 \quad (E \text{ starts at } 1)
    """
    return float(equity[-1]) - 1.0


def cagr(equity: FloatArray, periods_per_year: float) -> float | None:
    r"""Compound annual growth rate.

    .. math:: \mathrm{CAGR} = E_{n-1}^{\,P / (n-1)} - 1

    where :math:`P` is ``periods_per_year`` and :math:`n - 1` the number of bar
    intervals elapsed between the first and the last close.

    Returns
    -------
    float or None
        -1.0 when equity ended at 0; ``None`` with fewer than 2 bars or when the
        annualised figure overflows a float (a huge gain over a few bars).
    """
    intervals = equity.size - 1
    final = float(equity[-1])
    if intervals < 1:
        return None
    if final <= 0.0:
        return -1.0
    try:
        return math.expm1(math.log(final) * periods_per_year / intervals)
    except OverflowError:
        return None


def annualized_volatility(returns: FloatArray, periods_per_year: float) -> float:
    r"""Annualised volatility of per-bar returns.

    .. math:: \sigma_{ann} = \mathrm{std}(R, \mathrm{ddof}=1) \sqrt{P}

    Returns 0.0 with fewer than 2 returns.
    """
    if returns.size < 2:
        return 0.0
    return float(np.std(returns, ddof=1)) * math.sqrt(periods_per_year)


def sharpe_ratio(returns: FloatArray, periods_per_year: float) -> float | None:
    r"""Annualised Sharpe ratio with a zero risk-free rate.

    .. math:: S = \frac{\bar R}{\mathrm{std}(R, \mathrm{ddof}=1)} \sqrt{P}

    Returns
    -------
    float or None
        ``None`` when the standard deviation is zero (constant returns, e.g. a
        strategy that never trades) or there are fewer than 2 returns.
    """
    if returns.size < 2:
        return None
    std = float(np.std(returns, ddof=1))
    if _is_zero_dispersion(std, returns):
        return None
    return float(np.mean(returns)) / std * math.sqrt(periods_per_year)


def sortino_ratio(returns: FloatArray, periods_per_year: float) -> float | None:
    r"""Annualised Sortino ratio with a zero target.

    .. math::

        \mathrm{DD} = \sqrt{\frac{1}{n}\sum_t \min(R_t, 0)^2}, \quad
        \mathrm{Sortino} = \frac{\bar R}{\mathrm{DD}} \sqrt{P}

    Returns
    -------
    float or None
        ``None`` when no bar lost money (downside deviation zero) or there are
        fewer than 2 returns.
    """
    if returns.size < 2:
        return None
    downside = float(np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2)))
    if _is_zero_dispersion(downside, returns):
        return None
    return float(np.mean(returns)) / downside * math.sqrt(periods_per_year)


def max_drawdown(equity: FloatArray) -> float:
    r"""Largest peak-to-trough fall of equity, as a positive fraction in [0, 1].

    .. math:: \mathrm{MDD} = \max_t \left(1 - \frac{E_t}{\max(1, \max_{s \le t} E_s)}\right)

    The starting equity 1.0 counts as a peak, so an initial loss is a drawdown.
    """
    peaks = np.maximum.accumulate(np.concatenate(([1.0], equity)))[1:]
    return float(np.max(1.0 - equity / peaks))


def trade_count(positions: FloatArray) -> int:
    r"""Number of bars at which the position changes (starting flat).

    .. math:: \#\{t : \mathrm{pos}_t \ne \mathrm{pos}_{t-1}\}, \quad \mathrm{pos}_{-1} = 0

    Entering, resizing, exiting and reversing each count as one trade.
    """
    return int(np.count_nonzero(np.diff(positions, prepend=0.0)))


def round_trips(positions: FloatArray, equity: FloatArray) -> tuple[int, int]:
    """Count closed round trips and the winning ones.

    A round trip is a maximal run of bars whose position has the same non-zero
    sign (resizing within the run does not split it). It closes at the first bar
    whose position sign differs (flat or reversed); a run still open at the last
    bar is not counted. Its P&L is the equity change from just before its entry
    (so the entry commission counts) to the closing bar's close (so the exit
    commission counts); on a reversal the closing bar's whole commission goes to
    the trip being closed, and the new trip starts from that bar's equity.

    Returns
    -------
    tuple of int
        ``(closed, winners)`` where winners ended with strictly more equity.
    """
    sign = np.sign(positions)
    previous = np.concatenate(([0.0], sign[:-1]))
    boundaries = np.flatnonzero(sign != previous)
    is_trip = sign[boundaries] != 0.0
    starts = boundaries[is_trip]
    ends = np.append(boundaries[1:], -1)[is_trip]
    closed = ends >= 0
    starts, ends = starts[closed], ends[closed]
    equity_before = np.concatenate(([1.0], equity[:-1]))
    # A trip entered from flat starts before its entry bar; a reversal starts after it.
    base = np.where(previous[starts] == 0.0, equity_before[starts], equity[starts])
    return int(starts.size), int(np.count_nonzero(equity[ends] > base))


def win_rate(positions: FloatArray, equity: FloatArray) -> float | None:
    """Fraction of closed round trips (see :func:`round_trips`) that made money.

    Returns ``None`` when no round trip closed.
    """
    closed, winners = round_trips(positions, equity)
    return winners / closed if closed else None


def exposure(positions: FloatArray) -> float:
    r"""Fraction of bars with a non-zero position.

    .. math:: \frac{1}{n} \#\{t : \mathrm{pos}_t \ne 0\}
    """
    return float(np.count_nonzero(positions)) / positions.size
