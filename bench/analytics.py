"""Figure 3a/b, analytics: indicators against TA-Lib, and the streaming anomaly detector.

Each Genesis indicator over the same prices is timed interleaved with the bare
TA-Lib call it wraps (best of N), and its output must equal TA-Lib's within 1e-9.
The detector's bulk update is anchored on one NumPy pass over the same prices
(``np.log(p[1:] / p[:-1])``), its per-price update on a bare Python loop that
computes one ``math.log`` per price.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import talib

from bench.core import Figure, Scale, Target, interleaved
from genesis.analytics import indicators
from genesis.analytics.anomaly import AnomalyDetector

TOLERANCE = 1e-9


def random_walk(n: int, seed: int = 7) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Positive prices: a geometric random walk around 100."""
    rng = np.random.default_rng(seed)
    return np.ascontiguousarray(100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.001, n))))


CASES: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "SMA(20)": (lambda p: indicators.sma(p, 20), lambda p: talib.SMA(p, timeperiod=20)),
    "EMA(20)": (lambda p: indicators.ema(p, 20), lambda p: talib.EMA(p, timeperiod=20)),
    "WMA(20)": (lambda p: indicators.wma(p, 20), lambda p: talib.WMA(p, timeperiod=20)),
    "RSI(14)": (lambda p: indicators.rsi(p, 14), lambda p: talib.RSI(p, timeperiod=14)),
    "MACD(12,26,9)": (lambda p: indicators.macd(p), lambda p: talib.MACD(p, 12, 26, 9)),
    "BBANDS(20,2)": (lambda p: indicators.bollinger_bands(p, 20, 2.0),
                     lambda p: talib.BBANDS(p, timeperiod=20, nbdevup=2.0, nbdevdn=2.0)),
    "STDDEV(20)": (lambda p: indicators.rolling_std(p, 20), lambda p: talib.STDDEV(p, timeperiod=20, nbdev=1.0)),
    "ROC(10)": (lambda p: indicators.roc(p, 10), lambda p: talib.ROC(p, timeperiod=10)),
}


def _outputs(result: Any) -> list[np.ndarray[Any, Any]]:
    return list(result) if isinstance(result, tuple) else [result]


def max_difference(ours: Any, theirs: Any, name: str) -> float:
    """Largest absolute difference (NaN positions must agree); BBANDS orders its outputs differently."""
    a, b = _outputs(ours), _outputs(theirs)
    if name.startswith("BBANDS"):
        b = [b[1], b[0], b[2]]  # TA-Lib: upper, middle, lower; Genesis: middle, upper, lower
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        if not np.array_equal(np.isnan(x), np.isnan(y)):
            return math.inf
        mask = ~np.isnan(x)
        if mask.any():
            worst = max(worst, float(np.max(np.abs(x[mask] - y[mask]))))
    return worst


def indicator_figures(prices: np.ndarray[Any, np.dtype[np.float64]], repeat: int) -> list[Figure]:
    out = []
    for name, (ours, theirs) in CASES.items():
        diff = max_difference(ours(prices), theirs(prices), name)
        best = interleaved({"ours": functools.partial(ours, prices), "talib": functools.partial(theirs, prices)},
                           repeat=repeat)
        note = "" if diff <= TOLERANCE else f"RESULTS DIFFER from TA-Lib by {diff:.3g} (> {TOLERANCE:g})"
        fig = Figure(f"{name} over {prices.size:,} prices", best["ours"] * 1e3, "ms", "TA-Lib", best["talib"] * 1e3,
                     "ms", Target("ratio", "<=", 1.2), note=note, extra={"max_abs_difference": diff})
        if diff > TOLERANCE:
            fig.target = Target("ratio", "<=", -1.0)  # wrong results never pass
        out.append(fig)
    return out


def anomaly_figures(prices: np.ndarray[Any, np.dtype[np.float64]], n_incremental: int, repeat: int) -> list[Figure]:
    def bulk() -> None:
        AnomalyDetector(window_size=100).update_prices("BTC/USD", prices)

    def numpy_pass() -> None:
        np.log(prices[1:] / prices[:-1])

    best = interleaved({"bulk": bulk, "numpy": numpy_pass}, repeat=repeat)
    values = prices[:n_incremental].tolist()

    def incremental() -> None:
        det = AnomalyDetector(window_size=100)
        update = det.update_price
        for p in values:
            update("BTC/USD", p)

    def python_loop() -> None:
        log = math.log
        prev = values[0]
        for p in values:
            log(p / prev)
            prev = p

    per = interleaved({"incremental": incremental, "loop": python_loop}, repeat=repeat)
    n = prices.size
    return [
        Figure(f"anomaly bulk update ({n:,} prices)", n / best["bulk"], "prices/s",
               "NumPy log-return pass", n / best["numpy"], "prices/s", Target("value", ">=", 5_000_000, "prices/s")),
        Figure("anomaly incremental update", per["incremental"] / len(values) * 1e6, "us/price",
               "Python math.log loop", per["loop"] / len(values) * 1e6, "us/price",
               Target("value", "<=", 2.0, "us/price")),
    ]


def run(scale: Scale) -> list[Figure]:
    prices = random_walk(scale.pick(1_000_000, 2_000))
    began = time.perf_counter()
    figures = indicator_figures(prices, repeat=scale.pick(25, 2))
    figures += anomaly_figures(prices, scale.pick(200_000, 500), repeat=scale.pick(7, 1))
    figures[0].extra["seconds"] = time.perf_counter() - began
    return figures
