r"""Streaming anomaly detection on price series, per symbol.

(:mod:`genesis.analytics.anomaly_scan` scores a whole series at once with the same rules.)

Each point is scored against the ``window_size`` values *before* it (the point
itself never enters its own statistics, so a spike cannot dampen its own score):

``"log_return_zscore"`` (default)
    :math:`x_t = \ln(p_t / p_{t-1})`, score :math:`z_t = (x_t - \mu)/\sigma`, with
    :math:`\mu, \sigma` the mean and population standard deviation (ddof 0) of
    :math:`x_{t-W}, \dots, x_{t-1}`. A steady trend has constant log returns and is
    not anomalous. Warm-up: ``window_size + 1`` prices have no score.
``"price_zscore"``
    The same z-score on the prices themselves (flags trends too). Warm-up:
    ``window_size`` prices. Prices must lie in (1e-12, 1e150).
``"mad"``
    Robust score on log returns, :math:`(x_t - \mathrm{median})/(1.4826\,\mathrm{MAD})`
    over the same window (``mean``/``std`` report the median and the scaled MAD).
    Warm-up: ``window_size + 1`` prices.

A point is anomalous when :math:`|z_t| > \text{threshold}`. The dispersion is floored
at ``1e-12`` (log returns) or ``1e-12 * |mean|`` (prices): variation below that is
float rounding noise, and a perfectly flat window followed by a move scores a large
finite number instead of infinity. Scores are clamped to ``±1e15``; everything the
detector returns is finite.

Streaming state is exact: every scored value is held as the integer
``round(x * 2**96)`` (exact for ``|x| >= 2**-43``), and the window's sum and sum of
squares are Python integers updated in O(1) per price with a ring buffer. The mean,
variance (numerator ``W*S2 - S1**2``, exact) and deviation are each rounded once
when :meth:`AnomalyDetector.detect` runs, so there is no drift after any number of
updates and no cancellation at large price offsets. The MAD method is O(W log W)
per :meth:`~AnomalyDetector.detect`.
"""

from __future__ import annotations

import math
import numbers
import operator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Literal, get_args

import numpy as np
import numpy.typing as npt

from genesis.analytics.types import FloatArray
from genesis.analytics.validation import as_prices, check_float, check_int
from genesis.errors import InvalidInput

__all__ = [
    "MAX_SCORE",
    "METHODS",
    "SCORE_FLOOR",
    "AnomalyDetector",
    "AnomalyResult",
    "DetectorState",
    "Method",
    "check_detector_config",
]

Method = Literal["log_return_zscore", "price_zscore", "mad"]
METHODS: Final[tuple[str, ...]] = get_args(Method)

SCORE_FLOOR: Final = 1e-12
"""Dispersion floor: absolute for log returns, relative to ``|mean|`` for prices."""
MAX_SCORE: Final = 1e15
"""Scores are clamped to ``[-MAX_SCORE, MAX_SCORE]``."""
MAD_TO_SIGMA: Final = 1.4826
"""Scale of the MAD to a normal standard deviation."""
PRICE_ZSCORE_BOUNDS: Final = (1e-12, 1e150)
"""Open price range of ``price_zscore``: keeps the scaled integers exact and squares finite."""
# Ratios outside this range lose precision (subnormal) or overflow: use log(p) - log(prev).
LOG_RATIO_LOW: Final = 1e-300
LOG_RATIO_HIGH: Final = 1e300

_SCALE_BITS: Final = 96
_SCALE: Final = float(2**_SCALE_BITS)  # multiplying a float by it is exact
_SCALE_INT: Final = 2**_SCALE_BITS


