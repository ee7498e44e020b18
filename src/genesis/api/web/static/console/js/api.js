// The session: tokens live in this module's private fields, in memory only (never localStorage, sessionStorage
// or cookies), so a reload logs out and no other page or origin can read them. Every call sends the bearer token
// and an X-Request-ID, which becomes the audit event's correlation id.

export class ApiError extends Error {
  constructor(status, problem, requestId) {
    super(problem?.detail || problem?.error_description || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.requestId = requestId;
  }
}

function newRequestId() {
  return crypto.randomUUID().replaceAll("-", "");
}

// Refresh this long before the access token expires: a minute, or a quarter of a short lifetime.
function refreshDelayMs(expiresIn) {
  return Math.max(expiresIn - 60, expiresIn * 0.75) * 1000;
}

export class Session {
  #access = null;
  #refresh = null;
  #timer = null;
  #refreshing = null;

  constructor(apiRoot, { onExpired } = {}) {
    this.root = apiRoot;
    this.onExpired = onExpired || (() => {});
    this.me = null;
    this.lastRequestId = null;
  }

  get active() {
    return this.#access !== null;
  }

  can(scope) {
    return Boolean(this.me && this.me.scopes.includes(scope));
  }

  async login(username, password) {
    await this.#grant({ grant_type: "password", username, password });
    this.me = await this.get("/me");
    return this.me;
  }

  async #grant(fields) {
    const response = await fetch(`${this.root}/token`, {
      method: "POST", body: new URLSearchParams(fields), cache: "no-store", credentials: "omit",
      headers: { "X-Request-ID": newRequestId(), Accept: "application/json" },
    });
    const body = await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, body, response.headers.get("x-request-id"));
    this.#access = body.access_token;
    this.#refresh = body.refresh_token || null;
    clearTimeout(this.#timer);
    if (this.#refresh) this.#timer = setTimeout(() => this.refresh().catch(() => {}), refreshDelayMs(body.expires_in));
  }

  // Rotate both tokens with the refresh grant; a failure ends the session.
  refresh() {
    if (!this.#refresh) return Promise.reject(new Error("no refresh token"));
    if (!this.#refreshing) {
      this.#refreshing = this.#grant({ grant_type: "refresh_token", refresh_token: this.#refresh })
        .catch((error) => {
          this.#forget();
          this.onExpired(error);
          throw error;
        })
        .finally(() => { this.#refreshing = null; });
    }
    return this.#refreshing;
  }

  // Revoke the refresh token (its whole family) and the access token, then forget both.
  async logout() {
    const tokens = [[this.#refresh, "refresh_token"], [this.#access, "access_token"]].filter(([t]) => t);
    this.#forget();
    await Promise.allSettled(tokens.map(([token, hint]) => fetch(`${this.root}/token/revoke`, {
      method: "POST", body: new URLSearchParams({ token, token_type_hint: hint }), credentials: "omit",
      headers: { "X-Request-ID": newRequestId() },
    })));
  }

  #forget() {
    clearTimeout(this.#timer);
    this.#timer = null;
    this.#access = null;
    this.#refresh = null;
    this.me = null;
  }

  // {body, requestId} of one call; requestId is the correlation id the server recorded in the audit trail.
  async send(method, path, { json, query } = {}, retried = false) {
    if (!this.#access) throw new ApiError(401, { detail: "not logged in" }, null);
    const url = new URL(`${this.root}${path}`, window.location.origin);
    for (const [key, value] of Object.entries(query || {})) {
      if (value !== null && value !== undefined && value !== "") url.searchParams.set(key, String(value));
    }
    const requestId = newRequestId();
    const headers = { Authorization: `Bearer ${this.#access}`, Accept: "application/json", "X-Request-ID": requestId };
    if (json !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(url, {
      method, headers, body: json === undefined ? undefined : JSON.stringify(json), cache: "no-store",
      credentials: "omit",
    });
    this.lastRequestId = response.headers.get("x-request-id") || requestId;
    if (response.status === 401 && !retried && this.#refresh) {
      await this.refresh();
      return this.send(method, path, { json, query }, true);
    }
    const body = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, body, this.lastRequestId);
    return { body, requestId: this.lastRequestId };
  }

  async get(path, query) {
    return (await this.send("GET", path, { query })).body;
  }

  async post(path, json) {
    return (await this.send("POST", path, { json })).body;
  }
}
