// fraudstream dashboard: the live alert feed (Server-Sent Events) and the figures of
// GET /v1/dashboard, redrawn every few seconds as inline SVG; the models panel is models.js.
// Every call sends the tab's API key, if one was typed in (shared.js).
// No library, no build step. Every value from the API is written as text (textContent, SVG
// attributes), never as markup.

import {
  KEY_CHANGED, MODELS_CHANGED, byId, cell, every, fixed, integer, millis, svgEl as el, withKey,
} from "./shared.js";

const FEED_ROWS = 50;
const RECONNECT_MS = 3000;

const urls = {
  alerts: document.body.dataset.alertsUrl,
  verdict: (id) => `${document.body.dataset.alertsUrl}/${encodeURIComponent(id)}/verdict`,
  stream: document.body.dataset.streamUrl,
  dashboard: document.body.dataset.dashboardUrl,
};

// ---- Formatting -------------------------------------------------------------------------

const clock = new Intl.DateTimeFormat("en-GB", {
  hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
});
const shortClock = new Intl.DateTimeFormat("en-GB", {
  hour: "2-digit", minute: "2-digit", hour12: false,
});
const currencies = new Map();

function amount(value, currency) {
  if (!currencies.has(currency)) {
    try {
      currencies.set(currency, new Intl.NumberFormat("en-US", { style: "currency", currency }));
    } catch {
      currencies.set(currency, null);
    }
  }
  const format = currencies.get(currency);
  return format ? format.format(value) : `${value.toFixed(2)} ${currency}`;
}

const compact = (value) => (value >= 1000 ? `${+(value / 1000).toFixed(1)}k` : `${value}`);

function duration(seconds) {
  const units = [["d", 86400], ["h", 3600], ["min", 60]];
  const [unit, size] = units.find(([, size]) => seconds >= size) || ["s", 1];
  return `${+(seconds / size).toFixed(size > 1 ? 1 : 0)} ${unit}`;
}

// A reason's value as an analyst reads it: durations in days or hours, the rest rounded.
const reasonValue = (reason) =>
  reason.feature.includes("seconds") ? duration(reason.value) : `${+reason.value.toFixed(2)}`;

// ---- The live feed ----------------------------------------------------------------------

const feed = []; // {alert, at}, newest first, at most FEED_ROWS
const shown = new Set(); // transaction ids in `feed`: the stream and GET /v1/alerts overlap
let fresh = new Set(); // ids that arrived live since the last render, to highlight
let streamed = 0; // alerts the stream brought since the page opened
const verdicts = new Map(); // transaction id -> "fraud" | "legitimate", as the API said
const verdictErrors = new Map(); // transaction id -> why the last verdict was not taken
let renderQueued = false;
// While the pointer is over the feed its rows hold still, so that the row an analyst aims at
// does not move away: alerts arriving meanwhile wait, counted in a note, and are shown when
// the pointer leaves.
let holding = false;
let waiting = []; // [alerts, live] in arrival order, while holding

function receive(alerts, live) {
  if (holding) {
    waiting.push([alerts, live]);
    noteWaiting();
  } else {
    addAlerts(alerts, live);
  }
}

function noteWaiting() {
  const ids = new Set();
  for (const [alerts] of waiting) {
    for (const alert of alerts) {
      if (!shown.has(alert.transaction.transaction_id)) ids.add(alert.transaction.transaction_id);
    }
  }
  const note = byId("feed-waiting");
  note.hidden = ids.size === 0;
  note.textContent = `${integer.format(ids.size)} new`;
}

function hold(on) {
  holding = on;
  if (on) return;
  const arrived = waiting;
  waiting = [];
  for (const [alerts, live] of arrived) addAlerts(alerts, live);
  noteWaiting();
}

function addAlerts(alerts, live) {
  for (const alert of alerts) {
    const id = alert.transaction.transaction_id;
    if (alert.verdict) verdicts.set(id, alert.verdict);
    if (shown.has(id)) continue;
    shown.add(id);
    feed.push({ alert, at: millis(alert.raised_at) });
    if (live) {
      fresh.add(id);
      streamed += 1;
    }
  }
  feed.sort((a, b) => b.at - a.at);
  for (const dropped of feed.splice(FEED_ROWS)) shown.delete(dropped.alert.transaction.transaction_id);
  if (!renderQueued) {
    renderQueued = true;
    requestAnimationFrame(renderFeed); // one redraw per frame, however many alerts came
  }
}

