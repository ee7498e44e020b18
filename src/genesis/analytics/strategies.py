"""Signal strategies: turn prices into target positions for a backtest.

The position at bar ``t`` is decided on bar ``t``'s close and is a fraction of equity:
1 fully long, 0 flat (both strategies here are long-only, so positions lie in [0, 1]).
Bars before the signal exists hold position 0. Their parameters, defaults and names
are in the one table, :mod:`genesis.analytics.registry`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from genesis.analytics import indicators
from genesis.analytics.types import FloatArray
from genesis.analytics.validation import as_prices, check_float, check_int
from genesis.errors import InvalidInput

__all__ = ["RsiStrategy", "SmaCrossover"]


class SmaCrossover:
    r"""Long while the fast SMA is above the slow SMA, flat otherwise.

    .. math:: \mathrm{position}_t = \mathbb{1}[\mathrm{SMA}^{fast}_t > \mathrm{SMA}^{slow}_t]

    Parameters
    ----------
    fast : int, default 10
        Fast SMA period, ``>= 1`` and ``< slow``.
    slow : int, default 30
        Slow SMA period.

    Notes
    -----
    Positions lie in {0, 1}. Warm-up: the first ``slow - 1`` bars have no slow SMA
    and hold position 0.
    """

    __slots__ = ("fast", "slow")

    def __init__(self, fast: int = 10, slow: int = 30) -> None:
        self.fast = check_int(fast, name="fast", minimum=1)
        self.slow = check_int(slow, name="slow", minimum=2)
        if self.fast >= self.slow:
            raise InvalidInput(f"fast must be < slow (got fast={self.fast}, slow={self.slow})")

    def __repr__(self) -> str:
        return f"SmaCrossover(fast={self.fast}, slow={self.slow})"

    @property
    def warmup(self) -> int:
        """Number of leading bars forced flat: ``slow - 1``."""
        return self.slow - 1

    def positions(self, prices: npt.ArrayLike) -> FloatArray:
        """Return target positions in {0, 1}, one per price.

        Raises
        ------
        InvalidInput
            If ``prices`` is invalid or shorter than ``slow``.
        """
        p = as_prices(prices)
        fast = indicators.sma(p, self.fast)
        slow = indicators.sma(p, self.slow)
        with np.errstate(invalid="ignore"):  # NaN over the warm-up compares False: flat
            return (fast > slow).astype(np.float64)


class RsiStrategy:
    r"""Mean reversion on RSI: buy when it crosses below ``oversold``, sell above ``overbought``.

    An entry happens at bar ``t`` when :math:`\mathrm{RSI}_{t-1} \ge oversold` and
    :math:`\mathrm{RSI}_t < oversold`; an exit when :math:`\mathrm{RSI}_t > overbought`.
    Between events the last state is held (vectorised forward fill), so

    .. math:: \mathrm{position}_t = 1 \text{ if the latest event at or before } t
              \text{ is an entry, else } 0.

    Parameters
    ----------
    period : int, default 14
        RSI period, ``1 <= period <= len(prices)``; checked by
        :func:`~genesis.analytics.indicators.rsi` when :meth:`positions` runs.
    oversold : float, default 30
        Entry level, ``0 < oversold < overbought``.
    overbought : float, default 70
        Exit level, ``< 100``.

    Notes
    -----
    Positions lie in {0, 1}. Warm-up: the first ``period`` bars have no RSI and hold
    position 0; an RSI that starts below ``oversold`` has not crossed it, so it does
    not enter until it rises to ``oversold`` or above and falls back below.
    """

    __slots__ = ("overbought", "oversold", "period")

    def __init__(self, period: int = 14, oversold: float = 30.0, overbought: float = 70.0) -> None:
        self.period = period
        self.oversold = check_float(
            oversold, name="oversold", minimum=0.0, maximum=100.0, exclusive_minimum=True, exclusive_maximum=True
        )
        self.overbought = check_float(
            overbought,
            name="overbought",
            minimum=0.0,
            maximum=100.0,
            exclusive_minimum=True,
            exclusive_maximum=True,
        )
        if self.oversold >= self.overbought:
            raise InvalidInput(
                f"oversold must be < overbought (got oversold={self.oversold:g}, overbought={self.overbought:g})"
            )

    def __repr__(self) -> str:
        return f"RsiStrategy(period={self.period}, oversold={self.oversold:g}, overbought={self.overbought:g})"

    @property
    def warmup(self) -> int:
        """Number of leading bars forced flat: ``period``."""
        return self.period

    def positions(self, prices: npt.ArrayLike) -> FloatArray:
        """Return target positions in {0, 1}, one per price.

        Raises
        ------
        InvalidInput
            If ``prices`` is invalid or shorter than ``period``.
        """
        values = indicators.rsi(prices, self.period)
        with np.errstate(invalid="ignore"):  # NaN over the warm-up compares False: no event
            below = values < self.oversold
            entry = np.zeros(values.size, dtype=bool)
            entry[1:] = below[1:] & (values[:-1] >= self.oversold)
            exit_ = values > self.overbought
        return _hold_state(entry, exit_)


def _hold_state(entry: npt.NDArray[np.bool_], exit_: npt.NDArray[np.bool_]) -> FloatArray:
    """Forward-fill entry/exit events into a 0/1 state without a Python loop.

    Each bar takes the state of the latest event at or before it (1 for an entry,
    0 for an exit, 0 before any event). Entry wins if both fire on one bar, which
    cannot happen when ``oversold < overbought``.
    """
    event = entry | exit_
    index = np.where(event, np.arange(event.size), -1)
    np.maximum.accumulate(index, out=index)
    state = entry[np.maximum(index, 0)] & (index >= 0)
    return state.astype(np.float64)
