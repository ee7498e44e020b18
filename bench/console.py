"""Figures 6a-6c, the console in Debian's chromium against a real ``genesis serve``.

6a: first meaningful paint of the market page for 10 years of daily bars (about 2,600 candles): from the hash
    navigation that opens the page to the frame painted after the candles were set (``market:painted``).
    Anchor: painting an empty canvas of the same size in the same page (two animation frames: the floor of any
    paint).
6b: the same for 1,000,000 one-second ticks, which the server reduces to 5,000 points by LTTB (``max_points``).
6c: interaction with that chart: the 95th percentile of the frame interval while it is zoomed with the mouse
    wheel and dragged. Anchor: the same gestures on the 10-year daily chart.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.core import Figure, Scale, Target, skipped
from bench.servers import ADMIN_PASSWORD, Server, admin_token, http, start_genesis

CHROMIUM = os.environ.get("GENESIS_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
DAY = 86_400
T0 = 1_262_304_000  # 2010-01-01T00:00:00Z


def _stamp(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def daily_bars(years: int) -> list[dict[str, Any]]:
    """Weekday bars over ``years`` calendar years, a deterministic random walk."""
    import numpy as np

    days = [d for d in range(years * 365) if (4 + d) % 7 < 5]  # weekdays: 2010-01-01 was a Friday (4, Monday 0)
    close = 100 * np.exp(np.cumsum(np.random.default_rng(6).normal(0.0003, 0.015, len(days))))
    return [{"timestamp": _stamp(T0 + d * DAY), "open": float(c * 0.998), "high": float(c * 1.01),
             "low": float(c * 0.99), "close": float(c), "volume": 1e6} for d, c in zip(days, close, strict=True)]


def ingest(server: Server, token: str, symbol: str, points: list[dict[str, Any]], chunk: int = 100_000) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for start in range(0, len(points), chunk):
        body = json.dumps({"points": points[start:start + chunk]}).encode()
        status, answer = http("POST", f"{server.base}/prices/{symbol}", body=body, headers=headers, timeout=300)
        if status != 200:
            raise RuntimeError(f"ingest failed ({status}): {answer[:300]!r}")


def ticks(n: int) -> list[dict[str, Any]]:
    import numpy as np

    price = 100 * np.exp(np.cumsum(np.random.default_rng(7).normal(0, 0.0005, n)))
    return [{"timestamp": _stamp(T0 + i), "price": float(p)} for i, p in enumerate(price)]


OPEN_MARKET = """async (symbol) => {
  const before = performance.getEntriesByName('market:painted').length;
  const started = performance.now();
  window.location.hash = '#/market?symbol=' + encodeURIComponent(symbol) + '&r=' + Math.random();
  while (performance.getEntriesByName('market:painted').length === before) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const painted = performance.getEntriesByName('market:painted').at(-1).startTime;
  // Then the anomalies (and any overlays): wait for them, so no request is left running into the next figure.
  const chart = document.querySelector('#market-chart');
  while (chart.dataset.state !== 'ready') {
    if (chart.dataset.state === 'error') throw new Error(document.querySelector('#market-status').textContent);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return [painted - started, performance.now() - started];
}"""
EMPTY_CANVAS = """async () => {
  const host = document.querySelector('#market-chart');
  const started = performance.now();
  const canvas = document.createElement('canvas');
  canvas.width = host.clientWidth; canvas.height = host.clientHeight;
  const context = canvas.getContext('2d');
  context.fillStyle = '#ffffff'; context.fillRect(0, 0, canvas.width, canvas.height);
  document.body.append(canvas);
  await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
  const elapsed = performance.now() - started;
  canvas.remove();
  return elapsed;
}"""
RECORD_FRAMES = """() => {
  window.__frames = [];
  window.__recording = true;
  const tick = (t) => { window.__frames.push(t); if (window.__recording) requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
}"""
STOP_FRAMES = """() => {
  window.__recording = false;
  const f = window.__frames;
  return f.slice(1).map((t, i) => t - f[i]);
}"""


def gestures(page: Any) -> list[float]:
    """Frame intervals (ms) while the market chart is zoomed by wheel and dragged."""
    box = page.locator("#market-chart").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.evaluate(RECORD_FRAMES)
    for step in range(12):
        page.mouse.wheel(0, -240 if step < 6 else 240)
        page.wait_for_timeout(30)
    page.mouse.down()
    for step in range(40):
        page.mouse.move(x + (step % 20 - 10) * 25, y, steps=2)
    page.mouse.up()
    intervals: list[float] = page.evaluate(STOP_FRAMES)
    return intervals


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def measure(server: Server, symbols: dict[str, str], repeat: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    out: dict[str, Any] = {"daily": [], "ticks": [], "anchor": [], "frames_daily": [], "frames_ticks": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(300_000)  # a million-point anomaly scan takes seconds
            page.goto(f"{server.base}/console")
            page.wait_for_function("() => document.body.dataset.console === 'ready'")
            page.fill("#login-form input[name=username]", "admin")
            page.fill("#login-form input[name=password]", ADMIN_PASSWORD)
            page.click("#login-form button[type=submit]")
            page.wait_for_function("() => document.body.dataset.session === 'active'")
            page.evaluate(OPEN_MARKET, symbols["daily"])  # warm-up: the chart library, the statement caches
            for _ in range(repeat):
                out["daily"].append(page.evaluate(OPEN_MARKET, symbols["daily"]))
                out["anchor"].append(page.evaluate(EMPTY_CANVAS))
                out["ticks"].append(page.evaluate(OPEN_MARKET, symbols["ticks"]))
            out["status_ticks"] = page.inner_text("#market-status")
            out["frames_ticks"] = gestures(page)
            page.evaluate(OPEN_MARKET, symbols["daily"])
            out["status_daily"] = page.inner_text("#market-status")
            out["frames_daily"] = gestures(page)
        finally:
            browser.close()
    return out


def run(scale: Scale) -> list[Figure]:
    if not Path(CHROMIUM).is_file():
        return [skipped("console", f"no chromium at {CHROMIUM}")]
    try:
        import playwright  # noqa: F401
    except ImportError:
        return [skipped("console", "playwright is not installed")]
    years, n_ticks, repeat = scale.pick((10, 1_000_000, 5), (10, 20_000, 1))
    with tempfile.TemporaryDirectory(prefix="genesis-bench-console-") as name, \
            start_genesis(Path(name) / "genesis") as server:
        token = admin_token(server)
        ingest(server, token, "DAILY10Y", daily_bars(years))
        ingest(server, token, "TICKS", ticks(n_ticks))
        m = measure(server, {"daily": "DAILY10Y", "ticks": "TICKS"}, repeat)
    anchor = statistics.median(m["anchor"])
    tick_label = f"{n_ticks:,} ticks"

    def median(key: str, k: int) -> float:
        return statistics.median(pair[k] for pair in m[key])

    return [
        Figure(f"console: market page painted, {years} years of daily bars", median("daily", 0), "ms",
               "painting an empty canvas", anchor, "ms", Target("value", "<", 1000, "ms"),
               note=f"median of {repeat}; anomalies marked after {median('daily', 1):.0f} ms; {m['status_daily']}"),
        Figure(f"console: market page painted, {tick_label} (LTTB to 5,000)", median("ticks", 0), "ms",
               "painting an empty canvas", anchor, "ms",
               note=f"median of {repeat}; anomalies marked after {median('ticks', 1):.0f} ms; {m['status_ticks']}"),
        Figure(f"console: p95 frame interval zooming/dragging {tick_label}", p95(m["frames_ticks"]), "ms",
               f"same gestures, {years} years of daily bars", p95(m["frames_daily"]), "ms",
               Target("value", "<=", 50, "ms"), note=f"{len(m['frames_ticks'])} frames"),
    ]
