"""Guards: validate caller input once and convert it to what the kernels expect.

Every public kernel in :mod:`genesis.analytics` passes its input through one of
these guards before any arithmetic, so a bad value is reported once, with a
message naming the parameter, instead of surfacing later as a NaN or a TA-Lib
error code.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from genesis.analytics.types import FloatArray
from genesis.errors import InvalidInput

__all__ = [
    "as_positions",
    "as_prices",
    "canonical_name",
    "check_choice",
    "check_float",
    "check_int",
    "check_known",
    "check_period",
]

# Numeric dtype kinds accepted as-is: signed/unsigned integers and floats. Booleans,
# complex numbers, strings, bytes, dates and structured records are refused.
_NUMERIC_KINDS = frozenset("iuf")


def _is_real(value: object) -> bool:
    """Tell whether ``value`` is a real number (Decimal included, bool excluded)."""
    return isinstance(value, (numbers.Real, Decimal)) and not isinstance(value, (bool, np.bool_))


def _as_float_vector(values: npt.ArrayLike, name: str, *, check_finite: bool = True) -> FloatArray:
    """Convert ``values`` to a contiguous 1-D float64 array (the input itself when it is one) or raise InvalidInput."""
    if isinstance(values, (str, bytes)):
        raise InvalidInput(f"{name} must be a 1-D sequence of numbers, got a string")
    try:
        raw = np.asarray(values)
    except (TypeError, ValueError) as exc:  # ragged nested lists, odd objects
        raise InvalidInput(f"{name} must be a 1-D sequence of numbers ({exc})") from exc
    if raw.ndim != 1:
        what = "a scalar" if raw.ndim == 0 else f"a {raw.ndim}-D array of shape {raw.shape}"
        raise InvalidInput(f"{name} must be 1-D, got {what}")
    if raw.size == 0:
        raise InvalidInput(f"{name} must not be empty")
    kind = raw.dtype.kind
    if kind == "O":
        # Object arrays come from Decimal prices (database drivers) or mixed lists;
        # accept real numbers only, never numeric-looking strings.
        # This per-element check runs only on that slow path, never for numeric arrays.
        if not all(_is_real(v) for v in raw):
            raise InvalidInput(f"{name} must contain only numbers")
    elif kind not in _NUMERIC_KINDS:
        raise InvalidInput(f"{name} must contain only numbers (got dtype {raw.dtype})")
    try:
        arr = np.ascontiguousarray(raw, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(f"{name} must contain only numbers ({exc})") from exc
    if check_finite:
        _require_finite(arr, name)
    return arr


def _require_finite(arr: FloatArray, name: str) -> None:
    finite = np.isfinite(arr)
    if not finite.all():
        i = int(np.argmin(finite))
        raise InvalidInput(f"{name} must be finite ({name}[{i}] is {arr[i]})")


def as_prices(prices: npt.ArrayLike, *, name: str = "prices") -> FloatArray:
    """Validate a price series and return it as a contiguous float64 array.

    Parameters
    ----------
    prices : array_like
        1-D sequence of prices, oldest first.
    name : str, optional
        Parameter name used in error messages.

    Returns
    -------
    numpy.ndarray
        Contiguous float64 array; the input itself when it already is one
        (kernels never write to it).

    Raises
    ------
    InvalidInput
        If ``prices`` is not 1-D, is empty, holds non-numbers (strings, booleans,
        None), or any value is NaN, infinite, zero or negative.
    """
    arr = _as_float_vector(prices, name, check_finite=False)
    # One guard in two reductions, without boolean temporaries: NaN propagates through
    # min() and fails ``> 0`` like zero, negatives and -inf do; +inf fails ``max() < inf``.
    # Only a failing series pays for the passes that name the first bad index.
    if not (arr.min() > 0.0 and arr.max() < np.inf):
        _require_finite(arr, name)
        positive = arr > 0.0
        i = int(np.argmin(positive))
        raise InvalidInput(f"{name} must be > 0 ({name}[{i}] is {arr[i]})")
    return arr


def as_positions(positions: npt.ArrayLike, n: int, *, name: str = "positions") -> FloatArray:
    """Validate target positions for a backtest over ``n`` bars.

    Parameters
    ----------
    positions : array_like
        1-D sequence of target positions in [-1, 1], one per bar.
    n : int
        Number of bars (length of the price series).
    name : str, optional
        Parameter name used in error messages.

    Returns
    -------
    numpy.ndarray
        Contiguous float64 array of length ``n``.

    Raises
    ------
    InvalidInput
        If ``positions`` is not a finite numeric 1-D sequence of length ``n`` with
        every value in [-1, 1].
    """
    arr = _as_float_vector(positions, name)
    if arr.size != n:
        raise InvalidInput(f"{name} must have one value per price (got {arr.size} {name}, {n} prices)")
    inside = np.abs(arr) <= 1.0
    if not inside.all():
        i = int(np.argmin(inside))
        raise InvalidInput(f"{name} must be within [-1, 1] ({name}[{i}] is {arr[i]})")
    return arr


def check_int(value: object, *, name: str, minimum: int, maximum: int | None = None) -> int:
    """Return ``value`` as an int after checking its type and range.

    Parameters
    ----------
    value : object
        Candidate value; Python and NumPy integers are accepted, booleans and
        floats (even integral ones such as ``14.0``) are not.
    name : str
        Parameter name used in error messages.
    minimum, maximum : int
        Inclusive bounds (``maximum`` is optional).

    Raises
    ------
    InvalidInput
        If ``value`` is not an integer or lies outside the bounds.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InvalidInput(f"{name} must be an integer (got {value!r})")
    ivalue = int(value)
    if ivalue < minimum:
        raise InvalidInput(f"{name} must be >= {minimum} (got {name}={ivalue})")
    if maximum is not None and ivalue > maximum:
        raise InvalidInput(f"{name} must be <= {maximum} (got {name}={ivalue})")
    return ivalue


