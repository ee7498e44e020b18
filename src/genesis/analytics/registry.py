"""The one table of indicators and signal strategies, and every view derived from it.

:data:`TABLE` lists each indicator (:class:`IndicatorSpec`) and each signal strategy
(:class:`SignalStrategySpec`) once, with its parameters, defaults and warm-up. The rest
is read from it:

* :data:`INDICATORS`: every indicator by name (``GET /indicators``, ``POST /indicators/{name}``);
* :data:`STRATEGY_CALCULATORS`: the single-output indicators, whose latest value an
  :class:`IndicatorCalculator` returns (``/strategy/calculate``);
* :data:`SIGNAL_STRATEGIES`: the strategies that turn prices into positions (``/backtests``).

Each view is a read-only :class:`Registry` with one lookup, :meth:`Registry.lookup`, that
ignores case and surrounding blanks and raises the one error of an unknown name
(:func:`~genesis.analytics.validation.check_choice`). An API layer derives its listings
and enums from these views, never from a list of its own.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from genesis.analytics import indicators
from genesis.analytics.params import ParametrizedSpec, ParamSpec
from genesis.analytics.strategies import RsiStrategy, SmaCrossover
from genesis.analytics.types import FloatArray, SignalStrategy
from genesis.analytics.validation import canonical_name, check_choice
from genesis.errors import InvalidInput

__all__ = [
    "EMA",
    "INDICATORS",
    "ROC",
    "RSI",
    "SIGNAL_STRATEGIES",
    "SMA",
    "STRATEGY_CALCULATORS",
    "TABLE",
    "WMA",
    "IndicatorCalculator",
    "IndicatorSpec",
    "Registry",
    "SignalStrategySpec",
    "StdDev",
    "calculator_for",
    "indicator_spec",
    "signal_strategy_for",
]


# --- what an entry is ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IndicatorSpec(ParametrizedSpec):
    """One indicator: its parameters, outputs, warm-up and function.

    Attributes
    ----------
    name, summary, params
        See :class:`~genesis.analytics.params.ParametrizedSpec`.
    outputs : tuple of str
        Names of the output arrays, in the order :meth:`compute` returns them.
    warmup_rule : str
        The warm-up as a formula of the parameters, e.g. ``"period - 1"``.
    function : callable
        The indicator function, ``function(prices, **params)``; it checks every value.
    warmup_of : callable
        ``warmup_of(**params) -> int`` for complete parameters; prefer :meth:`warmup`.
    """

    outputs: tuple[str, ...]
    warmup_rule: str
    function: Callable[..., FloatArray | tuple[FloatArray, ...]]
    warmup_of: Callable[..., int]

    def warmup(self, **params: object) -> int:
        """Return the number of leading NaN values :meth:`compute` gives for these parameters.

        Defaults are filled in; the values are not checked here (:meth:`compute` checks them).
        """
        return self.warmup_of(**self.resolve(params))

    def compute(self, prices: npt.ArrayLike, **params: object) -> dict[str, FloatArray]:
        """Compute the indicator and return its outputs by name (NaN over the warm-up).

        Raises
        ------
        InvalidInput
            If a parameter name is unknown, or (from the indicator's guards) the prices or
            a parameter value are invalid.
        """
        result = self.function(prices, **self.resolve(params))
        arrays = (result,) if isinstance(result, np.ndarray) else tuple(result)
        return dict(zip(self.outputs, arrays, strict=True))

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description: name, summary, params, outputs, warm-up."""
        return {**ParametrizedSpec.describe(self), "outputs": list(self.outputs), "warmup": self.warmup(),
                "warmup_rule": self.warmup_rule}


@dataclass(frozen=True, slots=True)
class SignalStrategySpec(ParametrizedSpec):
    """One signal strategy: its parameters, the range of its positions and its class.

    Attributes
    ----------
    name, summary, params
        See :class:`~genesis.analytics.params.ParametrizedSpec`.
    position_range : tuple of float
        Bounds of the positions the strategy emits.
    factory : callable
        The strategy class; prefer :meth:`create`, which fills in defaults.
    """

    position_range: tuple[float, float]
    factory: Callable[..., SignalStrategy]

    def create(self, **params: object) -> SignalStrategy:
        """Build the strategy; it checks its parameters (and rules such as ``fast < slow``) itself."""
        return self.factory(**self.resolve(params))

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description: name, summary, params, position range."""
        return {**ParametrizedSpec.describe(self), "position_range": list(self.position_range)}


@dataclass(frozen=True, slots=True, repr=False)
class IndicatorCalculator:
    """The latest value of a single-output indicator (the :class:`~genesis.analytics.types.Calculator` Protocol).

    Built by :func:`calculator_for` (or ``SMA(20)``-style aliases); the period is checked
    when :meth:`calculate` runs, by the indicator's own guard, with the data in hand.

    Attributes
    ----------
    spec : IndicatorSpec
        A single-output indicator of :data:`STRATEGY_CALCULATORS`.
    period : int
        Look-back of the indicator.
    """

    spec: IndicatorSpec
    period: int

    def __repr__(self) -> str:
        return f"IndicatorCalculator({self.name!r}, period={self.period!r})"

    @property
    def name(self) -> str:
        """The indicator's registry name."""
        return self.spec.name

    @property
    def warmup(self) -> int:
        """Number of leading prices without a value; :meth:`calculate` needs ``warmup + 1`` prices."""
        return self.spec.warmup(period=self.period)

    def values(self, prices: npt.ArrayLike) -> FloatArray:
        """Return the whole indicator series (NaN over the warm-up)."""
        (values,) = self.spec.compute(prices, period=self.period).values()
        return values

    def calculate(self, prices: npt.ArrayLike) -> float:
        """Return the indicator's value at the last price.

        Raises
        ------
        InvalidInput
            If ``prices`` or ``period`` is invalid, or the prices are too short to produce
            a value (fewer than ``warmup + 1``).
        """
        values = self.values(prices)  # the indicator's guard checks prices and period, once
        warmup = self.warmup
        if values.size <= warmup:
            raise InvalidInput(
                f"{self.name} with period={self.period} needs at least {warmup + 1} prices (got {values.size})"
            )
        return float(values[-1])


# --- the table -------------------------------------------------------------------------------


def _param(of: Callable[..., object], name: str, kind: Literal["integer", "number"], description: str,
           **bounds: Any) -> ParamSpec:
    # The default is the function's own (``sma(prices, period=20)``): written once, in its signature.
    default = inspect.signature(of).parameters[name].default
    return ParamSpec(name, kind, default, description=description, **bounds)


def _period(of: Callable[..., object], description: str = "look-back window in bars") -> ParamSpec:
    return _param(of, "period", "integer", description, minimum=1)


def _level(of: Callable[..., object], name: str, description: str) -> ParamSpec:
    return _param(of, name, "number", description, minimum=0.0, maximum=100.0, exclusive_minimum=True,
                  exclusive_maximum=True)


def _window_warmup(period: int, **_: object) -> int:
    return period - 1


def _lag_warmup(period: int) -> int:
    return period


def _macd_warmup(fast_period: int, slow_period: int, signal_period: int) -> int:
    return slow_period + signal_period - 2


def _windowed(name: str, summary: str, function: Callable[..., FloatArray]) -> IndicatorSpec:
    return IndicatorSpec(name, summary, (_period(function),), ("value",), "period - 1", function, _window_warmup)


def _lagged(name: str, summary: str, function: Callable[..., FloatArray]) -> IndicatorSpec:
    return IndicatorSpec(name, summary, (_period(function),), ("value",), "period", function, _lag_warmup)


_macd, _bbands = indicators.macd, indicators.bollinger_bands
TABLE: tuple[IndicatorSpec | SignalStrategySpec, ...] = (
    _windowed("sma", "Simple moving average", indicators.sma),
    _windowed("ema", "Exponential moving average (SMA-seeded)", indicators.ema),
    _windowed("wma", "Linearly weighted moving average", indicators.wma),
    _lagged("rsi", "Relative strength index (Wilder smoothing), 0-100", indicators.rsi),
    IndicatorSpec(
        name="macd",
        summary="Moving average convergence/divergence",
        params=(
            _param(_macd, "fast_period", "integer", "fast EMA span, < slow_period", minimum=2),
            _param(_macd, "slow_period", "integer", "slow EMA span", minimum=3),
            _param(_macd, "signal_period", "integer", "signal EMA span", minimum=1),
        ),
        outputs=("macd", "signal", "histogram"),
        warmup_rule="slow_period + signal_period - 2",
        function=_macd,
        warmup_of=_macd_warmup,
    ),
    IndicatorSpec(
        name="bbands",
        summary="Bollinger bands: SMA +/- num_std population standard deviations",
        params=(
            _period(_bbands),
            _param(_bbands, "num_std", "number", "band width", minimum=0.0, exclusive_minimum=True),
        ),
        outputs=("middle", "upper", "lower"),
        warmup_rule="period - 1",
        function=_bbands,
        warmup_of=_window_warmup,
    ),
    _windowed("stddev", "Rolling population standard deviation", indicators.rolling_std),
    _lagged("roc", "Rate of change in percent", indicators.roc),
    SignalStrategySpec(
        name="sma_crossover",
        summary="Long while the fast SMA is above the slow SMA",
        params=(
            _param(SmaCrossover, "fast", "integer", "fast SMA period, < slow", minimum=1),
            _param(SmaCrossover, "slow", "integer", "slow SMA period", minimum=2),
        ),
        position_range=(0.0, 1.0),
        factory=SmaCrossover,
    ),
    SignalStrategySpec(
        name="rsi",
        summary="Buy when RSI crosses below oversold, sell when it rises above overbought",
        params=(
            _period(RsiStrategy, "RSI period"),
            _level(RsiStrategy, "oversold", "RSI entry level, < overbought"),
            _level(RsiStrategy, "overbought", "RSI exit level"),
        ),
        position_range=(0.0, 1.0),
        factory=RsiStrategy,
    ),
)
"""Every indicator and signal strategy, once; the views below are read from it."""


# --- the views -------------------------------------------------------------------------------

S = TypeVar("S", bound=ParametrizedSpec)


class Registry(Mapping[str, S]):
    """A read-only view of :data:`TABLE`: lowercase name -> spec, in name order, with the one lookup.

    Parameters
    ----------
    kind : str
        What the names name (``"indicator"``), for error messages.
    specs : iterable of spec
        The entries; names are unique and already canonical (lowercase, no blanks).
    """

    __slots__ = ("_specs", "kind", "names")

    def __init__(self, kind: str, specs: Iterable[S]) -> None:
        ordered = sorted(specs, key=lambda spec: spec.name)
        self.kind = kind
        self._specs = {spec.name: spec for spec in ordered}
        self.names: tuple[str, ...] = tuple(self._specs)
        """The names in order: what listings, enums and error messages show."""
        assert len(self._specs) == len(ordered), f"duplicate {kind} name in the table"
        assert all(canonical_name(name) == name for name in self.names), f"{kind} names must be canonical"

    def __getitem__(self, name: str) -> S:
        return self._specs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={list(self.names)})"

    def lookup(self, name: object) -> S:
        """Return the spec registered as ``name``, ignoring case and surrounding blanks.

        Raises
        ------
        InvalidInput
            ``unknown <kind> 'x'; supported: ...`` with ``details={"supported": [...]}``.
        """
        return self._specs[check_choice(name, self.names, what=self.kind)]

    def describe(self) -> list[dict[str, Any]]:
        """Return every entry's JSON-ready description, in name order."""
        return [spec.describe() for spec in self._specs.values()]


