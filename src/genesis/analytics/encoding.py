"""Conversion of analytics output to JSON-ready Python values."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["nan_to_none"]


def nan_to_none(values: npt.ArrayLike) -> list[float | None]:
    """Return ``values`` as a list of floats with NaN (the warm-up) replaced by None.

    JSON has no NaN; indicator and scan outputs carry NaN over their warm-up, which
    an API should publish as ``null``. Vectorised: no Python loop per element.

    Parameters
    ----------
    values : array_like
        1-D numbers.

    Returns
    -------
    list of float or None
        Same length as ``values``.
    """
    arr = np.asarray(values, dtype=np.float64)
    out = arr.astype(object)
    out[np.isnan(arr)] = None
    result: list[float | None] = out.tolist()
    return result