function alertRow({ alert, at }) {
  const tx = alert.transaction;
  const row = document.createElement("tr");
  row.className = fresh.has(tx.transaction_id) ? "alert-row new" : "alert-row";
  row.dataset.transactionId = tx.transaction_id;
  cell(row, clock.format(new Date(at)), "time").title =
    `raised ${alert.raised_at}\ntransaction ${tx.transaction_id} at ${tx.timestamp}`;
  cell(row, tx.card_id, "id");
  cell(row, tx.terminal_id, "id");
  cell(row, amount(tx.amount, tx.currency), "num amount");

  const score = cell(row, "", "num");
  const wrap = document.createElement("span");
  wrap.className = "score";
  const track = document.createElement("span");
  track.className = "track";
  track.setAttribute("aria-hidden", "true");
  const fill = document.createElement("span");
  fill.className = "fill";
  fill.style.width = `${Math.round(alert.score * 100)}%`;
  track.append(fill);
  const value = document.createElement("strong");
  value.textContent = alert.score.toFixed(3);
  value.title = `threshold ${alert.threshold.toFixed(3)}, model ${alert.model_version}`;
  wrap.append(track, value);
  score.append(wrap);

  const why = cell(row, "", "");
  const list = document.createElement("div");
  list.className = "reasons";
  if (alert.decision === "review") {
    // A rule asked for a look at a transaction the model did not alert on.
    row.classList.add("review-row");
    const badge = document.createElement("span");
    badge.className = "badge review";
    badge.textContent = "review";
    list.append(badge);
  }
  for (const reason of alert.reasons) {
    if (reason.feature.startsWith("rule:")) {
      const chip = document.createElement("span");
      chip.className = "reason rule";
      chip.textContent = `rule ${reason.feature.slice(5)}`;
      chip.title = `decided by this rule of rule set version ${reason.value}`;
      list.append(chip);
      continue;
    }
    const chip = document.createElement("span");
    chip.className = "reason";
    chip.textContent = `${reason.feature} = ${reasonValue(reason)}`;
    chip.title = `adds ${reason.contribution.toFixed(2)} to the log-odds of fraud`;
    const push = document.createElement("span");
    push.className = "push";
    push.textContent = `+${reason.contribution.toFixed(2)}`;
    chip.append(push);
    list.append(chip);
  }
  if (!alert.reasons.length) list.textContent = "–";
  why.append(list);
  row.append(verdictCell(tx.transaction_id));
  return row;
}

// An analyst's verdict: two buttons until one is taken, then the verdict (the label role).
function verdictCell(id) {
  const td = document.createElement("td");
  td.className = "verdict";
  const verdict = verdicts.get(id);
  if (verdict) {
    const badge = document.createElement("span");
    badge.className = `verdict-badge ${verdict}`;
    badge.textContent = verdict;
    td.append(badge);
    return td;
  }
  for (const [text, isFraud] of [["Fraud", true], ["Legit", false]]) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "button quiet verdict-button";
    button.textContent = text;
    button.setAttribute("aria-label", `${text === "Fraud" ? "Fraud" : "Legitimate"}: transaction ${id}`);
    button.addEventListener("click", () => judge(id, isFraud));
    td.append(button);
  }
  const error = verdictErrors.get(id);
  if (error) {
    const note = document.createElement("span");
    note.className = "verdict-error";
    note.setAttribute("role", "alert");
    note.textContent = error;
    td.append(note);
  }
  return td;
}

async function judge(id, isFraud) {
  let error = "";
  try {
    const response = await fetch(urls.verdict(id), {
      method: "POST",
      headers: withKey({ "Content-Type": "application/json" }),
      body: JSON.stringify({ is_fraud: isFraud }),
    });
    const answer = await response.json().catch(() => ({}));
    if (response.ok && !["refused", "unknown"].includes(answer.status)) {
      verdicts.set(id, answer.verdict);
    } else if (response.status === 401 || response.status === 403) {
      error = "needs a key with the label role";
    } else {
      error = answer.status ? `not taken: ${answer.status}` : `refused (${response.status})`;
    }
  } catch {
    error = "could not reach the service";
  }
  if (error) verdictErrors.set(id, error);
  else verdictErrors.delete(id);
  requestAnimationFrame(renderFeed);
}

