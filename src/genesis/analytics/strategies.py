"""Strategies: last-value calculators and signal strategies that produce positions.

Two kinds live here.

*Calculators* keep the original ``/strategy/calculate`` design: ``SMA(period).calculate(prices)``
returns the latest indicator value as a float. :data:`STRATEGY_CALCULATORS` maps the
names ``sma``, ``ema``, ``wma``, ``rsi``, ``roc`` and ``stddev`` to their classes and
:func:`calculator_for` builds one from a case-insensitive name.

*Signal strategies* turn prices into target positions for :func:`~genesis.analytics.backtest.run_backtest`.
The position at bar ``t`` is decided on bar ``t``'s close and is a fraction of equity:
1 fully long, 0 flat (both strategies here are long-only, so positions lie in [0, 1]).
Bars before the signal exists hold position 0. :data:`SIGNAL_STRATEGIES` lists them with
their parameters and :func:`signal_strategy_for` builds one by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from genesis.analytics import indicators
from genesis.analytics.params import ParametrizedSpec, ParamSpec
from genesis.analytics.types import FloatArray, SignalStrategy
from genesis.analytics.validation import as_prices, check_float, check_int
from genesis.errors import InvalidInput

__all__ = [
    "EMA",
    "ROC",
    "RSI",
    "SIGNAL_STRATEGIES",
    "SMA",
    "STRATEGY_CALCULATORS",
    "WMA",
    "IndicatorCalculator",
    "RsiStrategy",
    "SignalStrategySpec",
    "SmaCrossover",
    "StdDev",
    "calculator_for",
    "signal_strategy_for",
]


# --- calculators -------------------------------------------------------------------


class IndicatorCalculator:
    """Base of the last-value calculators: one single-output indicator and its period.

    Subclasses set :attr:`name` and :attr:`default_period` and implement :meth:`values`.

    Parameters
    ----------
    period : int, optional
        Look-back of the indicator, ``>= 1``; defaults to :attr:`default_period`.

    Raises
    ------
    InvalidInput
        If ``period`` is not an integer >= 1.
    """

    name: ClassVar[str]
    default_period: ClassVar[int]
    _lag: ClassVar[int] = 1
    """Warm-up is ``period - _lag``: 1 for windowed indicators, 0 for change-based ones."""

    __slots__ = ("period",)

    def __init__(self, period: int | None = None) -> None:
        self.period = check_int(self.default_period if period is None else period, name="period", minimum=1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(period={self.period})"

    @property
    def warmup(self) -> int:
        """Number of leading prices without a value; :meth:`calculate` needs ``warmup + 1`` prices."""
        return self.period - self._lag

    def values(self, prices: npt.ArrayLike) -> FloatArray:
        """Return the whole indicator series (NaN over the warm-up)."""
        raise NotImplementedError

    def calculate(self, prices: npt.ArrayLike) -> float:
        """Return the indicator's value at the last price.

        Raises
        ------
        InvalidInput
            If ``prices`` is invalid or too short to produce a value
            (fewer than ``warmup + 1`` prices).
        """
        values = self.values(prices)  # validates prices and period once
        if values.size <= self.warmup:
            raise InvalidInput(
                f"{self.name} with period={self.period} needs at least {self.warmup + 1} prices (got {values.size})"
            )
        return float(values[-1])


class SMA(IndicatorCalculator):
    """Latest simple moving average (see :func:`~genesis.analytics.indicators.sma`)."""

    __slots__ = ()
    name = "sma"
    default_period = 20

    def values(self, prices: npt.ArrayLike) -> FloatArray:
        """Return :func:`~genesis.analytics.indicators.sma` over ``prices``."""
        return indicators.sma(prices, self.period)


class EMA(IndicatorCalculator):
    """Latest exponential moving average (see :func:`~genesis.analytics.indicators.ema`)."""

    __slots__ = ()
    name = "ema"
    default_period = 20

    def values(self, prices: npt.ArrayLike) -> FloatArray:
        """Return :func:`~genesis.analytics.indicators.ema` over ``prices``."""
        return indicators.ema(prices, self.period)


class WMA(IndicatorCalculator):
    """Latest weighted moving average (see :func:`~genesis.analytics.indicators.wma`)."""

    __slots__ = ()
    name = "wma"
    default_period = 20

    def values(self, prices: npt.ArrayLike) -> FloatArray:
        """Return :func:`~genesis.analytics.indicators.wma` over ``prices``."""
        return indicators.wma(prices, self.period)


class RSI(IndicatorCalculator):
    """Latest Wilder RSI in [0, 100] (see :func:`~genesis.analytics.indicators.rsi`)."""

    __slots__ = ()
    name = "rsi"
    default_period = 14
    _lag = 0

    def values(self, prices: npt.ArrayLike) -> FloatArray:
        """Return :func:`~genesis.analytics.indicators.rsi` over ``prices``."""
        return indicators.rsi(prices, self.period)


class ROC(IndicatorCalculator):
    """Latest rate of change in percent (see :func:`~genesis.analytics.indicators.roc`)."""

    __slots__ = ()
    name = "roc"
    default_period = 10
    _lag = 0

    def values(self, prices: npt.ArrayLike) -> FloatArray:
        """Return :func:`~genesis.analytics.indicators.roc` over ``prices``."""
        return indicators.roc(prices, self.period)


class StdDev(IndicatorCalculator):
    """Latest rolling population standard deviation (see :func:`~genesis.analytics.indicators.rolling_std`)."""

    __slots__ = ()
    name = "stddev"
    default_period = 20

    def values(self, prices: npt.ArrayLike) -> FloatArray:
        """Return :func:`~genesis.analytics.indicators.rolling_std` over ``prices``."""
        return indicators.rolling_std(prices, self.period)


STRATEGY_CALCULATORS: Mapping[str, type[IndicatorCalculator]] = MappingProxyType(
    {cls.name: cls for cls in (SMA, EMA, WMA, RSI, ROC, StdDev)}
)
"""Read-only registry: lowercase name -> calculator class."""


def _lookup(kind: str, registry: Mapping[str, Any], name: object) -> Any:
    key = name.strip().lower() if isinstance(name, str) else ""
    try:
        return registry[key]
    except KeyError:
        raise InvalidInput(f"unknown {kind} {name!r}; supported: {', '.join(sorted(registry))}") from None


def calculator_for(name: str, period: int | None = None) -> IndicatorCalculator:
    """Build the calculator registered as ``name`` (case-insensitive).

    Parameters
    ----------
    name : str
        One of :data:`STRATEGY_CALCULATORS` (``sma``, ``ema``, ``wma``, ``rsi``,
        ``roc``, ``stddev``).
    period : int, optional
        Look-back; the class default when omitted.

    Raises
    ------
    InvalidInput
        If the name is unknown (the message lists the supported names) or the
        period is invalid.
    """
    cls: type[IndicatorCalculator] = _lookup("strategy", STRATEGY_CALCULATORS, name)
    return cls(period)


# --- signal strategies --------------------------------------------------------------


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

    name: ClassVar[str] = "sma_crossover"
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
        RSI period, ``>= 1``.
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

    name: ClassVar[str] = "rsi"
    __slots__ = ("overbought", "oversold", "period")

    def __init__(self, period: int = 14, oversold: float = 30.0, overbought: float = 70.0) -> None:
        self.period = check_int(period, name="period", minimum=1)
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


@dataclass(frozen=True, slots=True)
class SignalStrategySpec(ParametrizedSpec):
    """What an API layer needs to know about one signal strategy.

    Attributes
    ----------
    name, summary, params
        See :class:`~genesis.analytics.params.ParametrizedSpec`.
    position_range : tuple of float
        Bounds of the positions the strategy emits.
    factory : callable
        The strategy class; prefer :meth:`create`, which fills in defaults and validates.
    """

    position_range: tuple[float, float]
    factory: Callable[..., SignalStrategy]

    def create(self, **params: object) -> SignalStrategy:
        """Build the strategy; cross-parameter rules (e.g. ``fast < slow``) are checked here."""
        return self.factory(**self.resolve(params))

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description: name, summary, params, position range."""
        return {**ParametrizedSpec.describe(self), "position_range": list(self.position_range)}