@dataclass(frozen=True, slots=True)
class AnomalyResult:
    """Verdict on the latest point of one symbol.

    Attributes
    ----------
    symbol : str
        Symbol the verdict is for.
    is_anomaly : bool
        ``abs(score) > threshold``.
    score : float
        Signed z-score (or robust score) of the latest value.
    value : float
        The scored value: the latest log return, or the latest price for ``price_zscore``.
    price : float
        The latest price.
    mean, std : float
        Window mean and population standard deviation (for ``mad``: median and
        1.4826 * MAD), before the dispersion floor.
    window : int
        Number of values in the window (``window_size``).
    threshold : float
        Threshold applied.
    method : str
        Scoring method.
    """

    symbol: str
    is_anomaly: bool
    score: float
    value: float
    price: float
    mean: float
    std: float
    window: int
    threshold: float
    method: str

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-ready dict."""
        return {
            "symbol": self.symbol,
            "is_anomaly": self.is_anomaly,
            "score": self.score,
            "value": self.value,
            "price": self.price,
            "mean": self.mean,
            "std": self.std,
            "window": self.window,
            "threshold": self.threshold,
            "method": self.method,
        }


@dataclass(frozen=True, slots=True)
class DetectorState:
    """Snapshot of one symbol's streaming state (equal after bulk or one-by-one updates).

    Attributes
    ----------
    count : int
        Prices received.
    last_price : float
        Most recent price.
    window : tuple of float
        Scored values before the latest one, oldest first (at most ``window_size``).
    latest : float or None
        The latest scored value (None until one exists, e.g. after a single price
        with a log-return method).
    sum, sum_squares : int
        Exact window sums of the scaled integers ``round(x * 2**96)``.
    """

    count: int
    last_price: float
    window: tuple[float, ...]
    latest: float | None
    sum: int
    sum_squares: int


class _SymbolState:
    """Mutable per-symbol state; a ring buffer of scaled integers plus exact sums."""

    __slots__ = ("count", "filled", "last_price", "pending_q", "pending_x", "pos", "ring", "s1", "s2")

    def __init__(self, window_size: int) -> None:
        self.count = 0
        self.last_price = 0.0
        self.ring = [0] * window_size  # oldest value at ``pos`` once full
        self.pos = 0
        self.filled = 0
        self.s1 = 0
        self.s2 = 0
        self.pending_q: int | None = None  # latest scored value, not yet in the window
        self.pending_x = 0.0

    def chronological(self) -> list[int]:
        if self.filled < len(self.ring):
            return self.ring[: self.filled]
        return self.ring[self.pos :] + self.ring[: self.pos]


def _coerce_price(price: object) -> float:
    """Slow path of the price check for non-float inputs (ints, NumPy scalars, Decimal)."""
    if isinstance(price, (bool, np.bool_)) or not isinstance(price, (numbers.Real, Decimal)):
        raise InvalidInput(f"price must be a number (got {price!r})")
    return float(price)


def _log_return(price: float, previous: float) -> float:
    ratio = price / previous
    if LOG_RATIO_LOW < ratio < LOG_RATIO_HIGH:
        return math.log(ratio)
    return math.log(price) - math.log(previous)


def _check_method(method: object) -> Method:
    if method not in METHODS:
        raise InvalidInput(f"method must be one of {', '.join(METHODS)} (got {method!r})")
    return method  # type: ignore[return-value]  # narrowed by the membership test


def check_detector_config(threshold: object, window_size: object, method: object) -> tuple[float, int, Method]:
    """Validate detector settings: threshold > 0, window_size >= 2, a known method.

    Raises
    ------
    InvalidInput
        Naming the offending setting.
    """
    return (
        check_float(threshold, name="threshold", minimum=0.0, exclusive_minimum=True),
        check_int(window_size, name="window_size", minimum=2),
        _check_method(method),
    )


def _median_mad(window: FloatArray) -> tuple[float, float]:
    center = float(np.median(window))
    return center, MAD_TO_SIGMA * float(np.median(np.abs(window - center)))


class AnomalyDetector:
    """Per-symbol streaming anomaly detector (see the module docstring for the methods).

    Parameters
    ----------
    threshold : float, default 3.0
        Absolute score above which the latest point is anomalous; > 0.
    window_size : int, default 100
        Number of previous values each point is scored against; >= 2.
    method : {"log_return_zscore", "price_zscore", "mad"}
        Scoring method.

    Notes
    -----
    :meth:`update_price` does O(1) work with plain Python numbers (about a
    microsecond); :meth:`update_prices` validates a whole array with NumPy and
    reaches the same state bit for bit. Not thread-safe: use one detector per
    worker or guard it with a lock.
    """

    __slots__ = ("_bounds", "_log", "_method", "_states", "_threshold", "_window")

    def __init__(self, threshold: float = 3.0, window_size: int = 100, method: Method = "log_return_zscore") -> None:
        self._threshold, self._window, self._method = check_detector_config(threshold, window_size, method)
        self._log = self._method != "price_zscore"
        self._bounds = (0.0, math.inf) if self._log else PRICE_ZSCORE_BOUNDS
        self._states: dict[str, _SymbolState] = {}

    @property
    def threshold(self) -> float:
        """Score threshold."""
        return self._threshold

    @property
    def window_size(self) -> int:
        """Number of values in each window."""
        return self._window

    @property
    def method(self) -> Method:
        """Scoring method."""
        return self._method

    @property
    def warmup(self) -> int:
        """Number of leading prices without a score: :meth:`detect` needs ``warmup + 1`` prices."""
        return self._window + 1 if self._log else self._window

    def __repr__(self) -> str:
        return f"AnomalyDetector(threshold={self._threshold:g}, window_size={self._window}, method={self._method!r})"

    # --- updates ------------------------------------------------------------------

    def _state_for(self, symbol: str) -> _SymbolState:
        if not isinstance(symbol, str) or not symbol:
            raise InvalidInput(f"symbol must be a non-empty string (got {symbol!r})")
        state = self._states.get(symbol)
        if state is None:
            state = self._states[symbol] = _SymbolState(self._window)
        return state

    def _price_error(self, price: float) -> InvalidInput:
        low, high = self._bounds
        if self._log:
            return InvalidInput(f"price must be finite and > 0 (got {price})")
        return InvalidInput(f"price must be finite, > {low:g} and < {high:g} for method 'price_zscore' (got {price})")

    def update_price(self, symbol: str, price: float) -> None:
        """Append one price to ``symbol``'s series (O(1), exact integer sums).

        Raises
        ------
        InvalidInput
            If ``price`` is not a finite number > 0 (within (1e-12, 1e150) for
            ``price_zscore``) or ``symbol`` is not a non-empty string.
        """
        p = price if type(price) is float else _coerce_price(price)
        low, high = self._bounds
        if not low < p < high:  # also rejects NaN
            raise self._price_error(p)
        try:
            state = self._states[symbol]
        except (KeyError, TypeError):  # new or unhashable symbol: validated there
            state = self._state_for(symbol)
        previous = state.last_price
        state.last_price = p
        state.count += 1
        if self._log:
            if previous == 0.0:
                return
            ratio = p / previous  # _log_return inlined: this is the hot path
            x = math.log(ratio) if LOG_RATIO_LOW < ratio < LOG_RATIO_HIGH else math.log(p) - math.log(previous)
        else:
            x = p
        q = round(x * _SCALE)
        pending = state.pending_q
        state.pending_q = q
        state.pending_x = x
        if pending is None:
            return
        ring = state.ring
        i = state.pos
        evicted = ring[i]
        ring[i] = pending
        i += 1
        state.pos = 0 if i == self._window else i
        state.s1 += pending - evicted
        state.s2 += pending * pending - evicted * evicted
        if state.filled < self._window:
            state.filled += 1

    def update_prices(self, symbol: str, prices: npt.ArrayLike) -> None:
        """Append many prices at once; the resulting state equals one-by-one updates exactly.

        The whole array is validated with NumPy. The state after any sequence depends
        only on its last ``window_size + 2`` prices, so only that tail is folded into
        the exact integer sums: the cost is O(len(prices)) vectorised plus
        O(window_size), whatever the length.

        Raises
        ------
        InvalidInput
            If ``prices`` is empty or any price is invalid (nothing is applied then),
            or ``symbol`` is not a non-empty string.
        """
        arr = as_prices(prices)
        low, high = self._bounds
        if not self._log and not (arr.min() > low and arr.max() < high):
            bad = arr[(arr <= low) | (arr >= high)][0]
            raise self._price_error(float(bad))
        state = self._state_for(symbol)
        tail = arr[-(self._window + 2) :].tolist()
        previous = state.last_price
        if self._log:
            before = [previous] if previous != 0.0 and arr.size == len(tail) else []
            chain = before + tail
            xs = [_log_return(p, prev) for p, prev in zip(chain[1:], chain[:-1], strict=True)]
        else:
            xs = tail
        # Bounded by window_size + 2 values, whatever the input length.
        new_q = [round(x * _SCALE) for x in xs]
        series = state.chronological()
        if state.pending_q is not None:
            series.append(state.pending_q)
        series = (series + new_q)[-(self._window + 1) :]
        window = series[:-1]
        state.count += arr.size
        state.last_price = tail[-1]
        if xs:
            state.pending_x = xs[-1]
        state.pending_q = series[-1] if series else None
        state.ring = window + [0] * (self._window - len(window))
        state.filled = len(window)
        state.pos = len(window) % self._window
        state.s1 = sum(window)
        state.s2 = sum(map(operator.mul, window, window))

    # --- queries ------------------------------------------------------------------

    def detect(self, symbol: str) -> AnomalyResult | None:
        r"""Score the latest point of ``symbol`` against the window before it.

        The score is :math:`(x - \mu) / \max(\sigma, \mathrm{floor})` (z-score methods) or
        :math:`(x - \mathrm{median}) / \max(1.4826\,\mathrm{MAD}, 10^{-12})` (``mad``), clamped
        to ±1e15, with the statistics of the ``window_size`` values before ``x``.

        Returns
        -------
        AnomalyResult or None
            ``None`` for an unknown symbol or during the warm-up: while fewer than
            ``warmup + 1`` prices (``window_size + 2`` for the log-return methods,
            ``window_size + 1`` for ``price_zscore``) have been seen.
        """
        state = self._states.get(symbol)
        if state is None or state.filled < self._window or state.pending_q is None:
            return None
        if self._method == "mad":
            center, spread = _median_mad(np.array(state.chronological(), dtype=np.float64) / _SCALE)
            value = state.pending_x
            deviation = value - center
            floor = SCORE_FLOOR
        else:
            w = self._window
            s1 = state.s1
            scaled = w * _SCALE_INT
            center = s1 / scaled  # int / int: correctly rounded
            spread = math.sqrt((w * state.s2 - s1 * s1) / (scaled * scaled))
            deviation = (w * state.pending_q - s1) / scaled
            value = state.pending_x
            floor = SCORE_FLOOR if self._log else SCORE_FLOOR * abs(center)
        score = deviation / max(spread, floor)
        score = max(-MAX_SCORE, min(MAX_SCORE, score))
        return AnomalyResult(
            symbol=symbol,
            is_anomaly=abs(score) > self._threshold,
            score=score,
            value=value,
            price=state.last_price,
            mean=center,
            std=spread,
            window=self._window,
            threshold=self._threshold,
            method=self._method,
        )

    def state(self, symbol: str) -> DetectorState | None:
        """Return a snapshot of ``symbol``'s state, or None if it is unknown."""
        state = self._states.get(symbol)
        if state is None:
            return None
        return DetectorState(
            count=state.count,
            last_price=state.last_price,
            window=tuple(q / _SCALE_INT for q in state.chronological()),
            latest=None if state.pending_q is None else state.pending_x,
            sum=state.s1,
            sum_squares=state.s2,
        )

    def reset(self, symbol: str) -> bool:
        """Forget ``symbol``; return whether it was known."""
        return self._states.pop(symbol, None) is not None

    def symbols(self) -> list[str]:
        """Return the known symbols, sorted."""
        return sorted(self._states)