def check_period(period: object, n_prices: int, *, name: str = "period", minimum: int = 1) -> int:
    """Validate a look-back period against the length of the price series.

    Parameters
    ----------
    period : object
        Candidate period; must be an integer with ``minimum <= period <= n_prices``.
    n_prices : int
        Number of prices the period applies to.
    name : str, optional
        Parameter name used in error messages.
    minimum : int, optional
        Smallest accepted period (1 unless the engine needs more).

    Raises
    ------
    InvalidInput
        With a message such as ``"period must be <= the number of prices
        (got period=50, 20 prices)"``.
    """
    ivalue = check_int(period, name=name, minimum=minimum)
    if ivalue > n_prices:
        raise InvalidInput(f"{name} must be <= the number of prices (got {name}={ivalue}, {n_prices} prices)")
    return ivalue


def check_float(
    value: object,
    *,
    name: str,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    exclusive_maximum: bool = False,
) -> float:
    """Return ``value`` as a finite float after checking its type and range.

    Parameters
    ----------
    value : object
        Candidate value; real numbers (int, float, NumPy scalars) except booleans.
    name : str
        Parameter name used in error messages.
    minimum, maximum : float, optional
        Bounds, inclusive unless the matching ``exclusive_*`` flag is set.

    Raises
    ------
    InvalidInput
        If ``value`` is not a real number, is NaN or infinite, or lies outside
        the bounds.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InvalidInput(f"{name} must be a number (got {value!r})")
    fvalue = float(value)
    if not math.isfinite(fvalue):
        raise InvalidInput(f"{name} must be finite (got {name}={fvalue})")
    if minimum is not None:
        if exclusive_minimum and fvalue <= minimum:
            raise InvalidInput(f"{name} must be > {minimum:g} (got {name}={fvalue:g})")
        if fvalue < minimum:
            raise InvalidInput(f"{name} must be >= {minimum:g} (got {name}={fvalue:g})")
    if maximum is not None:
        if exclusive_maximum and fvalue >= maximum:
            raise InvalidInput(f"{name} must be < {maximum:g} (got {name}={fvalue:g})")
        if fvalue > maximum:
            raise InvalidInput(f"{name} must be <= {maximum:g} (got {name}={fvalue:g})")
    return fvalue


def canonical_name(name: str) -> str:
    """Return ``name`` as registries key it: without surrounding blanks, lowercase."""
    return name.strip().lower()


def check_choice(value: object, supported: Sequence[str], *, what: str) -> str:
    """Return the canonical form of ``value`` (see :func:`canonical_name`) if it names one of ``supported``.

    Parameters
    ----------
    value : object
        Candidate name; any case and surrounding blanks are accepted.
    supported : sequence of str
        Canonical names, in the order the error message lists them.
    what : str
        What the name names (``"indicator"``), used in the error message.

    Raises
    ------
    InvalidInput
        With a message such as ``"unknown indicator 'kama'; supported: bbands, ema, ..."``
        and ``details={"supported": [...]}``.
    """
    key = canonical_name(value) if isinstance(value, str) else None
    if key is None or key not in supported:
        raise _unknown(what, [value], supported)
    return key


def check_known(names: Iterable[object], supported: Sequence[str], *, what: str) -> None:
    """Refuse every one of ``names`` that is not exactly (case included) one of ``supported``.

    Raises
    ------
    InvalidInput
        The error of :func:`check_choice`, naming every unknown name.
    """
    unknown = [name for name in names if name not in supported]
    if unknown:
        raise _unknown(what, unknown, supported)


def _unknown(what: str, names: Sequence[object], supported: Sequence[str]) -> InvalidInput:
    # One wording and one details key for every unknown name (indicator, strategy, parameter), so that a
    # client reads the accepted values from ``details["supported"]`` whatever it misspelled.
    plural = "s" if len(names) > 1 else ""
    listed = ", ".join(supported) or "none"
    return InvalidInput(f"unknown {what}{plural} {', '.join(map(repr, names))}; supported: {listed}",
                        details={"supported": list(supported)})
