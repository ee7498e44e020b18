// Trail (scope audit:read): filter the audit events (GET /audit/events), open one to see every field, and the
// chain's verification status (GET /audit/verify).

import { $, busy, clear, dateToRfc3339, fmtTime, formData, h } from "./dom.js";

const PAGE = 100;

export class TrailPage {
  constructor(session, notify) {
    this.session = session;
    this.notify = notify;
    this.cursor = null;
    this.filters = {};
    $("#trail-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.search().catch((error) => this.notify(error));
    });
    $("#trail-more").addEventListener("click", (event) => {
      busy(event.currentTarget, this.page(false)).catch((error) => this.notify(error));
    });
    $("#verify-run").addEventListener("click", (event) => {
      busy(event.currentTarget, this.verify()).catch((error) => this.notify(error));
    });
  }

  async enter(query) {
    const form = $("#trail-form");
    for (const key of ["actor", "action", "outcome", "correlation_id"]) {
      if (query.get(key) !== null) form.elements[key].value = query.get(key);
    }
    // Verification reads the whole chain: once when the page is first opened, then on request.
    await Promise.all([this.search(), this.verified ? null : this.verify()]);
  }

  reset() {
    this.verified = false;
    this.cursor = null;
    $("#verify-status").dataset.state = "unknown";
    $("#verify-status").textContent = "Not verified yet.";
    clear($("#verify-details"));
    clear($("#event-fields"));
    $("#trail-status").textContent = "";
    $("#trail-more").hidden = true;
  }

  async search() {
    const fields = formData($("#trail-form"));
    this.filters = {
      start: dateToRfc3339(fields.start), end: dateToRfc3339(fields.end), actor: fields.actor,
      action: fields.action, outcome: fields.outcome, correlation_id: fields.correlation_id, order: fields.order,
    };
    clear($("#trail-table tbody"));
    this.cursor = null;
    this.count = 0;
    await this.page(true);
  }

  async page(first) {
    const table = $("#trail-table");
    table.dataset.state = "loading";
    const body = await this.session.get("/audit/events", { ...this.filters, limit: PAGE, cursor: first ? null : this.cursor });
    const rows = $("#trail-table tbody");
    for (const event of body.events) {
      rows.append(h("tr", { dataset: { eventId: event.event_id, action: event.action }, onclick: () => this.open(event) },
        h("td", { class: "num" }, event.seq), h("td", {}, fmtTime(event.timestamp)), h("td", {}, event.actor),
        h("td", {}, event.action), h("td", { class: `outcome-${event.outcome}` }, event.outcome),
        h("td", { class: "num" }, event.status ?? ""), h("td", {}, h("code", {}, event.correlation_id))));
    }
    this.count += body.events.length;
    this.cursor = body.next_cursor;
    $("#trail-more").hidden = !this.cursor;
    $("#trail-status").textContent = `${this.count} event${this.count === 1 ? "" : "s"}` +
      (this.cursor ? " (more available)" : "");
    table.dataset.rows = String(this.count);
    table.dataset.state = "ready";
  }

  open(event) {
    $("#event-seq").textContent = `#${event.seq}`;
    const fields = clear($("#event-fields"));
    for (const [key, value] of Object.entries(event)) {
      const shown = value !== null && typeof value === "object" ? h("pre", {}, JSON.stringify(value, null, 2))
        : String(value ?? "—");
      fields.append(h("dt", {}, key), h("dd", { dataset: { field: key } }, shown));
    }
    $("#event-dialog").showModal();
  }

  async verify() {
    const status = $("#verify-status");
    status.dataset.state = "running";
    status.textContent = "Verifying…";
    const report = await this.session.get("/audit/verify");
    this.verified = true;
    status.dataset.state = report.ok ? "ok" : "broken";
    status.textContent = report.ok
      ? `Chain intact: ${report.events_checked.toLocaleString("en-US")} events checked up to #${report.last_seq}.`
      : `Chain BROKEN at #${report.first_bad_seq} (${report.kind}): ${report.detail}`;
    const details = clear($("#verify-details"));
    for (const key of ["events_checked", "last_seq", "head_hash", "checkpoints_matched", "covered_seq",
      "signatures_checked", "first_bad_seq", "kind", "detail"]) {
      if (report[key] === null || report[key] === undefined || report[key] === "") continue;
      details.append(h("dt", {}, key), h("dd", {}, String(report[key])));
    }
  }
}
