// fraudstream dashboard, the drift panel: the latest day against its reference window
// (GET /v1/drift): whether the alarm is on, the day's novel card-days, each watched feature's
// PSI and the score's, and the cells of binned features holding more cards than the reference
// predicts.
// Every value from the API is written as text, never markup.

import { KEY_CHANGED, byId, cell, fixed, integer, readFigures } from "./shared.js";

const URL = document.body.dataset.driftUrl;
// A report comes once an event-time day has ended; until the first, ask more often.
const REFRESH_MS = 30_000;
const WAITING_MS = 5_000;

const bound = (value) => (value === null ? "" : `${Number(value.toPrecision(4))}`);

function where(found) {
  return found.features
    .map((name, i) => {
      const low = bound(found.lower[i]);
      const high = bound(found.upper[i]);
      if (low && high) return `${low} ≤ ${name} < ${high}`;
      return low ? `${name} ≥ ${low}` : `${name} < ${high}`;
    })
    .join(", ");
}

function show(answer) {
  const badge = byId("drift-alarm");
  badge.dataset.alarm = answer.alarm ? "on" : "off";
  badge.textContent = answer.day === null ? "no report yet" : answer.alarm ? "ALARM" : "quiet";
  const novelty = byId("drift-novelty");
  const novel = answer.novel_card_days;
  novelty.dataset.past = String(
    novel !== null && answer.novelty_threshold !== null &&
      answer.novelty_surprise > answer.novelty_threshold,
  );
  novelty.textContent = novel === null ? "" :
    `novel card-days: ${integer.format(novel)} of ${integer.format(answer.card_days)} ` +
    `(${fixed(answer.novelty_expected, 1)} expected), surprise ${fixed(answer.novelty_surprise, 1)}` +
    (answer.novelty_threshold === null ? "" : `; alarm past ${answer.novelty_threshold}`);
  const features = [...answer.features].sort((a, b) => (b.psi ?? -1) - (a.psi ?? -1));
  const rows = [["score", answer.score_psi], ...features.map((f) => [f.feature, f.psi])].map(
    ([name, psi]) => {
      const row = document.createElement("tr");
      cell(row, name);
      cell(row, fixed(psi, 3), psi !== null && psi > 0.25 ? "num large" : "num");
      return row;
    },
  );
  byId("drift-features").tBodies[0].replaceChildren(...(answer.day === null ? [] : rows));
  const cells = answer.cells.map((found) => {
    const row = document.createElement("tr");
    if (answer.threshold !== null && found.surprise > answer.threshold) row.className = "past";
    cell(row, where(found));
    cell(row, integer.format(found.cards), "num");
    cell(row, fixed(found.expected, 1), "num");
    cell(row, fixed(found.surprise, 1), "num");
    return row;
  });
  byId("drift-cells").tBodies[0].replaceChildren(...cells);
}

let reported = false;

async function load() {
  const note = byId("drift-note");
  const answer = await readFigures(URL, note);
  if (answer === null) return;
  reported = answer.day !== null;
  if (!answer.watched) note.textContent = "not watched (FRAUDSTREAM_DRIFT_WATCH is off)";
  else if (!reported) note.textContent = "no report yet: one comes once enough days have been scored";
  else {
    note.textContent =
      `${answer.day} (${integer.format(answer.transactions)} transactions) against ` +
      `${answer.reference_start} to ${answer.reference_end}; a cell raises the alarm past a surprise of ${answer.threshold}`;
  }
  show(answer);
}

async function loop() {
  await load();
  setTimeout(loop, reported ? REFRESH_MS : WAITING_MS);
}

document.addEventListener(KEY_CHANGED, load);
loop();
