// fraudstream dashboard, the what-if panel: for each alert threshold, what it would have given
// over the last matured days (GET /v1/whatif): precision and recall drawn against the threshold,
// alerts a day and customers bothered in the table, the threshold in force marked. The
// champion's scores as served, or a shadow challenger's own (picked from GET /v1/models).
// Every value from the API is written as text or an SVG attribute, never markup.

import {
  KEY_CHANGED, MODELS_CHANGED, byId, cell, fixed, integer, readFigures, svgEl as el, withKey,
} from "./shared.js";

const URL = document.body.dataset.whatifUrl;
const MODELS_URL = document.body.dataset.modelsUrl;
// The figures change with each day of matured labels, not by the second; until the first
// labels have matured the panel asks more often, so a fresh service fills it soon.
const REFRESH_MS = 60_000;
const WAITING_MS = 5_000;

function chart(answer) {
  const svg = byId("whatif-chart");
  const desc = svg.querySelector("desc");
  svg.replaceChildren(desc);
  const width = Math.max(svg.clientWidth, 240);
  const height = Math.max(svg.clientHeight, 160);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const points = answer.thresholds;
  if (!points.length) {
    desc.textContent = "No matured labels yet.";
    el("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "empty" }, svg,
      "No matured labels yet");
    return;
  }
  const pad = { left: 34, right: 12, top: 10, bottom: 28 };
  const x = (t) => pad.left + t * (width - pad.left - pad.right);
  const y = (v) => height - pad.bottom - v * (height - pad.top - pad.bottom);
  for (const v of [0, 0.5, 1]) {
    el("line", { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v), class: "gridline" }, svg);
    el("text", { x: pad.left - 6, y: y(v) + 4, "text-anchor": "end" }, svg, `${v}`);
  }
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    el("text", { x: x(t), y: height - 8, "text-anchor": "middle" }, svg, `${t}`);
  }
  for (const [key, className] of [["precision", "line precision"], ["recall", "line recall"]]) {
    const defined = points.filter((p) => p[key] !== null);
    if (!defined.length) continue;
    const path = defined.map((p, i) => `${i ? "L" : "M"}${x(p.threshold).toFixed(1)},${y(p[key]).toFixed(1)}`);
    el("path", { d: path.join(""), class: className }, svg);
  }
  const t = answer.alert_threshold;
  desc.textContent = "Precision (solid) and recall (dashed) against the alert threshold.";
  if (t === null) return; // under an alert budget no fixed threshold is in force
  el("line", { x1: x(t), x2: x(t), y1: pad.top, y2: height - pad.bottom, class: "threshold" }, svg);
  el("text", { x: x(t) + 4, y: pad.top + 10, class: "threshold-label" }, svg, `in force ${t}`);
  const here = points.reduce((a, b) => (Math.abs(b.threshold - t) < Math.abs(a.threshold - t) ? b : a));
  desc.textContent +=
    ` At ${here.threshold}: ${fixed(here.alerts_per_day, 1)} alerts a day, ` +
    `precision ${fixed(here.precision, 3)}, recall ${fixed(here.recall, 3)}.`;
}

function table(answer) {
  const rows = answer.thresholds.map((point) => {
    const row = document.createElement("tr");
    if (answer.alert_threshold !== null && Math.abs(point.threshold - answer.alert_threshold) < 1e-9) {
      row.className = "in-force";
    }
    cell(row, `${point.threshold}`, "num");
    cell(row, fixed(point.alerts_per_day, 1), "num");
    cell(row, fixed(point.precision, 3), "num");
    cell(row, fixed(point.recall, 3), "num");
    cell(row, fixed(point.legitimate_cards_bothered_per_day, 1), "num");
    return row;
  });
  byId("whatif-table").tBodies[0].replaceChildren(...rows);
}

let filled = false;

// The challengers shadowing now, as options; the one picked stays picked while it serves.
async function loadModels() {
  const select = byId("whatif-model");
  try {
    const response = await fetch(MODELS_URL, { headers: withKey(), cache: "no-store" });
    if (!response.ok) return;
    const challengers = (await response.json()).models.filter((m) => m.role === "challenger");
    const picked = select.value;
    const options = [new Option("the champion, as served", "")];
    for (const model of challengers) {
      // A challenger serves under its registered version, which names its stored scores.
      options.push(new Option(`challenger ${model.name} (${model.learner})`, model.name));
    }
    select.replaceChildren(...options);
    select.value = challengers.some((m) => m.name === picked) ? picked : "";
  } catch {
    // The figures say when the server does not answer; the menu keeps what it had.
  }
}

function whatifUrl() {
  const challenger = byId("whatif-model").value;
  return challenger ? `${URL}?challenger=${encodeURIComponent(challenger)}` : URL;
}

async function load() {
  const note = byId("whatif-note");
  const answer = await readFigures(whatifUrl(), note);
  if (answer === null) return;
  note.textContent = answer.transactions
    ? `over ${integer.format(answer.transactions)} labelled transactions ` +
      `(${integer.format(answer.frauds)} fraud), ${answer.start.slice(0, 10)} to ${answer.end.slice(0, 10)}`
    : "no matured labels yet: they come a label delay after the first transactions";
  filled = answer.transactions > 0;
  chart(answer);
  table(answer);
}

async function loop() {
  await loadModels();
  await load();
  setTimeout(loop, filled ? REFRESH_MS : WAITING_MS);
}

async function reload() {
  await loadModels();
  await load();
}

document.addEventListener(KEY_CHANGED, reload);
document.addEventListener(MODELS_CHANGED, reload);
byId("whatif-model").addEventListener("change", load);
loop();
