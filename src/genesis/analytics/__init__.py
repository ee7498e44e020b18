"""Analytics core: indicators, strategies, backtests, metrics and anomaly detection.

Pure computation on NumPy arrays (TA-Lib as the indicator engine); no I/O, no web
framework, no database. Bad input raises :class:`genesis.errors.InvalidInput` with a
message naming the parameter. See ``docs/analytics.md``.
"""

from __future__ import annotations

from genesis.analytics.anomaly import METHODS, AnomalyDetector, AnomalyResult, DetectorState, Method
from genesis.analytics.anomaly_scan import ScanResult, scan
from genesis.analytics.backtest import BacktestResult, run_backtest, strategy_returns
from genesis.analytics.encoding import nan_to_none
from genesis.analytics.indicators import (
    BollingerBands,
    Macd,
    bollinger_bands,
    ema,
    macd,
    roc,
    rolling_std,
    rsi,
    sma,
    wma,
)
from genesis.analytics.params import ParamSpec
from genesis.analytics.registry import (
    EMA,
    INDICATORS,
    ROC,
    RSI,
    SIGNAL_STRATEGIES,
    SMA,
    STRATEGY_CALCULATORS,
    TABLE,
    WMA,
    IndicatorCalculator,
    IndicatorSpec,
    Registry,
    SignalStrategySpec,
    StdDev,
    calculator_for,
    indicator_spec,
    signal_strategy_for,
)
from genesis.analytics.strategies import RsiStrategy, SmaCrossover
from genesis.analytics.types import Calculator, FloatArray, SignalStrategy

__all__ = [
    "EMA",
    "INDICATORS",
    "METHODS",
    "ROC",
    "RSI",
    "SIGNAL_STRATEGIES",
    "SMA",
    "STRATEGY_CALCULATORS",
    "TABLE",
    "WMA",
    "AnomalyDetector",
    "AnomalyResult",
    "BacktestResult",
    "BollingerBands",
    "Calculator",
    "DetectorState",
    "FloatArray",
    "IndicatorCalculator",
    "IndicatorSpec",
    "Macd",
    "Method",
    "ParamSpec",
    "Registry",
    "RsiStrategy",
    "ScanResult",
    "SignalStrategy",
    "SignalStrategySpec",
    "SmaCrossover",
    "StdDev",
    "bollinger_bands",
    "calculator_for",
    "ema",
    "indicator_spec",
    "macd",
    "nan_to_none",
    "roc",
    "rolling_std",
    "rsi",
    "run_backtest",
    "scan",
    "signal_strategy_for",
    "sma",
    "strategy_returns",
    "wma",
]