INDICATORS: Registry[IndicatorSpec] = Registry(
    "indicator", (spec for spec in TABLE if isinstance(spec, IndicatorSpec))
)
"""Every indicator of the table."""

STRATEGY_CALCULATORS: Registry[IndicatorSpec] = Registry(
    "strategy", (spec for spec in INDICATORS.values() if len(spec.outputs) == 1)
)
"""The single-output indicators: the names ``/strategy/calculate`` accepts (see :func:`calculator_for`)."""

SIGNAL_STRATEGIES: Registry[SignalStrategySpec] = Registry(
    "signal strategy", (spec for spec in TABLE if isinstance(spec, SignalStrategySpec))
)
"""Every signal strategy of the table (see :func:`signal_strategy_for`)."""


def indicator_spec(name: str) -> IndicatorSpec:
    """Look up an indicator by name (:meth:`Registry.lookup` of :data:`INDICATORS`)."""
    return INDICATORS.lookup(name)


def calculator_for(name: str, period: int | None = None) -> IndicatorCalculator:
    """Build the calculator of the single-output indicator ``name`` (case-insensitive).

    Parameters
    ----------
    name : str
        One of :data:`STRATEGY_CALCULATORS`.
    period : int, optional
        Look-back; the indicator's default when omitted. It is checked when the
        calculator runs, against the prices.

    Raises
    ------
    InvalidInput
        If the name is unknown (the message and ``details["supported"]`` list the names).
    """
    spec = STRATEGY_CALCULATORS.lookup(name)
    if period is None:
        period = next(int(param.default) for param in spec.params if param.name == "period")
    return IndicatorCalculator(spec, period)


def signal_strategy_for(name: str, **params: object) -> SignalStrategy:
    """Build the signal strategy registered as ``name`` (case-insensitive).

    Raises
    ------
    InvalidInput
        If the name or a parameter name is unknown (``details["supported"]`` lists the
        accepted ones), or the strategy refuses a value.
    """
    return SIGNAL_STRATEGIES.lookup(name).create(**params)


# The classes of the original ``/strategy/calculate`` design, now read from the table: ``SMA(20).calculate(prices)``.
SMA = functools.partial(calculator_for, "sma")
EMA = functools.partial(calculator_for, "ema")
WMA = functools.partial(calculator_for, "wma")
RSI = functools.partial(calculator_for, "rsi")
ROC = functools.partial(calculator_for, "roc")
StdDev = functools.partial(calculator_for, "stddev")
