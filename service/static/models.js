// fraudstream dashboard, the models panel: what serves (GET /v1/models), the registered
// versions, and the admin actions (snapshot, challenger, promotion, rollback, retirement) with
// the API key typed into the page. Every value from the API is written as text, never markup.

import {
  MODELS_CHANGED, api, byId, cell, every, fixed, integer, keyStore, millis,
} from "./shared.js";

const urls = { models: document.body.dataset.modelsUrl };

const stamp = new Intl.DateTimeFormat("en-GB", {
  day: "2-digit", month: "short", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
});
const versionUrl = (version, suffix = "") => `${urls.models}/${encodeURIComponent(version)}${suffix}`;

const panel = {
  data: null, // the last GET /v1/models that answered
  pending: null, // {version, action}: a promotion, rollback or retirement awaiting "Confirm"
  busy: false, // an action is in flight: its buttons are disabled until it answers
  drawn: "", // what the versions table was last drawn from, to redraw only on a change
};

function say(element, text, kind) {
  element.textContent = text;
  element.dataset.kind = kind;
  element.hidden = !text;
}

function showKeyState() {
  byId("admin-key-state").textContent = keyStore.get()
    ? "a key is set for this tab"
    : "no key set";
}

function badge(text, kind) {
  const span = document.createElement("span");
  span.className = `badge ${kind}`;
  span.textContent = text;
  return span;
}

function servingRow(model) {
  const row = document.createElement("tr");
  row.dataset.role = model.role;
  row.dataset.version = model.version;
  cell(row, "", "").append(badge(model.role, model.role));
  cell(row, model.name, "id");
  cell(row, model.version, "id");
  cell(row, model.learner, "");
  cell(row, fixed(model.rolling_average_precision, 3), "num");
  cell(row, fixed(model.rolling_card_precision_at_k, 3), "num").title = `k = ${model.k} cards a day`;
  cell(row, fixed(model.rolling_alert_precision, 3), "num");
  cell(row, integer.format(model.matured_labels), "num");
  return row;
}

function actionButton(text, action, version, kind) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = `button small ${kind || ""}`.trim();
  button.textContent = text;
  button.dataset.action = action;
  button.dataset.version = version;
  button.disabled = panel.busy;
  return button;
}

// What a row's button does: a challenger or a newer version is promoted, an older one is
// rolled back to (versions are numbered in order of registration: m000012 after m000011).
function promotion(version, champion) {
  if (version.status === "challenger" || champion === null || version.version > champion) {
    return { text: "Promote", verb: "Promote" };
  }
  return { text: "Roll back", verb: "Roll back to" };
}

function versionRow(version, champion) {
  const row = document.createElement("tr");
  row.dataset.version = version.version;
  row.dataset.status = version.status;
  cell(row, version.version, "id");
  cell(row, "", "").append(badge(version.status, version.status));
  cell(row, version.learner, "");
  cell(row, stamp.format(new Date(millis(version.created_at))), "time").title = version.created_at;
  cell(row, integer.format(version.labels_learned), "num");
  cell(row, version.reason, "");
  cell(row, version.parent || "–", "id");
  const actions = cell(row, "", "actions");
  if (version.status === "champion") return row;
  const move = promotion(version, champion);
  const pending = panel.pending && panel.pending.version === version.version ? panel.pending : null;
  if (pending) {
    const question = document.createElement("span");
    question.className = "question";
    question.textContent = pending.action === "retire"
      ? `Retire ${version.version}?`
      : `${move.verb} ${version.version}?`;
    actions.append(question,
      actionButton("Confirm", "confirm", version.version, "danger"),
      actionButton("Cancel", "cancel", version.version, "quiet"));
    return row;
  }
  actions.append(actionButton(move.text, "promote", version.version, "primary"));
  if (version.status === "challenger") actions.append(actionButton("Retire", "retire", version.version, "danger-outline"));
  return row;
}