function renderFeed() {
  renderQueued = false;
  const table = byId("alert-feed");
  table.tBodies[0].replaceChildren(...feed.map(alertRow));
  table.dataset.streamed = streamed;
  fresh = new Set();
  byId("feed-empty").hidden = feed.length > 0;
  const which = feed.length === FEED_ROWS
    ? `the last ${FEED_ROWS}`
    : `${feed.length} alert${feed.length === 1 ? "" : "s"}`;
  byId("feed-count").textContent = feed.length
    ? `${which}, newest first · ${integer.format(streamed)} arrived since this page opened`
    : "newest first";
}

function setConnection(state, text) {
  byId("connection").dataset.state = state;
  byId("connection-text").textContent = text;
}

// One Server-Sent Event (lines up to a blank line): an alert, or a comment to skip.
function onEvent(block) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    const [field, ...rest] = line.split(":");
    const value = rest.join(":").replace(/^ /, "");
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }
  if (name === "alert" && data.length) receive([JSON.parse(data.join("\n"))], true);
}

const refusal = (status) =>
  status === 401 || status === 403 ? `Needs a key the API knows (${status})` : `Refused (${status})`;

// The stream is read with fetch rather than EventSource, which cannot send the key. It is
// opened again a few seconds after it ends, and at once when the key changes.
let stream = null;
async function connect() {
  if (stream) stream.abort();
  const mine = new AbortController();
  stream = mine;
  let reopen = true;
  try {
    const response = await fetch(urls.stream, {
      headers: withKey({ Accept: "text/event-stream" }),
      cache: "no-store",
      signal: mine.signal,
    });
    if (!response.ok) {
      setConnection("error", refusal(response.status));
      reopen = response.status !== 401 && response.status !== 403; // until a key is typed
    } else {
      setConnection("live", "Live");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          onEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
      setConnection("error", "Reconnecting…");
    }
  } catch {
    if (mine.signal.aborted) return; // replaced by a newer connection
    setConnection("error", "Reconnecting…");
  }
  if (reopen && stream === mine) setTimeout(() => stream === mine && connect(), RECONNECT_MS);
}

async function loadRecent() {
  try {
    const response = await fetch(`${urls.alerts}?limit=${FEED_ROWS}`, {
      headers: withKey(),
      cache: "no-store",
    });
    if (response.ok) receive(await response.json(), false);
  } catch {
    // The stream brings the next ones; the page is still useful without the backlog.
  }
  if (!feed.length) renderFeed();
}

// ---- SVG charts -------------------------------------------------------------------------

// Clears a chart but its <desc>, sizes its coordinates to its box, and says what it shows.
function canvas(id, description) {
  const svg = byId(id);
  const desc = svg.querySelector("desc");
  desc.textContent = description;
  svg.replaceChildren(desc);
  const width = Math.max(svg.clientWidth, 200);
  const height = Math.max(svg.clientHeight, 120);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  return { svg, width, height };
}

function emptyChart(chart, text) {
  el("text", { x: chart.width / 2, y: chart.height / 2, "text-anchor": "middle", class: "empty" },
    chart.svg, text);
}

function niceCeiling(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((step) => step * power).find((step) => step >= value);
}

const MARGIN = { left: 42, right: 10, top: 16, bottom: 26 };

