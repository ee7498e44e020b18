// The console's shell: log in, show only the pages the principal's scopes allow, route between them, log out.
// Every action goes through the public API with the user's own token: the API enforces scopes and audits it all.

import { $, $$, clear } from "./dom.js";
import { ApiError, Session } from "./api.js";
import { MarketPage } from "./market.js";
import { BacktestsPage } from "./backtests.js";
import { TrailPage } from "./trail.js";
import { AdminPage } from "./admin.js";

const session = new Session(document.body.dataset.api || "", { onExpired: () => ended("Your session expired: log in again.") });
const PAGES = ["market", "backtests", "trail", "admin"];

// The attribution Lightweight Charts' licence asks for: a link to its maker (a navigation, never a load).
const TRADINGVIEW = "https://www.tradingview.com/";
$("#tradingview-link").href = TRADINGVIEW;

function notify(error) {
  const flash = $("#flash");
  if (!error) { flash.hidden = true; return; }
  const id = error instanceof ApiError && error.requestId ? ` (correlation id ${error.requestId})` : "";
  flash.textContent = `${error.message}${id}`;
  flash.hidden = false;
  if (error instanceof ApiError && error.status === 401 && !session.active) ended("Log in again.");
}

const pages = {
  market: new MarketPage(session, notify),
  backtests: new BacktestsPage(session, notify, (correlationId) => {
    window.location.hash = `#/trail?correlation_id=${encodeURIComponent(correlationId)}`;
  }),
  trail: new TrailPage(session, notify),
  admin: new AdminPage(session, notify),
};

function allowed(page) {
  const link = $(`#nav a[data-page="${page}"]`);
  return Boolean(link) && link.dataset.scope.split(" ").some((scope) => session.can(scope));
}

function showOnly(id) {
  for (const section of $$("main > section.page")) section.hidden = section.id !== id;
}

async function route() {
  notify(null);
  if (!session.active) {
    showOnly("page-login");
    return;
  }
  const [path, search] = window.location.hash.replace(/^#\/?/, "").split("?");
  let page = path || PAGES.find(allowed);
  if (!PAGES.includes(page)) page = PAGES.find(allowed);
  for (const link of $$("#nav a")) link.classList.toggle("active", link.dataset.page === page);
  if (!page || !allowed(page)) {
    showOnly("page-denied");
    return;
  }
  if (page === "backtests" && pages.market.data && !$("#backtest-form").elements.symbol.value) {
    $("#backtest-form").elements.symbol.value = pages.market.data.symbol;  // carry the charted symbol over
  }
  showOnly(`page-${page}`);
  document.body.dataset.page = page;
  try {
    await pages[page].enter(new URLSearchParams(search || ""));
  } catch (error) {
    notify(error);
  }
}

function loggedIn(me) {
  for (const link of $$("#nav a")) link.hidden = !allowed(link.dataset.page);
  $("#nav").hidden = false;
  $("#who").textContent = `${me.subject} (${me.role})`;
  $("#who").hidden = false;
  $("#logout").hidden = false;
  document.body.dataset.session = "active";
  document.body.dataset.scopes = me.scopes.join(" ");
  route();
}

// Forget everything the session showed: tables, charts, secrets.
function ended(message) {
  for (const el of [$("#nav"), $("#who"), $("#logout")]) el.hidden = true;
  for (const body of $$("main table tbody")) clear(body);
  for (const page of Object.values(pages)) page.reset();
  for (const form of $$("main form")) form.reset();
  if ($("#event-dialog").open) $("#event-dialog").close();
  document.body.dataset.session = "ended";
  delete document.body.dataset.scopes;
  showOnly("page-login");
  const error = $("#login-error");
  error.textContent = message || "";
  error.hidden = !message;
}

$("#login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const button = form.querySelector("button");
  button.disabled = true;
  $("#login-error").hidden = true;
  try {
    const me = await session.login(form.elements.username.value.trim(), form.elements.password.value);
    form.reset();
    loggedIn(me);
  } catch (error) {
    $("#login-error").textContent = error instanceof ApiError && error.status < 500
      ? "Wrong username or password, or the account is locked." : error.message;
    $("#login-error").hidden = false;
  } finally {
    button.disabled = false;
  }
});

$("#logout").addEventListener("click", async () => {
  await session.logout();
  ended("You are logged out.");
});

window.addEventListener("hashchange", route);
document.body.dataset.console = "ready";
route();
