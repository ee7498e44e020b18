r"""Vectorised single-asset backtest of target positions.

Execution model
---------------
* ``positions[t]`` is the target fraction of equity held after bar ``t``'s close;
  it is decided on that close (signals may use prices up to and including ``t``).
* It earns the next bar's return: no look-ahead,

  .. math:: R_t = \mathrm{pos}_{t-1} \, r_t - c\,|\mathrm{pos}_t - \mathrm{pos}_{t-1}|,
            \quad r_t = \frac{p_t}{p_{t-1}} - 1, \quad \mathrm{pos}_{-1} = 0, \ r_0 = 0

  so bar 0 only pays the commission of the initial position.
* Commission ``c`` is a fraction of traded notional, charged at the bar of the
  trade. Fractional positions in [-1, 1] are allowed (negative is short); the
  fraction is kept constant between trades and only changes of it are charged.
* Equity starts at 1.0 before bar 0: :math:`E_t = \prod_{s \le t} (1 + R_s)`. A bar
  that would lose more than everything (a short through a price more than doubling)
  ruins the account: equity stays 0 and later bars return 0.

Metrics are documented in :mod:`genesis.analytics.performance`; all are finite floats
or ``None``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from genesis.analytics import performance
from genesis.analytics.types import FloatArray
from genesis.analytics.validation import as_positions, as_prices, check_float
from genesis.errors import InvalidInput

__all__ = ["BacktestResult", "run_backtest", "strategy_returns"]


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """Metrics of one backtest; see :mod:`genesis.analytics.performance` for definitions.

    Attributes
    ----------
    bars : int
        Number of prices.
    total_return, cagr, annualized_volatility, sharpe, sortino, max_drawdown : float or None
        Return and risk metrics (``None`` where undefined).
    trades : int
        Number of position changes.
    round_trips : int
        Closed round trips (see :func:`~genesis.analytics.performance.round_trips`).
    win_rate : float or None
        Fraction of closed round trips with positive P&L; ``None`` without any.
    exposure : float
        Fraction of bars with a non-zero position.
    final_equity : float
        Equity after the last bar (starting from 1.0).
    equity : numpy.ndarray or None
        Read-only equity curve, one value per bar, when requested.
    """

    bars: int
    total_return: float
    cagr: float | None
    annualized_volatility: float
    sharpe: float | None
    sortino: float | None
    max_drawdown: float
    trades: int
    round_trips: int
    win_rate: float | None
    exposure: float
    final_equity: float
    equity: FloatArray | None = field(default=None, compare=False, repr=False)

    def metrics(self) -> dict[str, float | int | None]:
        """Return every metric by name (JSON-ready; no equity curve)."""
        return {
            "bars": self.bars,
            "total_return": self.total_return,
            "cagr": self.cagr,
            "annualized_volatility": self.annualized_volatility,
            "sharpe": self.sharpe,
            "sortino": self.sortino,
            "max_drawdown": self.max_drawdown,
            "trades": self.trades,
            "round_trips": self.round_trips,
            "win_rate": self.win_rate,
            "exposure": self.exposure,
            "final_equity": self.final_equity,
        }

    def to_dict(self) -> dict[str, Any]:
        """Return the metrics plus ``equity`` as a list of floats (or None)."""
        out: dict[str, Any] = self.metrics()
        out["equity"] = None if self.equity is None else self.equity.tolist()
        return out


def strategy_returns(prices: npt.ArrayLike, positions: npt.ArrayLike, *, commission: float = 0.0) -> FloatArray:
    r"""Per-bar strategy returns under the module's execution model.

    .. math:: R_t = \mathrm{pos}_{t-1} \, r_t - c\,|\mathrm{pos}_t - \mathrm{pos}_{t-1}|

    with :math:`\mathrm{pos}_{-1} = 0`, :math:`r_0 = 0`, clipped at -1 (ruin), and 0
    after ruin.

    Parameters
    ----------
    prices : array_like
        1-D prices, oldest first; finite and > 0.
    positions : array_like
        Target positions in [-1, 1], one per price.
    commission : float, default 0.0
        Fraction of traded notional, ``0 <= commission < 1``.

    Returns
    -------
    numpy.ndarray
        float64, same length as ``prices`` (no warm-up).
    """
    p = as_prices(prices)
    pos = as_positions(positions, p.size)
    c = check_float(commission, name="commission", minimum=0.0, maximum=1.0, exclusive_maximum=True)
    return _strategy_returns(p, pos, c)


def _strategy_returns(p: FloatArray, pos: FloatArray, commission: float) -> FloatArray:
    # Checked below: absurd price jumps overflow a return to inf, and a flat bar's 0 * inf is NaN.
    with np.errstate(over="ignore", invalid="ignore"):
        bar_returns = np.empty(p.size)
        bar_returns[0] = 0.0
        np.divide(p[1:], p[:-1], out=bar_returns[1:])
        bar_returns[1:] -= 1.0
        held = np.concatenate(([0.0], pos[:-1]))
        out = held * bar_returns - commission * np.abs(np.diff(pos, prepend=0.0))
    if not np.isfinite(out).all():
        raise InvalidInput("prices jump by too many orders of magnitude to backtest (returns overflow)")
    ruined = out <= -1.0
    if ruined.any():
        first = int(np.argmax(ruined))
        out[first] = -1.0
        out[first + 1 :] = 0.0
    return out


def run_backtest(
    prices: npt.ArrayLike,
    positions: npt.ArrayLike,
    *,
    commission: float = 0.0,
    periods_per_year: float = 252,
    include_equity: bool = False,
) -> BacktestResult:
    r"""Backtest target positions on one price series.

    See the module docstring for the execution model. Equity:
    :math:`E_t = \prod_{s \le t}(1 + R_s)` with :math:`R` from :func:`strategy_returns`.

    Parameters
    ----------
    prices : array_like
        1-D prices, oldest first; at least 2, finite and > 0.
    positions : array_like
        Target positions in [-1, 1], one per price (e.g.
        ``SmaCrossover(10, 30).positions(prices)``).
    commission : float, default 0.0
        Fraction of traded notional charged per trade, ``0 <= commission < 1``.
    periods_per_year : float, default 252
        Bars per year, for CAGR, volatility, Sharpe and Sortino; > 0.
    include_equity : bool, default False
        Attach the equity curve (one value per bar) to the result.

    Returns
    -------
    BacktestResult
        Finite metrics (``None`` where undefined).

    Raises
    ------
    InvalidInput
        On invalid prices, positions or parameters, or fewer than 2 prices.

    Notes
    -----
    No warm-up: every bar has a return (bar 0 only its entry commission). Strategy
    warm-ups show up as bars with position 0.
    """
    p = as_prices(prices)
    if p.size < 2:
        raise InvalidInput(f"prices must hold at least 2 values for a backtest (got {p.size})")
    pos = as_positions(positions, p.size)
    c = check_float(commission, name="commission", minimum=0.0, maximum=1.0, exclusive_maximum=True)
    ppy = check_float(periods_per_year, name="periods_per_year", minimum=0.0, exclusive_minimum=True)
    returns = _strategy_returns(p, pos, c)
    # Absurd inputs (prices spanning hundreds of orders of magnitude) can overflow
    # equity or the variance; they are reported as invalid input below, not as inf.
    with np.errstate(over="ignore", invalid="ignore"):
        equity: FloatArray = np.cumprod(1.0 + returns, dtype=np.float64)
        result = _evaluate(p.size, pos, returns, equity, ppy)
    finite = all(math.isfinite(v) for v in result.metrics().values() if v is not None)
    if not finite or not np.isfinite(equity).all():
        raise InvalidInput("prices rise by too many orders of magnitude to evaluate the backtest")
    if not include_equity:
        return result
    equity.setflags(write=False)
    return dataclasses.replace(result, equity=equity)


def _evaluate(bars: int, pos: FloatArray, returns: FloatArray, equity: FloatArray, ppy: float) -> BacktestResult:
    closed, winners = performance.round_trips(pos, equity)
    return BacktestResult(
        bars=bars,
        total_return=performance.total_return(equity),
        cagr=performance.cagr(equity, ppy),
        annualized_volatility=performance.annualized_volatility(returns, ppy),
        sharpe=performance.sharpe_ratio(returns, ppy),
        sortino=performance.sortino_ratio(returns, ppy),
        max_drawdown=performance.max_drawdown(equity),
        trades=performance.trade_count(pos),
        round_trips=closed,
        win_rate=winners / closed if closed else None,
        exposure=performance.exposure(pos),
        final_equity=float(equity[-1]),
    )
