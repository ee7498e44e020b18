"""What a benchmark produces (:class:`Figure`), how big it runs (:class:`Scale`) and timing helpers."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Op = Literal[">=", "<=", "<"]
On = Literal["value", "ratio"]


@dataclass(frozen=True, slots=True)
class Scale:
    """``full`` for ``make bench``; ``tiny`` keeps every benchmark working in the test suite."""

    name: Literal["full", "tiny"]

    @property
    def tiny(self) -> bool:
        return self.name == "tiny"

    def pick(self, full: Any, tiny: Any) -> Any:
        return tiny if self.tiny else full


FULL = Scale("full")
TINY = Scale("tiny")


@dataclass(frozen=True, slots=True)
class Target:
    """A bound on the figure's value or on its ratio to the anchor, e.g. ``Target("ratio", ">=", 70)``."""

    on: On
    op: Op
    bound: float
    unit: str = ""

    def check(self, value: float, ratio: float | None) -> bool | None:
        x = value if self.on == "value" else ratio
        if x is None or x != x:  # no anchor, or NaN
            return None
        if self.op == ">=":
            return x >= self.bound
        if self.op == "<=":
            return x <= self.bound
        return x < self.bound

    def __str__(self) -> str:
        what = "x anchor" if self.on == "ratio" else self.unit
        return f"{self.op} {self.bound:g}{' ' + what if what else ''}"


@dataclass(slots=True)
class Figure:
    """One measured figure and its anchor from the same run."""

    name: str
    value: float
    unit: str
    anchor_name: str | None = None
    anchor_value: float | None = None
    anchor_unit: str | None = None
    target: Target | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        value, anchor = _finite(self.value), _finite(self.anchor_value)
        if value is None or not anchor:
            return None
        return value / anchor

    @property
    def passed(self) -> bool | None:
        return None if self.target is None else self.target.check(self.value, self.ratio)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": _finite(self.value),
            "unit": self.unit,
            "anchor": None if self.anchor_name is None else {
                "name": self.anchor_name, "value": _finite(self.anchor_value), "unit": self.anchor_unit or self.unit,
            },
            "ratio": self.ratio,
            "target": None if self.target is None else str(self.target),
            "pass": self.passed,
            "note": self.note,
            **({"extra": self.extra} if self.extra else {}),
        }


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def skipped(name: str, reason: str) -> Figure:
    """A figure that could not be measured in this run (NaN value, the reason as its note)."""
    return Figure(name, float("nan"), "", note=f"skipped: {reason}")


def best_time(func: Callable[[], object], *, repeat: int, number: int = 1) -> float:
    """The smallest wall time of ``repeat`` runs of ``number`` calls, per call (seconds)."""
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        for _ in range(number):
            func()
        best = min(best, (time.perf_counter() - began) / number)
    return best


def interleaved(funcs: dict[str, Callable[[], object]], *, repeat: int, number: int = 1) -> dict[str, float]:
    """Best per-call time of each function, alternating them so drift hits all alike."""
    best = dict.fromkeys(funcs, float("inf"))
    for _ in range(repeat):
        for name, func in funcs.items():
            best[name] = min(best[name], best_time(func, repeat=1, number=number))
    return best


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """``VmRSS`` / ``VmHWM`` (peak RSS) of a process, in bytes (empty when it is gone)."""
    out: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(rest.split()[0]) * 1024
    return out


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


KB = 1024
MB = 1024 * 1024
