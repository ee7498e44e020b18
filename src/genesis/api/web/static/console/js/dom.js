// Small DOM helpers. Text always goes through textContent: nothing from the API is ever parsed as HTML.

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

export function fmtNumber(value, digits = 4) {
  if (value === null || value === undefined) return "—";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return value.toLocaleString("en-US");
  return value.toFixed(digits);
}

export function fmtTime(text) {
  // RFC 3339 from the API, shown as UTC without the fraction when it is zero.
  return text.replace("T", " ").replace(/\.0+Z$/, "Z").replace(/ 00:00:00Z$/, "").replace(/Z$/, " UTC");
}

export function toSeconds(rfc3339) {
  return Date.parse(rfc3339) / 1000;
}

// <input type=date> / datetime-local values (taken as UTC) to RFC 3339, or null when empty.
export function dateToRfc3339(value) {
  if (!value) return null;
  return value.length === 10 ? `${value}T00:00:00Z` : `${value.length === 16 ? value + ":00" : value}Z`;
}

export function formData(form) {
  const out = {};
  for (const [key, value] of new FormData(form).entries()) out[key] = typeof value === "string" ? value.trim() : value;
  return out;
}

export function busy(button, promise) {
  button.disabled = true;
  return promise.finally(() => { button.disabled = false; });
}

// The API describes parameters as [{name, type, default, minimum, exclusiveMinimum, ...}]: one input each.
export function paramInputs(container, params) {
  clear(container);
  for (const p of params) {
    const input = h("input", {
      type: "number", name: p.name, value: p.default ?? "", step: p.type === "integer" ? 1 : "any",
      min: p.minimum ?? null, max: p.maximum ?? null, title: p.description || null,
      dataset: { type: p.type },
    });
    container.append(h("label", {}, p.name, input));
  }
}

export function readParams(container) {
  const out = {};
  for (const input of $$("input", container)) {
    if (input.value === "") continue;
    const value = Number(input.value);
    out[input.name] = input.dataset.type === "integer" ? Math.trunc(value) : value;
  }
  return out;
}