function renderModels() {
  for (const id of ["snapshot-now", "add-challenger"]) byId(id).disabled = panel.busy;
  const data = panel.data;
  if (!data) return;
  // A confirmation waits on a row that is still there (another page may have retired it).
  if (panel.pending && !data.versions.some((item) => item.version === panel.pending.version)) {
    panel.pending = null;
  }
  byId("serving-models").tBodies[0].replaceChildren(...data.models.map(servingRow));
  const k = data.models.length ? data.models[0].k : null;
  byId("serving-cpk").textContent = k === null ? "CP@k" : `CP@${k}`;
  // Redrawn only when something in it changed: a button is not replaced under the pointer.
  const drawn = JSON.stringify([data.champion_version, data.versions, panel.pending, panel.busy]);
  if (drawn !== panel.drawn) {
    panel.drawn = drawn;
    byId("model-versions").tBodies[0].replaceChildren(
      ...data.versions.map((version) => versionRow(version, data.champion_version)));
  }
  byId("model-versions").dataset.champion = data.champion_version || "";
}

async function loadModels() {
  try {
    panel.data = await api("GET", urls.models);
    say(byId("models-access"), "", "");
    byId("models-panel").dataset.stale = "false";
    renderModels();
  } catch (error) {
    // Keep what was read last, marked stale, and say why it cannot be read now.
    byId("models-panel").dataset.stale = panel.data ? "true" : "false";
    const hint = error.status === 401 || error.status === 403 ? " Enter a key the API knows." : "";
    say(byId("models-access"), `The models could not be read (${error.message}).${hint}`, "error");
  }
}

// Runs one admin call, says how it went in the panel, then reads everything afresh.
async function act(label, call, success) {
  panel.busy = true;
  panel.pending = null;
  renderModels();
  try {
    const result = await call();
    say(byId("models-message"), success(result), "ok");
  } catch (error) {
    say(byId("models-message"), `${label} refused (${error.message})`, "error");
  } finally {
    panel.busy = false;
    renderModels();
    document.dispatchEvent(new Event(MODELS_CHANGED));
    await loadModels();
  }
}

function snapshotNow() {
  act("Snapshot", () => api("POST", `${urls.models}/snapshots`),
    (record) => `Registered ${record.version} (${record.reason}): it is the champion pointer now.`);
}

function addChallenger() {
  const learner = byId("challenger-learner").value;
  act(`Adding a ${learner} challenger`, () => api("POST", `${urls.models}/challengers`, { learner }),
    (record) => `${record.version} (${record.learner}) shadows the champion from now on.`);
}

function confirmed(version, action) {
  if (action === "retire") {
    act(`Retiring ${version}`, () => api("DELETE", versionUrl(version)),
      () => `${version} is retired: it no longer shadows the champion.`);
    return;
  }
  const data = panel.data;
  const entry = data && data.versions.find((item) => item.version === version);
  const move = promotion(entry || { version, status: "registered" }, data ? data.champion_version : null);
  const label = move.verb === "Promote" ? `Promoting ${version}` : `Rolling back to ${version}`;
  act(label, () => api("POST", versionUrl(version, "/promote")),
    (result) => `${version} serves from now on; the champion pointer is ${result.champion_version} ` +
      `and its scores name ${result.model_version}.`);
}

// Promotion, rollback and retirement take two clicks: the button, then "Confirm" in its row.
byId("model-versions").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button || button.disabled) return;
  const { action, version } = button.dataset;
  if (action === "promote" || action === "retire") {
    panel.pending = { version, action };
    say(byId("models-message"), "", "");
  } else if (action === "confirm" && panel.pending && panel.pending.version === version) {
    confirmed(version, panel.pending.action);
    return;
  } else {
    panel.pending = null;
  }
  renderModels();
  // The clicked button was replaced: keep the keyboard where the next step is.
  if (panel.pending) byId("model-versions").querySelector('button[data-action="confirm"]')?.focus();
});
byId("snapshot-now").addEventListener("click", snapshotNow);
byId("add-challenger").addEventListener("click", addChallenger);

byId("admin-key-form").addEventListener("submit", (event) => {
  event.preventDefault(); // never a navigation: the key would land in the URL
  keyStore.set(byId("admin-key").value.trim());
  showKeyState();
  say(byId("models-message"), "", "");
  loadModels();
});
byId("admin-key-forget").addEventListener("click", () => {
  keyStore.set("");
  byId("admin-key").value = "";
  showKeyState();
  loadModels();
});

byId("admin-key").value = keyStore.get();
showKeyState();
every(loadModels);