def _level(name: str, default: float, description: str) -> ParamSpec:
    return ParamSpec(
        name,
        "number",
        default,
        minimum=0.0,
        maximum=100.0,
        exclusive_minimum=True,
        exclusive_maximum=True,
        description=description,
    )


SIGNAL_STRATEGIES: Mapping[str, SignalStrategySpec] = MappingProxyType(
    {
        "sma_crossover": SignalStrategySpec(
            "sma_crossover",
            "Long while the fast SMA is above the slow SMA",
            (
                ParamSpec("fast", "integer", 10, minimum=1, description="fast SMA period, < slow"),
                ParamSpec("slow", "integer", 30, minimum=2, description="slow SMA period"),
            ),
            (0.0, 1.0),
            SmaCrossover,
        ),
        "rsi": SignalStrategySpec(
            "rsi",
            "Buy when RSI crosses below oversold, sell when it rises above overbought",
            (
                ParamSpec("period", "integer", 14, minimum=1, description="RSI period"),
                _level("oversold", 30.0, "RSI entry level, < overbought"),
                _level("overbought", 70.0, "RSI exit level"),
            ),
            (0.0, 1.0),
            RsiStrategy,
        ),
    }
)
"""Read-only registry: lowercase name -> :class:`SignalStrategySpec`."""


def signal_strategy_for(name: str, **params: object) -> SignalStrategy:
    """Build the signal strategy registered as ``name`` (case-insensitive).

    Raises
    ------
    InvalidInput
        If the name is unknown (the message lists the supported names) or a
        parameter is unknown or invalid.
    """
    spec: SignalStrategySpec = _lookup("signal strategy", SIGNAL_STRATEGIES, name)
    return spec.create(**params)
