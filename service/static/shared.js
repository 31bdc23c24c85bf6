// What the dashboard's modules share: element look-up, number and time formats, table cells,
// and the polling loop. Every value from the API is written as text, never as markup.

export const REFRESH_MS = 3000;

export const byId = (id) => document.getElementById(id);

export const integer = new Intl.NumberFormat("en-US");

// The API writes microseconds; Date.parse is only specified for milliseconds.
export const millis = (iso) => Date.parse(iso.replace(/(\.\d{3})\d+/, "$1"));

export const fixed = (value, digits) => (value === null || value === undefined ? "–" : value.toFixed(digits));

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
