"""The run's outputs: a table on stdout, ``bench/results.json`` and the table in ``docs/PERFORMANCE.md``."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.core import Figure

BEGIN = "<!-- bench:results:begin -->"
END = "<!-- bench:results:end -->"


def machine() -> dict[str, Any]:
    """CPU model, cores, Python, numpy and TA-Lib versions, date."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    for module in ("numpy", "talib", "sqlite3", "fastapi", "uvicorn", "orjson"):
        try:
            mod = __import__(module)
            info[module] = getattr(mod, "sqlite_version" if module == "sqlite3" else "__version__", "?")
        except ImportError:
            info[module] = "absent"
    return info


def _num(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    ax = abs(x)
    if ax >= 100_000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:,.0f}" if ax >= 1000 else f"{x:.0f}"
    if ax >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def rows(figures: Sequence[Figure]) -> list[list[str]]:
    out = []
    for f in figures:
        verdict = {True: "PASS", False: "FAIL", None: "-"}[f.passed]
        anchor = "-" if f.anchor_name is None else f"{f.anchor_name}: {_num(f.anchor_value)} {f.anchor_unit or f.unit}"
        ratio = "-" if f.ratio is None else f"{f.ratio:.3g}x"
        out.append([f.name, f"{_num(f.value)} {f.unit}".strip(), anchor, ratio,
                    "-" if f.target is None else str(f.target), verdict])
    return out


HEADER = ["figure", "value", "anchor (same run)", "ratio", "target", "pass"]


def text_table(figures: Sequence[Figure]) -> str:
    table = [HEADER, *rows(figures)]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  * {f.name}: {f.note}" for f in figures if f.note]
    return "\n".join(lines + (["", *notes] if notes else []))


def markdown_table(figures: Sequence[Figure], info: dict[str, Any]) -> str:
    esc = [[c.replace("|", "\\|") for c in r] for r in rows(figures)]
    lines = [
        f"Measured {info['date']} on {info['cpu']} ({info['cores']} cores), Python {info['python']}, "
        f"numpy {info['numpy']}, TA-Lib {info['talib']}, SQLite {info['sqlite3']}, "
        f"FastAPI {info['fastapi']}, uvicorn {info['uvicorn']}.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
        *("| " + " | ".join(r) + " |" for r in esc),
    ]
    notes = [f"- **{f.name}**: {f.note}" for f in figures if f.note]
    return "\n".join(lines + (["", *notes] if notes else []))


def write_json(path: Path, figures: Sequence[Figure], info: dict[str, Any], *, merge: bool = False) -> None:
    """Write the figures; with ``merge`` (a partial run, ``--only``) keep the file's other figures, replacing
    those of the same name, and record which families this run measured and when."""
    rows = [f.to_dict() for f in figures]
    if merge and path.exists():
        old = json.loads(path.read_text())
        names = {row["name"] for row in rows}
        rows = [row for row in old.get("figures", []) if row["name"] not in names] + rows
        info = {**old.get("machine", {}), "partial_runs": [*old.get("machine", {}).get("partial_runs", []), info]}
    payload = {"machine": info, "figures": rows}
    path.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")


def update_doc(doc: Path, figures: Sequence[Figure], info: dict[str, Any]) -> None:
    """Replace the generated block of ``docs/PERFORMANCE.md`` (created if missing)."""
    block = f"{BEGIN}\n{markdown_table(figures, info)}\n{END}"
    text = doc.read_text() if doc.exists() else f"# Performance\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text = text.rstrip() + f"\n\n## Latest results\n\n{BEGIN}\n{END}\n"
    text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    doc.write_text(text)
