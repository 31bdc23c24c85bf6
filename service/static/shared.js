// What the dashboard's modules share: the API key of this tab, element look-up, number and
// time formats, table cells and SVG elements, the API's error details, and the polling loop.
// Every value from the API is written as text, never as markup.

export const REFRESH_MS = 3000;

export const byId = (id) => document.getElementById(id);

export const integer = new Intl.NumberFormat("en-US");

// The API writes microseconds; Date.parse is only specified for milliseconds.
export const millis = (iso) => Date.parse(iso.replace(/(\.\d{3})\d+/, "$1"));

export const fixed = (value, digits) => (value === null || value === undefined ? "–" : value.toFixed(digits));

// An SVG element with its attributes (and text), appended to ``parent`` if one is given.
const SVG_NS = "http://www.w3.org/2000/svg";
export function svgEl(name, attributes, parent, text) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  if (parent) parent.append(node);
  return node;
}

// FastAPI's detail is a message, or for a body that does not validate, a list of them.
export function detailOf(body, fallback) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((item) => {
      const where = (item.loc || []).filter((part) => part !== "body").join(".");
      return where ? `${where}: ${item.msg}` : item.msg;
    }).join("; ");
  }
  return fallback;
}

// An answer the API refused: its status, FastAPI's raw detail (a 422's list says which field),
// and a message for people ("422: rules.2.text: ..."); status 0 when no answer came.
export class ApiError extends Error {
  constructor(status, detail, message) {
    super(message);
    this.status = status;
    this.detail = detail;
  }
}

// A JSON call with the tab's key: the parsed answer, or an ApiError.
export async function api(method, url, body) {
  const headers = withKey({ Accept: "application/json" });
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new ApiError(0, undefined, "the server did not answer");
  }
  const text = response.status === 204 ? "" : await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const reason = detailOf(data, response.statusText || "refused");
    throw new ApiError(response.status, data && data.detail, `${response.status}: ${reason}`);
  }
  return data;
}

// A panel's figures (a GET with the tab's key), or null with the reason said in its note.
export async function readFigures(url, note) {
  try {
    const response = await fetch(url, { headers: withKey(), cache: "no-store" });
    if (response.ok) return await response.json();
    note.textContent = response.status === 401 || response.status === 403
      ? `needs a key the API knows (${response.status})`
      : `not available (${response.status})`;
  } catch {
    note.textContent = "the server did not answer";
  }
  return null;
}

export function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.append(td);
  return td;
}

// Each loop waits for its answer before the next call: a slow server is never piled onto.
export async function every(load) {
  await load();
  setTimeout(() => every(load), REFRESH_MS);
}

// The models panel announces a promotion, a snapshot or a new challenger with this event on
// the document, and the figures are read again at once rather than at the next tick.
export const MODELS_CHANGED = "fraudstream:models-changed";

// The key typed into the page lives in this tab's sessionStorage only: never in the URL,
// localStorage or a cookie, so it is gone when the tab closes and no other tab or site sees it.
// With API keys configured every figure on the page needs one (any role reads them).
const KEY_ITEM = "fraudstream.apiKey";
export const KEY_CHANGED = "fraudstream:key-changed";
export const keyStore = {
  get() {
    try {
      return sessionStorage.getItem(KEY_ITEM) || "";
    } catch {
      return "";
    }
  },
  set(key) {
    try {
      if (key) sessionStorage.setItem(KEY_ITEM, key);
      else sessionStorage.removeItem(KEY_ITEM);
    } catch {
      // Storage disabled: the key cannot be kept, and requests go without it.
    }
    document.dispatchEvent(new Event(KEY_CHANGED));
  },
};

// Sent as a header only: a request the page makes carries the key, a link or a form never does.
export function withKey(headers = {}) {
  const key = keyStore.get();
  return key ? { ...headers, Authorization: `Bearer ${key}` } : headers;
}
