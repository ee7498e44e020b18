"""Technical indicators computed by TA-Lib behind Genesis validation.

Every indicator validates its input once (:func:`~genesis.analytics.validation.as_prices`
and :func:`~genesis.analytics.validation.check_period`), calls TA-Lib on a
contiguous float64 array and returns float64 array(s) of the input's length with
NaN over the warm-up: the leading bars for which the formula has too little
history. When the series is no longer than the warm-up, every value is NaN.

TA-Lib's results depend on a process-wide "unstable period" setting
(``talib.set_unstable_period``); Genesis relies on its default of 0 and never
changes it. With that default EMA is seeded with the SMA of its first ``period``
prices and RSI with the simple averages of its first ``period`` changes, as
documented per function.

Their names, parameters, defaults, outputs and warm-ups are in the one table,
:mod:`genesis.analytics.registry`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import talib

from genesis.analytics.types import FloatArray
from genesis.analytics.validation import as_prices, check_float, check_period
from genesis.errors import InvalidInput

__all__ = [
    "BollingerBands",
    "Macd",
    "bollinger_bands",
    "ema",
    "macd",
    "roc",
    "rolling_std",
    "rsi",
    "sma",
    "wma",
]


class Macd(NamedTuple):
    """The three MACD outputs, each as long as the input."""

    macd: FloatArray
    signal: FloatArray
    histogram: FloatArray


class BollingerBands(NamedTuple):
    """The three Bollinger outputs, each as long as the input."""

    middle: FloatArray
    upper: FloatArray
    lower: FloatArray


def sma(prices: npt.ArrayLike, period: int = 20) -> FloatArray:
    r"""Simple moving average.

    .. math:: \mathrm{SMA}_t = \frac{1}{n} \sum_{i=t-n+1}^{t} p_i

    Parameters
    ----------
    prices : array_like
        1-D prices, oldest first; finite and > 0.
    period : int, default 20
        Window length ``n``, ``1 <= n <= len(prices)``.

    Returns
    -------
    numpy.ndarray
        float64, same length as ``prices``.

    Notes
    -----
    Warm-up: ``period - 1`` leading NaN values.
    """
    p = as_prices(prices)
    n = check_period(period, p.size)
    return talib.SMA(p, timeperiod=n)


def ema(prices: npt.ArrayLike, period: int = 20) -> FloatArray:
    r"""Exponential moving average, seeded with the SMA of the first ``period`` prices.

    .. math::

        \alpha = \frac{2}{n + 1}, \quad
        \mathrm{EMA}_{n-1} = \frac{1}{n}\sum_{i=0}^{n-1} p_i, \quad
        \mathrm{EMA}_t = \mathrm{EMA}_{t-1} + \alpha (p_t - \mathrm{EMA}_{t-1})

    Parameters
    ----------
    prices : array_like
        1-D prices, oldest first; finite and > 0.
    period : int, default 20
        Span ``n``, ``1 <= n <= len(prices)``.

    Returns
    -------
    numpy.ndarray
        float64, same length as ``prices``.

    Notes
    -----
    Warm-up: ``period - 1`` leading NaN values (TA-Lib seeding, unstable period 0).
    """
    p = as_prices(prices)
    n = check_period(period, p.size)
    return talib.EMA(p, timeperiod=n)


def wma(prices: npt.ArrayLike, period: int = 20) -> FloatArray:
    r"""Linearly weighted moving average (newest price weighs ``n``, oldest 1).

    .. math:: \mathrm{WMA}_t = \frac{\sum_{k=1}^{n} k \, p_{t-n+k}}{n(n+1)/2}

    Parameters
    ----------
    prices : array_like
        1-D prices, oldest first; finite and > 0.
    period : int, default 20
        Window length ``n``, ``1 <= n <= len(prices)``.

    Returns
    -------
    numpy.ndarray
        float64, same length as ``prices``.

    Notes
    -----
    Warm-up: ``period - 1`` leading NaN values.
    """
    p = as_prices(prices)
    n = check_period(period, p.size)
    return talib.WMA(p, timeperiod=n)


def rsi(prices: npt.ArrayLike, period: int = 14) -> FloatArray:
    r"""Relative strength index with Wilder smoothing.

    With :math:`d_t = p_t - p_{t-1}`, :math:`g_t = \max(d_t, 0)`,
    :math:`l_t = \max(-d_t, 0)`:

    .. math::

        G_n = \frac{1}{n}\sum_{t=1}^{n} g_t, \quad
        G_t = \frac{(n-1) G_{t-1} + g_t}{n} \ (t > n), \quad
        \mathrm{RSI}_t = 100 \frac{G_t}{G_t + L_t}

    and likewise :math:`L_t` from :math:`l_t`. Where :math:`G_t + L_t = 0` (a
    perfectly flat stretch since the start) the RSI is 0, TA-Lib's convention.

    Parameters
    ----------
    prices : array_like
        1-D prices, oldest first; finite and > 0.
    period : int, default 14
        Smoothing length ``n``, ``1 <= n <= len(prices)``.

    Returns
    -------
    numpy.ndarray
        float64 in [0, 100], same length as ``prices``.

    Notes
    -----
    Warm-up: ``period`` leading NaN values (the first value needs ``period``
    price changes; TA-Lib's RSI unstable period is left at its default 0).
    """
    p = as_prices(prices)
    n = check_period(period, p.size)
    if n == 1:
        # TA-Lib refuses period 1; with n = 1 the averages are the last change itself.
        out = np.full(p.size, np.nan)
        out[1:] = np.where(np.diff(p) > 0.0, 100.0, 0.0)
        return out
    return talib.RSI(p, timeperiod=n)


def macd(prices: npt.ArrayLike, fast_period: int = 12, slow_period: int = 26, signal_period: int = 9) -> Macd:
    r"""Moving average convergence/divergence.

    .. math::

        \mathrm{MACD}_t = \mathrm{EMA}^{fast}_t - \mathrm{EMA}^{slow}_t, \quad
        \mathrm{signal} = \mathrm{EMA}_{signal}(\mathrm{MACD}), \quad
        \mathrm{histogram} = \mathrm{MACD} - \mathrm{signal}

    Seeding follows TA-Lib: both EMAs start at bar ``slow - 1``, each seeded with
    the SMA of its own last ``fast`` (resp. ``slow``) prices up to that bar; the
    signal EMA is seeded with the SMA of the first ``signal`` MACD values.

    Parameters
    ----------
    prices : array_like
        1-D prices, oldest first; finite and > 0.
    fast_period : int, default 12
        Fast EMA span, ``>= 2`` (TA-Lib's minimum) and ``< slow_period``.
    slow_period : int, default 26
        Slow EMA span, ``<= len(prices)``.
    signal_period : int, default 9
        Signal EMA span, ``>= 1``.

    Returns
    -------
    Macd
        ``(macd, signal, histogram)``, float64 arrays as long as ``prices``.

    Notes
    -----
    Warm-up: ``slow_period + signal_period - 2`` leading NaN values in all three
    outputs (TA-Lib publishes the MACD line only once the signal exists).
    """
    p = as_prices(prices)
    slow = check_period(slow_period, p.size, name="slow_period", minimum=3)
    fast = check_period(fast_period, p.size, name="fast_period", minimum=2)
    if fast >= slow:
        raise InvalidInput(f"fast_period must be < slow_period (got fast_period={fast}, slow_period={slow})")
    signal = check_period(signal_period, p.size, name="signal_period")
    line, sig, hist = talib.MACD(p, fastperiod=fast, slowperiod=slow, signalperiod=signal)
    return Macd(line, sig, hist)


def bollinger_bands(prices: npt.ArrayLike, period: int = 20, num_std: float = 2.0) -> BollingerBands:
    r"""Bollinger bands around the simple moving average.

    .. math::

        \mathrm{middle}_t = \mathrm{SMA}_t, \quad
        \mathrm{upper}_t = \mathrm{SMA}_t + k\,\sigma_t, \quad
        \mathrm{lower}_t = \mathrm{SMA}_t - k\,\sigma_t

    where :math:`\sigma_t` is the population standard deviation of the same window
    (see :func:`rolling_std`) and :math:`k` is ``num_std``.

    Parameters
    ----------
    prices : array_like
        1-D prices, oldest first; finite and > 0.
    period : int, default 20
        Window length, ``1 <= period <= len(prices)``.
    num_std : float, default 2.0
        Band width ``k`` in standard deviations, finite and > 0.

    Returns
    -------
    BollingerBands
        ``(middle, upper, lower)``, float64 arrays as long as ``prices``.

    Notes
    -----
    Warm-up: ``period - 1`` leading NaN values in all three outputs.
    """
    p = as_prices(prices)
    n = check_period(period, p.size)
    k = check_float(num_std, name="num_std", minimum=0.0, exclusive_minimum=True)
    if n == 1:
        # TA-Lib refuses period 1; a one-price window has zero width.
        return BollingerBands(p.copy(), p.copy(), p.copy())
    # TA-Lib's default moving-average type for the middle band is the SMA.
    upper, middle, lower = talib.BBANDS(p, timeperiod=n, nbdevup=k, nbdevdn=k)
    return BollingerBands(middle, upper, lower)


def rolling_std(prices: npt.ArrayLike, period: int = 20) -> FloatArray:
    r"""Rolling population standard deviation (TA-Lib ``STDDEV`` with ``nbdev=1``).

    .. math::

        \sigma_t = \sqrt{\frac{1}{n}\sum_{i=t-n+1}^{t} (p_i - \mathrm{SMA}_t)^2}

    Parameters
    ----------
    prices : array_like
        1-D prices, oldest first; finite and > 0.
    period : int, default 20
        Window length ``n``, ``1 <= n <= len(prices)``.

    Returns
    -------
    numpy.ndarray
        float64, >= 0, same length as ``prices``.

    Notes
    -----
    Warm-up: ``period - 1`` leading NaN values.
    """
    p = as_prices(prices)
    n = check_period(period, p.size)
    if n == 1:
        # TA-Lib refuses period 1; a one-price window has no dispersion.
        return np.zeros(p.size)
    return talib.STDDEV(p, timeperiod=n, nbdev=1.0)


def roc(prices: npt.ArrayLike, period: int = 10) -> FloatArray:
    r"""Rate of change in percent (TA-Lib ``ROC``).

    .. math:: \mathrm{ROC}_t = 100 \left(\frac{p_t}{p_{t-n}} - 1\right)

    Parameters
    ----------
    prices : array_like
        1-D prices, oldest first; finite and > 0.
    period : int, default 10
        Look-back ``n``, ``1 <= n <= len(prices)``.

    Returns
    -------
    numpy.ndarray
        float64, same length as ``prices``.

    Notes
    -----
    Warm-up: ``period`` leading NaN values.
    """
    p = as_prices(prices)
    n = check_period(period, p.size)
    return talib.ROC(p, timeperiod=n)
