// fraudstream dashboard, the backtest panel: a draft rule (or an alert threshold) typed in, and
// what it would have changed over the last matured days (POST /v1/rules/backtest, admin): the
// model alone beside the model with the draft, what the draft adds or loses, and day by day.
// Every value from the API is written as text, never markup.

import { byId, cell, detailOf, fixed, integer, withKey } from "./shared.js";

const URL = document.body.dataset.backtestUrl;
// A draft made of a number alone is a threshold; anything else is read as a rule.
const THRESHOLD = /^\s*(0(\.\d+)?|1(\.0+)?|\.\d+)\s*$/;

const FIGURES = [
  ["Alerts a day", (f) => fixed(f.alerts_per_day, 1)],
  ["Precision (transactions)", (f) => fixed(f.precision, 3)],
  ["Recall (transactions)", (f) => fixed(f.recall, 3)],
  ["Card precision (card-days)", (f) => fixed(f.card_precision, 3)],
  ["Card recall (card-days)", (f) => fixed(f.card_recall, 3)],
  ["Legit cards bothered a day", (f) => fixed(f.legitimate_cards_bothered_per_day, 1)],
];

function signed(value, digits) {
  if (value === null || value === undefined) return "–";
  const text = value.toFixed(digits);
  return value > 0 ? `+${text}` : text;
}

function say(text, kind) {
  const message = byId("backtest-message");
  message.textContent = text;
  message.dataset.kind = kind;
  message.hidden = !text;
}

function figures(overall) {
  const rows = FIGURES.map(([label, shown]) => {
    const row = document.createElement("tr");
    cell(row, label);
    cell(row, shown(overall.model), "num");
    cell(row, shown(overall.with_draft), "num");
    return row;
  });
  byId("backtest-table").tBodies[0].replaceChildren(...rows);
}

function changes(overall) {
  const change = overall.change;
  const items = [
    ["frauds-added", `${integer.format(change.frauds_added)} frauds added`,
      `on ${integer.format(change.fraud_cards_added)} cards today's model and rules missed`],
    ["frauds-lost", `${integer.format(change.frauds_lost)} frauds lost`,
      `on ${integer.format(change.fraud_cards_lost)} cards today's model and rules caught`],
    ["cards-bothered", `${integer.format(change.legitimate_cards_bothered)} legitimate cards bothered`,
      "that today's model and rules left alone"],
    ["cards-spared", `${integer.format(change.legitimate_cards_spared)} legitimate cards spared`,
      "that today's model and rules alerted"],
  ].map(([key, figure, note]) => {
    const item = document.createElement("li");
    item.dataset.change = key;
    const strong = document.createElement("strong");
    strong.textContent = figure;
    item.append(strong, ` ${note}`);
    return item;
  });
  byId("backtest-changes").replaceChildren(...items);
}

function daily(answer) {
  const rows = answer.daily.map((day) => {
    const row = document.createElement("tr");
    cell(row, day.start.slice(0, 10));
    cell(row, integer.format(day.transactions), "num");
    cell(row, `${integer.format(day.model.alerts)} → ${integer.format(day.with_draft.alerts)}`, "num");
    cell(row, signed(day.with_draft.alerts - day.model.alerts, 0), "num");
    cell(row, `+${day.change.frauds_added} −${day.change.frauds_lost}`, "num");
    cell(row, `+${day.change.legitimate_cards_bothered} −${day.change.legitimate_cards_spared}`, "num");
    return row;
  });
  byId("backtest-daily").tBodies[0].replaceChildren(...rows);
}

function clear() {
  byId("backtest-table").tBodies[0].replaceChildren();
  byId("backtest-daily").tBodies[0].replaceChildren();
  byId("backtest-changes").replaceChildren();
  byId("backtest-results").hidden = true;
}

function shown(answer) {
  const overall = answer.overall;
  if (!overall) {
    clear();
    say("No matured labels yet: they come a label delay after the first transactions.", "ok");
    return;
  }
  const draft = answer.rule === null
    ? `threshold ${answer.threshold}`
    : `the ${answer.action} rule (it matches ${integer.format(answer.matched)} transactions)`;
  byId("backtest-summary").textContent =
    `${integer.format(overall.transactions)} labelled transactions ` +
    `(${integer.format(overall.frauds)} fraud) from ${overall.start.slice(0, 10)} over ` +
    `${overall.days} days: today's model and rules at ${answer.alert_threshold}, and with ${draft}.`;
  figures(overall);
  changes(overall);
  daily(answer);
  byId("backtest-results").hidden = false;
  say("", "ok");
}

async function run(event) {
  event.preventDefault();
  const text = byId("backtest-draft").value.trim();
  if (!text) {
    say("Type a rule, e.g. amount > 1000 -> review, or a threshold such as 0.3.", "error");
    return;
  }
  const days = Number.parseInt(byId("backtest-days").value, 10);
  const body = THRESHOLD.test(text) ? { threshold: Number(text), days } : { rule: text, days };
  const button = byId("backtest-run");
  button.disabled = true;
  say("Backtesting…", "ok");
  try {
    const response = await fetch(URL, {
      method: "POST",
      headers: withKey({ Accept: "application/json", "Content-Type": "application/json" }),
      body: JSON.stringify(body),
      cache: "no-store",
    });
    const answer = await response.json().catch(() => null);
    if (!response.ok) {
      clear();
      say(`Refused (${response.status}: ${detailOf(answer, response.statusText || "refused")})`, "error");
      return;
    }
    shown(answer);
  } catch {
    say("The server did not answer.", "error");
  } finally {
    button.disabled = false;
  }
}

byId("backtest-form").addEventListener("submit", run);