function scoreChart(distribution) {
  // The server counts the scores that alert (strictly above the threshold) in each bin: the
  // threshold may fall inside a bin, and a score exactly at it shares a bin with ones above.
  const { bins, scores, threshold } = distribution;
  const share = scores ? (100 * distribution.above_threshold) / scores : 0;
  byId("score-chart-note").textContent =
    `last ${integer.format(scores)} scores · alert threshold ${threshold.toFixed(2)}`;
  const chart = canvas("score-chart",
    `${integer.format(scores)} recent scores, ${share.toFixed(1)}% above the threshold ` +
    `${threshold.toFixed(2)}; counts on a logarithmic scale.`);
  if (!scores) return emptyChart(chart, "No scores yet");
  const { svg, width, height } = chart;
  const plotWidth = width - MARGIN.left - MARGIN.right;
  const plotHeight = height - MARGIN.top - MARGIN.bottom;
  const bottom = MARGIN.top + plotHeight;
  // Nearly every transaction scores near 0: a log scale keeps the alerting tail visible.
  const top = Math.log10(1 + Math.max(...bins.map((bin) => bin.count)));
  const y = (count) => bottom - (plotHeight * Math.log10(1 + count)) / top;
  const x = (score) => MARGIN.left + score * plotWidth;

  for (let tick = 1; tick <= 10 ** top; tick *= 10) {
    el("line", { x1: MARGIN.left, x2: width - MARGIN.right, y1: y(tick), y2: y(tick), class: "gridline" }, svg);
    el("text", { x: MARGIN.left - 6, y: y(tick) + 4, "text-anchor": "end" }, svg, compact(tick));
  }
  for (const bin of bins) {
    if (!bin.count) continue;
    const left = x(bin.lower) + 1;
    const barWidth = Math.max(x(bin.upper) - left - 1, 1);
    const title = `${bin.lower.toFixed(2)}–${bin.upper.toFixed(2)}: ${integer.format(bin.count)} scores` +
      (bin.above_threshold ? `, ${integer.format(bin.above_threshold)} above the threshold` : "");
    // A bin's alerting scores are drawn over its bar from the base, to their own height.
    for (const [count, kind] of [[bin.count, "bar"], [bin.above_threshold, "bar over"]]) {
      if (!count) continue;
      const bar = el("rect", {
        x: left, width: barWidth, y: y(count), height: bottom - y(count), class: kind,
      }, svg);
      el("title", {}, bar, title);
    }
  }
  el("line", { x1: MARGIN.left, x2: width - MARGIN.right, y1: bottom, y2: bottom, class: "axis" }, svg);
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    el("text", { x: x(tick), y: bottom + 16, "text-anchor": "middle" }, svg, `${tick}`);
  }
  const at = x(threshold);
  const right = threshold <= 0.6; // the label goes where there is room beside the line
  el("line", { x1: at, x2: at, y1: MARGIN.top - 6, y2: bottom, class: "threshold" }, svg);
  el("text", {
    x: right ? at + 5 : at - 5, y: MARGIN.top + 2, class: "threshold-label",
    "text-anchor": right ? "start" : "end",
  }, svg, `threshold ${threshold.toFixed(2)} · ${share.toFixed(1)}% above`);
}

function rateChart(rate) {
  const observed = rate.minutes.filter((minute) => minute.alerts !== null);
  byId("rate-chart-note").textContent = observed.length < rate.minutes.length
    ? `last ${rate.minutes.length} minutes · shaded: before the service started`
    : `last ${rate.minutes.length} minutes, oldest on the left`;
  const chart = canvas("rate-chart",
    rate.per_minute === null
      ? "No minute observed yet."
      : `${fixed(rate.per_minute, 1)} alerts a minute on average over the last ${rate.minutes.length} minutes.`);
  if (!observed.length) return emptyChart(chart, "No minute observed yet");
  const { svg, width, height } = chart;
  const plotWidth = width - MARGIN.left - MARGIN.right;
  const plotHeight = height - MARGIN.top - MARGIN.bottom;
  const bottom = MARGIN.top + plotHeight;
  const ceiling = niceCeiling(Math.max(...observed.map((minute) => minute.alerts)));
  const y = (count) => bottom - (plotHeight * count) / ceiling;
  const slot = plotWidth / rate.minutes.length;

  // Alerts come whole: a tick halfway up only when it falls on a whole number.
  const ticks = ceiling % 2 ? [0, ceiling] : [0, ceiling / 2, ceiling];
  for (const tick of ticks) {
    el("line", { x1: MARGIN.left, x2: width - MARGIN.right, y1: y(tick), y2: y(tick), class: "gridline" }, svg);
    el("text", { x: MARGIN.left - 6, y: y(tick) + 4, "text-anchor": "end" }, svg, compact(tick));
  }
  rate.minutes.forEach((minute, index) => {
    const left = MARGIN.left + index * slot + 2;
    const start = shortClock.format(new Date(millis(minute.start)));
    if (minute.alerts === null) {
      const unseen = el("rect", { x: left, width: slot - 4, y: MARGIN.top, height: plotHeight, fill: "#f8fafc" }, svg);
      el("title", {}, unseen, `${start}: before the service started`);
      return;
    }
    const bar = el("rect", {
      x: left, width: slot - 4, y: y(minute.alerts), height: bottom - y(minute.alerts), class: "bar rate",
    }, svg);
    el("title", {}, bar, `${start}: ${integer.format(minute.alerts)} alerts`);
  });
  el("line", { x1: MARGIN.left, x2: width - MARGIN.right, y1: bottom, y2: bottom, class: "axis" }, svg);
  const count = rate.minutes.length;
  for (const ago of [count, Math.round((2 * count) / 3), Math.round(count / 3), 0]) {
    const label = ago ? `−${ago} min` : "now";
    el("text", { x: MARGIN.left + (count - ago) * slot, y: bottom + 16, "text-anchor": ago ? (ago === count ? "start" : "middle") : "end" },
      svg, label);
  }
}

