// Market: a symbol's prices as candles (bars) or a line (ticks), indicator overlays computed by the API over the
// shown closes, and the API's anomalies marked on the chart with their scores.

import { $, clear, dateToRfc3339, fmtNumber, fmtTime, h, paramInputs, readParams, toSeconds } from "./dom.js";
import { PALETTE, floorIndex, lowerBound, newChart, painted } from "./charts.js";

// Points asked for per chart: the server downsamples longer ranges (OHLC buckets for bars, LTTB for ticks).
export const MAX_POINTS = 5000;
const MAX_MARKERS = 300;
const MAX_ROWS = 1000;

export function symbolPath(symbol) {
  return symbol.split("/").map(encodeURIComponent).join("/");
}

export class MarketPage {
  constructor(session, notify) {
    this.session = session;
    this.notify = notify;
    this.chartEl = $("#market-chart");
    this.overlays = [];  // {key, name, params, color, series: [], pane}
    this.data = null;
    this.indicators = [];
    this.loadToken = 0;
    $("#market-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.load().catch((error) => this.fail(error));
    });
    $("#indicator-name").addEventListener("change", () => this.showParams());
    $("#indicator-add").addEventListener("click", () => this.addOverlay().catch((error) => this.notify(error)));
    for (const id of ["#anomaly-on", "#anomaly-method", "#anomaly-window", "#anomaly-threshold"]) {
      $(id).addEventListener("change", () => this.markAnomalies().catch((error) => this.notify(error)));
    }
  }

  async enter(query) {
    $("#indicator-tools").hidden = !this.session.can("analytics:run");
    $("#anomaly-tools").hidden = !this.session.can("anomalies:read");
    if (this.session.can("analytics:run") && this.indicators.length === 0) {
      this.indicators = await this.session.get("/indicators");
      const select = clear($("#indicator-name"));
      for (const spec of this.indicators) select.append(h("option", { value: spec.name, title: spec.summary }, spec.name));
      this.showParams();
    }
    const form = $("#market-form");
    for (const key of ["symbol", "start", "end"]) if (query.get(key) !== null) form.elements[key].value = query.get(key);
    if (query.get("symbol")) await this.load();
  }

  showParams() {
    const spec = this.indicators.find((s) => s.name === $("#indicator-name").value);
    paramInputs($("#indicator-params"), spec ? spec.params : []);
  }

  fail(error) {
    this.chartEl.dataset.state = "error";
    $("#market-status").textContent = error.message;
    this.notify(error);
  }

  reset() {
    this.chart?.remove();
    this.chart = null;
    this.data = null;
    this.overlays = [];
    clear($("#overlays"));
    this.anomalies = null;
    this.loadToken++;  // answers still on their way are dropped
    clear(this.chartEl);
    for (const key of Object.keys(this.chartEl.dataset)) delete this.chartEl.dataset[key];
    this.chartEl.dataset.state = "empty";
    $("#anomaly-details").hidden = true;
    $("#market-status").textContent = "Pick a symbol and press Show.";
  }

  async load() {
    const form = $("#market-form");
    const symbol = form.elements.symbol.value.trim();
    if (!symbol) return;
    const token = ++this.loadToken;
    performance.mark("market:request");
    this.chartEl.dataset.state = "loading";
    $("#market-status").textContent = `Loading ${symbol}…`;
    const start = dateToRfc3339(form.elements.start.value);
    const end = dateToRfc3339(form.elements.end.value);
    const body = await this.session.get(`/prices/${symbolPath(symbol)}`,
      { start, end, limit: 1_000_000, max_points: MAX_POINTS });
    if (token !== this.loadToken) return;  // a newer request won
    const points = body.points;
    const bars = points.length > 0 && points.every((p) => p.open !== null && p.high !== null && p.low !== null);
    const times = points.map((p) => toSeconds(p.timestamp));
    const closes = points.map((p) => p.close);
    const keep = this.overlays.map(({ name, params }) => ({ name, params }));
    this.chart?.remove();
    const { L, chart } = await newChart(this.chartEl);
    this.L = L;
    this.chart = chart;
    this.main = bars
      ? chart.addSeries(L.CandlestickSeries, { upColor: "#26a69a", downColor: "#ef5350", borderVisible: false,
        wickUpColor: "#26a69a", wickDownColor: "#ef5350" })
      : chart.addSeries(L.LineSeries, { color: "#1f6feb", lineWidth: 1 });
    this.markers = L.createSeriesMarkers(this.main, []);
    this.anomalies = null;
    this.data = { symbol, start, end, bars, downsampled: body.downsampled, detail: null,
                  overview: { points, times },
                  low: Math.min(...points.map((p) => p.low ?? p.close)),
                  high: Math.max(...points.map((p) => p.high ?? p.close)) };
    this.setMain(points, times);
    if (body.downsampled) {
      // Zoomed in on a downsampled series, the visible range is fetched again in full detail (debounced).
      chart.timeScale().subscribeVisibleTimeRangeChange(() => {
        clearTimeout(this.refineTimer);
        this.refineTimer = setTimeout(() => this.refine(token).catch((error) => this.notify(error)), 300);
      });
    }
    chart.timeScale().fitContent();
    this.overlays = [];
    clear($("#overlays"));
    this.chartEl.dataset.kind = bars ? "candles" : "line";
    delete this.chartEl.dataset.detail;
    this.describe();
    await painted();
    if (token !== this.loadToken) return;
    chart.timeScale().fitContent();  // again, now that autoSize has measured the container
    performance.mark("market:painted");  // the first meaningful paint: the prices are on screen
    this.chartEl.dataset.state = "drawn";
    for (const overlay of keep) await this.addOverlay(overlay);
    await this.markAnomalies();
    await painted();
    if (token !== this.loadToken) return;
    this.chartEl.dataset.state = "ready";
  }

  // Show `points` as the main series (the overview, or the overview with a zoomed range in full detail).
  setMain(points, times) {
    const d = this.data;
    d.points = points;
    d.times = times;
    d.closes = points.map((p) => p.close);
    this.main.setData(d.bars
      ? points.map((p, i) => ({ time: times[i], open: p.open, high: p.high, low: p.low, close: p.close }))
      : points.map((p, i) => ({ time: times[i], value: p.close })));
    this.chartEl.dataset.bars = String(points.length);
    this.placeMarkers();
  }

  async refine(token) {
    const d = this.data;
    const range = this.chart?.timeScale().getVisibleRange();
    if (!d || !range || token !== this.loadToken || this.refining) return;
    const ov = d.overview;
    const first = ov.times[0];
    const last = ov.times[ov.times.length - 1];
    const from = Math.max(range.from, first);
    const to = Math.min(range.to, last);
    if (to - from >= 0.5 * (last - first)) {  // (nearly) everything in view: the overview is the right data
      if (d.detail) {
        d.detail = null;
        this.setMain(ov.points, ov.times);
        this.chart.timeScale().setVisibleRange(range);
        delete this.chartEl.dataset.detail;
        this.describe();
      }
      return;
    }
    // Already in detail, and not zoomed much further in: nothing to fetch.
    if (d.detail && from >= d.detail.from && to <= d.detail.to && to - from > 0.5 * (d.detail.to - d.detail.from)) return;
    this.refining = true;
    try {
      const body = await this.session.get(`/prices/${symbolPath(d.symbol)}`, {
        start: new Date(Math.floor(from * 1000)).toISOString(), end: new Date(Math.floor(to * 1000) + 1).toISOString(),
        limit: 1_000_000, max_points: MAX_POINTS,
      });
      if (token !== this.loadToken || body.points.length === 0) return;
      const times = body.points.map((p) => toSeconds(p.timestamp));
      // Overview points strictly before and strictly after the detail: equal times would break the ordering.
      const lo = lowerBound(ov.times, times[0]);
      const hi = floorIndex(ov.times, times[times.length - 1]) + 1;
      const visible = this.chart.timeScale().getVisibleRange();
      this.setMain([...ov.points.slice(0, lo), ...body.points, ...ov.points.slice(hi)],
                   [...ov.times.slice(0, lo), ...times, ...ov.times.slice(hi)]);
      if (visible) this.chart.timeScale().setVisibleRange(visible);
      d.detail = { from, to, points: body.points.length, downsampled: body.downsampled };
      this.chartEl.dataset.detail = String(body.points.length);
      this.describe();
    } finally {
      this.refining = false;
    }
  }

  describe() {
    const d = this.data;
    const shown = d.overview.points;
    const first = shown[0];
    const last = shown[shown.length - 1];
    let text = `${d.symbol}: ${shown.length.toLocaleString("en-US")} ${d.bars ? "bars" : "ticks"}`;
    if (first) text += `, ${fmtTime(first.timestamp)} to ${fmtTime(last.timestamp)}`;
    if (d.downsampled) {
      text += ` (downsampled from ${d.downsampled.source_points.toLocaleString("en-US")} stored points by ` +
        `${d.downsampled.method === "ohlc" ? "OHLC buckets" : "LTTB"})`;
    }
    if (d.detail) {
      text += `; the zoomed range in ${d.detail.downsampled ? "finer" : "full"} detail ` +
        `(${d.detail.points.toLocaleString("en-US")} points)`;
    }
    $("#market-status").textContent = text;
    this.chartEl.dataset.series = ["main", ...this.overlays.map((o) => o.key)].join(",");
  }

  // Overlay an indicator computed by POST /indicators/{name} over the shown closes.
  async addOverlay(overlay) {
    if (!this.data) throw new Error("show a symbol first");
    const name = overlay?.name ?? $("#indicator-name").value;
    const params = overlay?.params ?? readParams($("#indicator-params"));
    const result = await this.session.post(`/indicators/${encodeURIComponent(name)}`,
      { prices: this.data.closes, params });
    const key = `${result.name}(${Object.entries(result.params).map(([k, v]) => `${k}=${v}`).join(",")})`;
    if (this.overlays.some((o) => o.key === key)) return;
    const color = PALETTE[this.overlays.length % PALETTE.length];
    const all = Object.values(result.values).flat().filter((v) => v !== null).sort((a, b) => a - b);
    const median = all.length ? all[all.length >> 1] : 0;
    // Price-like outputs (moving averages, bands) share the price pane; oscillators get a pane of their own.
    const samePane = median >= this.data.low * 0.5 && median <= this.data.high * 1.5;
    const pane = samePane ? 0 : this.chart.panes().length;
    const series = Object.entries(result.values).map(([output, values], k) => {
      const line = this.chart.addSeries(this.L.LineSeries, {
        color: k === 0 ? color : PALETTE[(this.overlays.length + k + 3) % PALETTE.length], lineWidth: 2,
        title: Object.keys(result.values).length > 1 ? `${result.name} ${output}` : result.name,
        priceLineVisible: false, lastValueVisible: false,
      }, pane);
      line.setData(values.flatMap((v, i) => (v === null ? [] : [{ time: this.data.times[i], value: v }])));
      return line;
    });
    const entry = { key, name: result.name, params: result.params, color, series, pane };
    this.overlays.push(entry);
    const swatch = h("span", { class: "swatch" });
    swatch.style.background = color;  // a CSSOM property: allowed by the CSP, unlike a style attribute
    $("#overlays").append(h("span", { class: "chip", dataset: { overlay: key } }, swatch, key,
      h("button", { type: "button", title: `remove ${key}`, onclick: () => this.removeOverlay(entry) }, "×")));
    this.describe();
    await painted();
  }

  removeOverlay(entry) {
    for (const line of entry.series) this.chart.removeSeries(line);
    if (entry.pane > 0 && this.chart.panes()[entry.pane]?.getSeries().length === 0) this.chart.removePane(entry.pane);
    this.overlays = this.overlays.filter((o) => o !== entry);
    document.querySelector(`.chip[data-overlay="${CSS.escape(entry.key)}"]`)?.remove();
    this.describe();
  }

  // GET /anomalies/{symbol} over the shown range; each anomaly is marked on the bar that contains it.
  async markAnomalies() {
    if (!this.data || !this.session.can("anomalies:read")) return;
    this.anomalies = null;
    if (!$("#anomaly-on").checked || this.data.points.length === 0) {
      clear($("#anomaly-table tbody"));
      this.markers.setMarkers([]);
      this.chartEl.dataset.markers = "0";
      $("#anomaly-details").hidden = true;
      return;
    }
    this.anomalies = await this.session.get(`/anomalies/${symbolPath(this.data.symbol)}`, {
      start: this.data.overview.points[0].timestamp, end: this.data.end, method: $("#anomaly-method").value,
      window: $("#anomaly-window").value, threshold: $("#anomaly-threshold").value,
    });
    this.placeMarkers();
  }

  placeMarkers() {
    const body = this.anomalies;
    if (!body) return;
    const table = clear($("#anomaly-table tbody"));
    // One marker per shown bar (a downsampled bar may hold several anomalies: the strongest speaks for them), and
    // at most MAX_MARKERS of them, the strongest: thousands of labelled markers would make every frame slow.
    const strongest = new Map();
    for (const a of body.anomalies) {
      const i = floorIndex(this.data.times, toSeconds(a.timestamp));
      if (i < 0) continue;
      const kept = strongest.get(i);
      if (!kept || Math.abs(a.score) > Math.abs(kept.score)) strongest.set(i, a);
    }
    let marked = [...strongest.entries()];
    if (marked.length > MAX_MARKERS) {
      marked = marked.sort((x, y) => Math.abs(y[1].score) - Math.abs(x[1].score)).slice(0, MAX_MARKERS);
      marked.sort((x, y) => x[0] - y[0]);
    }
    // A jump is marked above its bar, a drop below it, each with its score.
    this.markers.setMarkers(marked.map(([i, a]) => ({
      time: this.data.times[i], position: a.score >= 0 ? "aboveBar" : "belowBar",
      shape: a.score >= 0 ? "arrowDown" : "arrowUp", color: "#e91e63", text: a.score.toFixed(1),
    })));
    for (const a of body.anomalies.slice(0, MAX_ROWS)) {
      table.append(h("tr", {}, h("td", {}, fmtTime(a.timestamp)), h("td", { class: "num" }, fmtNumber(a.price)),
                     h("td", { class: "num" }, fmtNumber(a.score, 2))));
    }
    const total = body.anomalies.length;
    this.chartEl.dataset.markers = String(marked.length);
    this.chartEl.dataset.anomalies = String(total);
    $("#anomaly-count").textContent = total.toLocaleString("en-US") +
      (marked.length < total ? `; ${marked.length.toLocaleString("en-US")} marked, the strongest per bar` : "") +
      (total > MAX_ROWS ? `; the first ${MAX_ROWS.toLocaleString("en-US")} listed` : "");
    $("#anomaly-details").hidden = false;
  }
}
