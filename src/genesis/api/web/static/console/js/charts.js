// TradingView Lightweight Charts, loaded once as an ES module from this server (its URL is on <body>).
// attributionLogo is off: the logo injects a <style> that the page's CSP refuses; the footer carries the notice
// and the link to TradingView instead, as the licence asks.

let library = null;

export function charts() {
  library ||= import(document.body.dataset.charts);
  return library;
}

export const PALETTE = ["#f59e0b", "#8b5cf6", "#10b981", "#ef4444", "#0ea5e9", "#d946ef", "#84cc16", "#64748b"];

export async function newChart(container, options = {}) {
  const L = await charts();
  container.replaceChildren();
  const chart = L.createChart(container, {
    autoSize: true,
    layout: { attributionLogo: false, background: { color: "#ffffff" }, textColor: "#1c2430", fontSize: 12 },
    grid: { vertLines: { color: "#f0f2f5" }, horzLines: { color: "#f0f2f5" } },
    rightPriceScale: { borderColor: "#dde3ea" },
    // A low minimum spacing lets fitContent show every point of a long series at once (default 0.5 px per bar).
    timeScale: { borderColor: "#dde3ea", timeVisible: true, secondsVisible: false, minBarSpacing: 0.01 },
    ...options,
  });
  return { L, chart };
}

// Resolves after the browser has painted the frame that follows a setData.
export function painted() {
  return new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
}

// Index of the last element of the sorted array `xs` that is <= x (or -1).
export function floorIndex(xs, x) {
  let lo = 0;
  let hi = xs.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] <= x) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
  }
  return found;
}

// Index of the first element of the sorted array `xs` that is >= x (or xs.length).
export function lowerBound(xs, x) {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] < x) lo = mid + 1; else hi = mid;
  }
  return lo;
}