// One series per serving model: the champion's (whichever model served at the time: a
// promotion carries its window over) and each challenger's since it began shadowing.
function qualitySeries(models, now) {
  return models.map((model, index) => ({
    model,
    className: index ? `line challenger c${(index - 1) % 4}` : "line champion",
    // The samples, then the figure as of now, so that the line ends where the table stands.
    points: [...model.history, { at: now, rolling_average_precision: model.rolling_average_precision }]
      .map((sample) => ({ at: millis(sample.at), value: sample.rolling_average_precision })),
  }));
}

const seriesLabel = (model) => (model.role === "champion" ? `champion · ${model.name}` : `${model.name} · ${model.learner}`);

function qualityLegend(series) {
  byId("quality-legend").replaceChildren(...series.map(({ model, className }) => {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = `swatch ${className}`;
    swatch.setAttribute("aria-hidden", "true");
    const value = document.createElement("strong");
    value.textContent = fixed(model.rolling_average_precision, 3);
    item.append(swatch, `${seriesLabel(model)} `, value);
    item.dataset.model = model.name;
    return item;
  }));
}

function qualityChart(models, now) {
  const series = qualitySeries(models, now);
  const champion = models[0];
  const challengers = models.length - 1;
  byId("quality-chart-note").textContent = challengers
    ? `champion and ${challengers} challenger${challengers === 1 ? "" : "s"}, on the same matured labels`
    : `${champion.name}, over ${integer.format(champion.matured_labels)} matured labels, sampled every few seconds`;
  qualityLegend(series);
  const known = series.flatMap((one) => one.points.filter((point) => point.value !== null));
  const chart = canvas("quality-chart",
    known.length
      ? "Rolling average precision now: " +
        series.map(({ model }) => `${seriesLabel(model)} ${fixed(model.rolling_average_precision, 3)}`).join("; ") + "."
      : "No matured labels yet.");
  if (!known.length) return emptyChart(chart, "Waiting for matured labels…");
  const { svg, width, height } = chart;
  const plotWidth = width - MARGIN.left - MARGIN.right - 34;
  const plotHeight = height - MARGIN.top - MARGIN.bottom;
  const bottom = MARGIN.top + plotHeight;
  // At least two minutes wide, so a young history grows from the right instead of stretching.
  const end = millis(now);
  const first = Math.min(...series.map((one) => one.points[0].at), end - 2 * 60 * 1000);
  const span = end - first;
  const x = (at) => MARGIN.left + (plotWidth * (at - first)) / span;
  const y = (value) => bottom - plotHeight * value;

  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    el("line", { x1: MARGIN.left, x2: MARGIN.left + plotWidth, y1: y(tick), y2: y(tick), class: tick ? "gridline" : "axis" }, svg);
    el("text", { x: MARGIN.left - 6, y: y(tick) + 4, "text-anchor": "end" }, svg, tick.toFixed(2));
  }
  // Challengers first, so that the champion's line is drawn on top of theirs.
  for (const { model, className, points } of [...series].reverse()) {
    // A sample without a figure (no label matured yet) breaks the line rather than dropping to 0.
    let line = "";
    let area = "";
    let run = [];
    const flush = () => {
      if (!run.length) return;
      line += run.map((p, i) => `${i ? "L" : "M"}${x(p.at).toFixed(1)},${y(p.value).toFixed(1)}`).join("");
      area += `M${x(run[0].at).toFixed(1)},${bottom}` +
        run.map((p) => `L${x(p.at).toFixed(1)},${y(p.value).toFixed(1)}`).join("") +
        `L${x(run[run.length - 1].at).toFixed(1)},${bottom}Z`;
      run = [];
    };
    for (const point of points) {
      if (point.value === null) flush();
      else run.push(point);
    }
    flush();
    const last = points.filter((point) => point.value !== null).pop();
    if (!last) continue;
    const champion = model.role === "champion";
    if (champion) el("path", { d: area, class: "area" }, svg);
    const path = el("path", { d: line, class: className, "data-model": model.name }, svg);
    el("title", {}, path, `${seriesLabel(model)}: ${last.value.toFixed(3)}`);
    el("circle", { cx: x(last.at), cy: y(last.value), r: champion ? 3.5 : 3, class: `point ${className}` }, svg);
    if (champion) {
      el("text", { x: x(last.at) + 6, y: y(last.value) + 4, class: "threshold-label" }, svg, last.value.toFixed(3));
    }
  }
  el("text", { x: MARGIN.left, y: bottom + 16, "text-anchor": "start" }, svg, shortClock.format(new Date(first)));
  el("text", { x: MARGIN.left + plotWidth, y: bottom + 16, "text-anchor": "end" }, svg,
    shortClock.format(new Date(end)));
}

