// Backtests: run a signal strategy on a stored symbol (POST /backtests), show its metrics, equity curve and
// drawdown, and the performance board (GET /performance).

import { $, busy, clear, dateToRfc3339, fmtNumber, formData, h, paramInputs, readParams, toSeconds } from "./dom.js";
import { newChart, painted } from "./charts.js";
import { symbolPath } from "./market.js";

const METRICS = [
  ["sharpe", "Sharpe ratio (annualised)"], ["sortino", "Sortino ratio"], ["total_return", "Total return"],
  ["cagr", "CAGR"], ["annualized_volatility", "Annualised volatility"], ["max_drawdown", "Max drawdown"],
  ["final_equity", "Final equity"], ["trades", "Trades"], ["round_trips", "Round trips"], ["win_rate", "Win rate"],
  ["exposure", "Exposure"], ["bars", "Bars"],
];
const MAX_TIMED_POINTS = 100_000;  // one GET /prices answer: beyond, the curve is drawn against bar numbers

export class BacktestsPage {
  constructor(session, notify, onTrail) {
    this.session = session;
    this.notify = notify;
    this.onTrail = onTrail;
    this.strategies = [];
    $("#backtest-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const button = event.submitter || $("#backtest-form button[type=submit]");
      busy(button, this.run()).catch((error) => this.notify(error));
    });
    $("#backtest-strategy").addEventListener("change", () => this.showParams());
    $("#performance-refresh").addEventListener("click", () => this.board().catch((error) => this.notify(error)));
  }

  async enter() {
    const canRun = this.session.can("backtests:run") && this.session.can("analytics:run");
    $("#backtest-form").hidden = !canRun;
    if (canRun && this.strategies.length === 0) {
      this.strategies = (await this.session.get("/strategies")).signal_strategies;
      const select = clear($("#backtest-strategy"));
      for (const spec of this.strategies) select.append(h("option", { value: spec.name }, spec.name));
      this.showParams();
    }
    if (this.session.can("performance:read")) await this.board();
  }

  reset() {
    for (const id of ["#equity-chart", "#drawdown-chart"]) {
      this[id]?.remove();
      this[id] = null;
      clear($(id)).dataset.state = "empty";
    }
    for (const id of ["#backtest-id", "#backtest-correlation", "#backtest-title"]) $(id).textContent = "";
    $("#backtest-result").hidden = true;
  }

  showParams() {
    const spec = this.strategies.find((s) => s.name === $("#backtest-strategy").value);
    paramInputs($("#backtest-params"), spec ? spec.params : []);
    $("#backtest-summary").textContent = spec ? spec.summary : "";
  }

  async run() {
    const fields = formData($("#backtest-form"));
    const request = {
      strategy: fields.strategy, params: readParams($("#backtest-params")), symbol: fields.symbol,
      start: dateToRfc3339(fields.start), end: dateToRfc3339(fields.end),
      commission: Number(fields.commission || 0), include_equity: true,
    };
    for (const key of ["start", "end"]) if (request[key] === null) delete request[key];
    const result = $("#backtest-result");
    result.dataset.state = "running";
    const { body, requestId } = await this.session.send("POST", "/backtests", { json: request });
    await this.show(body, requestId, request);
    if (this.session.can("performance:read")) await this.board();
  }

  async show(record, requestId, request) {
    const result = $("#backtest-result");
    result.hidden = false;
    $("#backtest-title").textContent = `${record.strategy} on ${record.symbol}`;
    $("#backtest-id").textContent = record.id;
    $("#backtest-correlation").textContent = requestId;
    const link = $("#backtest-trail-link");
    link.hidden = !this.session.can("audit:read");
    link.onclick = (event) => { event.preventDefault(); this.onTrail(requestId); };
    const body = clear($("#metrics-table tbody"));
    body.append(h("tr", {}, h("th", {}, "Parameters"),
      h("td", {}, Object.entries(record.params).map(([k, v]) => `${k}=${v}`).join(", "))));
    for (const [key, label] of METRICS) {
      const value = record.metrics[key];
      body.append(h("tr", { dataset: { metric: key } }, h("th", {}, label),
        h("td", { class: "num", dataset: { value: value === null || value === undefined ? "" : String(value) } },
          fmtNumber(value))));
    }
    await this.curves(record, request);
    result.dataset.state = "ready";
  }

  // Equity and drawdown over the symbol's timestamps (the closes the backtest ran on).
  async curves(record, request) {
    const equity = record.equity || [];
    let times = null;
    if (record.symbol && equity.length <= MAX_TIMED_POINTS) {
      const prices = await this.session.get(`/prices/${symbolPath(record.symbol)}`,
        { start: request.start, end: request.end, limit: equity.length });
      if (prices.points.length === equity.length) times = prices.points.map((p) => toSeconds(p.timestamp));
    }
    times ||= equity.map((_, i) => i + 1);  // bar numbers
    let peak = -Infinity;
    const drawdown = equity.map((e) => { peak = Math.max(peak, e); return e / peak - 1; });
    for (const [id, values, options] of [
      ["#equity-chart", equity, { color: "#1f6feb", lineWidth: 2 }],
      ["#drawdown-chart", drawdown, { color: "#ef5350", lineWidth: 1 }],
    ]) {
      const el = $(id);
      this[id]?.remove();
      const { L, chart } = await newChart(el);
      this[id] = chart;
      const series = chart.addSeries(id === "#equity-chart" ? L.LineSeries : L.AreaSeries,
        id === "#equity-chart" ? options : { lineColor: options.color, topColor: "rgba(239,83,80,0.05)",
                                             bottomColor: "rgba(239,83,80,0.4)", invertFilledArea: true });
      series.setData(values.map((v, i) => ({ time: times[i], value: v })));
      chart.timeScale().fitContent();
      el.dataset.points = String(values.length);
    }
    // autoSize measures the container asynchronously: fit again once it has its real width.
    await painted();
    for (const id of ["#equity-chart", "#drawdown-chart"]) {
      this[id].timeScale().fitContent();
      $(id).dataset.state = "ready";
    }
  }

  async board() {
    const rows = await this.session.get("/performance");
    const body = clear($("#performance-table tbody"));
    for (const row of rows) {
      const scores = row.history.filter((s) => s !== null);
      body.append(h("tr", { dataset: { strategy: row.strategy_name } }, h("td", {}, row.strategy_name),
        h("td", { class: "num" }, fmtNumber(row.last_score)), h("td", { class: "num" }, row.history.length),
        h("td", { class: "num" }, scores.length ? fmtNumber(Math.max(...scores)) : "—"),
        h("td", { class: "num" }, scores.length ? fmtNumber(Math.min(...scores)) : "—")));
    }
    if (rows.length === 0) body.append(h("tr", {}, h("td", { colspan: 5 }, "No backtests recorded yet.")));
  }
}
