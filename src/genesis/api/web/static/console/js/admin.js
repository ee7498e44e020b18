// Admin (scope admin): users and machine clients through GET/POST /users and /clients.

import { $, busy, clear, formData, h } from "./dom.js";

const ROLES = ["viewer", "trader", "auditor", "admin"];

export class AdminPage {
  constructor(session, notify) {
    this.session = session;
    this.notify = notify;
    for (const select of document.querySelectorAll("#page-admin select.roles")) {
      for (const role of ROLES) select.append(h("option", { value: role }, role));
    }
    $("#user-form").addEventListener("submit", (event) => this.submit(event, () => this.createUser(event.target)));
    $("#client-form").addEventListener("submit", (event) => this.submit(event, () => this.createClient(event.target)));
  }

  submit(event, action) {
    event.preventDefault();
    busy(event.submitter || event.target.querySelector("button"), action()).catch((error) => this.notify(error));
  }

  reset() {
    $("#client-secret-id").textContent = "";
    $("#client-secret-value").textContent = "";
    $("#client-secret").hidden = true;
  }

  async enter() {
    await Promise.all([this.users(), this.clients()]);
  }

  async users() {
    const body = clear($("#users-table tbody"));
    for (const user of await this.session.get("/users")) {
      body.append(h("tr", { dataset: { username: user.username } }, h("td", {}, user.username), h("td", {}, user.role),
        h("td", {}, user.disabled ? "yes" : "no")));
    }
  }

  async clients() {
    const body = clear($("#clients-table tbody"));
    for (const client of await this.session.get("/clients")) {
      body.append(h("tr", {}, h("td", {}, client.client_id), h("td", {}, client.role),
        h("td", {}, client.revoked ? "yes" : "no"), h("td", {}, client.description)));
    }
  }

  async createUser(form) {
    await this.session.post("/users", formData(form));
    form.reset();
    await this.users();
  }

  async createClient(form) {
    const fields = formData(form);
    if (!fields.client_id) delete fields.client_id;
    const created = await this.session.post("/clients", fields);
    form.reset();
    $("#client-secret-id").textContent = created.client_id;
    $("#client-secret-value").textContent = created.client_secret;
    $("#client-secret").hidden = false;
    await this.clients();
  }
}