// ---- Figures ----------------------------------------------------------------------------

let latest = null;

function render(data) {
  latest = data;
  const model = data.models[0];
  byId("model-name").textContent = model.name;
  byId("model-version").textContent = model.version;
  byId("model-labels").textContent = integer.format(model.labels_learned);
  const rate = data.alert_rate;
  byId("kpi-rate").textContent = fixed(rate.per_minute, 1);
  byId("kpi-rate-note").textContent = rate.observed_minutes < rate.minutes.length
    ? `alerts a minute, over the last ${duration(rate.observed_minutes * 60)}`
    : `alerts a minute, last ${rate.minutes.length} minutes`;
  byId("kpi-alerts").textContent = integer.format(data.alert_rate.total);
  byId("kpi-scored").textContent = integer.format(data.transactions_scored);
  byId("kpi-threshold").textContent =
    `alert threshold ${data.score_distribution.threshold.toFixed(2)}`;
  byId("kpi-ap").textContent = fixed(model.rolling_average_precision, 3);
  byId("kpi-ap-note").textContent = model.matured_labels
    ? `over ${integer.format(model.matured_labels)} matured labels`
    : "waiting for matured labels";
  scoreChart(data.score_distribution);
  rateChart(data.alert_rate);
  qualityChart(data.models, data.at);
}

async function loadDashboard() {
  try {
    const response = await fetch(urls.dashboard, { headers: withKey(), cache: "no-store" });
    if (response.ok) {
      render(await response.json());
    } else if (response.status === 503) {
      byId("model-version").textContent = "loading…";
    } else if (response.status === 401 || response.status === 403) {
      byId("model-version").textContent = "needs a key";
    }
  } catch {
    // The server is restarting or unreachable: keep the last figures and try again.
  }
}

let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => latest && render(latest), 150);
});

const feedBox = byId("feed-scroll");
feedBox.addEventListener("pointerenter", () => hold(true));
feedBox.addEventListener("pointerleave", () => hold(false));

document.addEventListener(MODELS_CHANGED, loadDashboard);
document.addEventListener(KEY_CHANGED, () => {
  connect();
  loadRecent();
  loadDashboard();
});

connect();
loadRecent();
every(loadDashboard);

