"""Type aliases and small Protocols shared by the analytics modules."""

from __future__ import annotations

from typing import Protocol, TypeAlias

import numpy as np
import numpy.typing as npt

FloatArray: TypeAlias = npt.NDArray[np.float64]
"""A 1-D float64 array (prices, indicator values, positions, returns)."""

BoolArray: TypeAlias = npt.NDArray[np.bool_]
"""A 1-D boolean array (anomaly flags)."""

ParamValue: TypeAlias = int | float
"""The value of one indicator or strategy parameter."""


class Calculator(Protocol):
    """Something that reduces a price series to one number (the last indicator value)."""

    @property
    def warmup(self) -> int:
        """Number of leading prices that produce no value."""
        ...

    def calculate(self, prices: npt.ArrayLike) -> float:
        """Return the latest value for ``prices``."""
        ...


class SignalStrategy(Protocol):
    """Something that turns a price series into target positions, one per bar."""

    @property
    def warmup(self) -> int:
        """Number of leading bars whose position is 0 because no signal exists yet."""
        ...

    def positions(self, prices: npt.ArrayLike) -> FloatArray:
        """Return the target position decided at each bar's close."""
        ...
