// fraudstream dashboard, the rules panel: the rule set in force beside the model (GET /v1/rules)
// as an editable draft, saved whole as a new version (PUT /v1/rules, admin), and the versions
// kept with a roll back to each (POST /v1/rules/rollback/{version}). A rule the grammar refuses
// is said next to its field. Every value from the API is written as text, never markup.

import { KEY_CHANGED, api, byId, cell, every } from "./shared.js";

const URL = document.body.dataset.rulesUrl;
const ACTIONS = ["alert", "review", "allow"];
const stamp = new Intl.DateTimeFormat("en-GB", {
  day: "2-digit", month: "short", hour: "2-digit", minute: "2-digit", hour12: false,
});

const panel = {
  version: null, // the version the draft started from
  draft: [], // [{name, condition, action, enabled}]
  dirty: false, // the draft differs from the set in force: polling leaves it alone
  errors: {}, // field errors of the last save, by "index.field"
  busy: false,
};

// "amount > 1000 -> review" as its condition and action: the panel edits them apart.
function split(rule) {
  const at = rule.text.lastIndexOf("->");
  if (at < 0) return { name: rule.name, condition: rule.text, action: "review", enabled: rule.enabled };
  const action = rule.text.slice(at + 2).trim();
  return {
    name: rule.name,
    condition: rule.text.slice(0, at).trim(),
    action: ACTIONS.includes(action) ? action : "review",
    enabled: rule.enabled,
  };
}

const body = () => ({
  rules: panel.draft.map((rule) => ({
    name: rule.name, text: `${rule.condition} -> ${rule.action}`, enabled: rule.enabled,
  })),
});

function say(text, kind) {
  const message = byId("rules-message");
  message.textContent = text;
  message.dataset.kind = kind;
  message.hidden = !text;
}

function input(value, label, onInput, error) {
  const field = document.createElement("input");
  field.type = "text";
  field.value = value;
  field.spellcheck = false;
  field.setAttribute("aria-label", label);
  field.addEventListener("input", () => onInput(field.value));
  if (error) field.setAttribute("aria-invalid", "true");
  return field;
}

function fieldError(td, error) {
  if (!error) return;
  const note = document.createElement("span");
  note.className = "field-error";
  note.setAttribute("role", "alert");
  note.textContent = error;
  td.append(note);
}

function edited() {
  panel.dirty = true;
  byId("rules-save").disabled = panel.busy;
  byId("rules-discard").disabled = panel.busy;
}

function ruleRow(rule, index) {
  const row = document.createElement("tr");
  row.dataset.rule = rule.name;
  const nameCell = cell(row, "");
  nameCell.append(input(rule.name, `Rule ${index + 1} name`, (v) => { rule.name = v; edited(); },
    panel.errors[`${index}.name`]));
  fieldError(nameCell, panel.errors[`${index}.name`]);
  const textCell = cell(row, "", "rule-text");
  textCell.append(input(rule.condition, `Rule ${index + 1} condition`,
    (v) => { rule.condition = v; edited(); }, panel.errors[`${index}.text`]));
  fieldError(textCell, panel.errors[`${index}.text`]);
  const actionCell = cell(row, "");
  const select = document.createElement("select");
  select.setAttribute("aria-label", `Rule ${index + 1} action`);
  for (const action of ACTIONS) {
    const option = document.createElement("option");
    option.value = action;
    option.textContent = action;
    option.selected = action === rule.action;
    select.append(option);
  }
  select.addEventListener("change", () => { rule.action = select.value; edited(); });
  actionCell.append(select);
  const enabledCell = cell(row, "");
  const box = document.createElement("input");
  box.type = "checkbox";
  box.checked = rule.enabled;
  box.setAttribute("aria-label", `Rule ${index + 1} enabled`);
  box.addEventListener("change", () => { rule.enabled = box.checked; edited(); });
  enabledCell.append(box);
  const actions = cell(row, "", "actions");
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "button small danger-outline";
  remove.textContent = "Delete";
  remove.addEventListener("click", () => {
    panel.draft.splice(index, 1);
    panel.errors = {};
    edited();
    render();
  });
  actions.append(remove);
  return row;
}

function render() {
  byId("rules-table").tBodies[0].replaceChildren(...panel.draft.map(ruleRow));
  byId("rules-empty").hidden = panel.draft.length > 0;
  byId("rules-save").disabled = panel.busy || !panel.dirty;
  byId("rules-discard").disabled = panel.busy || !panel.dirty;
  const setError = panel.errors.set;
  byId("rules-set-error").textContent = setError || "";
  byId("rules-set-error").hidden = !setError;
}

function versionRow(record) {
  const row = document.createElement("tr");
  row.dataset.version = record.version;
  cell(row, `${record.version}`, "num");
  cell(row, record.written_at ? stamp.format(new Date(record.written_at)) : "–");
  cell(row, `${record.rules.length}`, "num");
  cell(row, record.rules.map((rule) => rule.name).join(", ") || "(none)");
  const actions = cell(row, "", "actions");
  if (record.version !== panel.version) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "button small quiet";
    button.textContent = "Roll back";
    button.disabled = panel.busy;
    button.addEventListener("click", () => rollback(record.version));
    actions.append(button);
  } else {
    const badge = document.createElement("span");
    badge.className = "badge champion";
    badge.textContent = "in force";
    actions.append(badge);
  }
  return row;
}

async function loadVersions() {
  try {
    const versions = await api("GET", `${URL}/versions`);
    byId("rules-versions").tBodies[0].replaceChildren(...versions.map(versionRow));
  } catch {
    // The set in force said what went wrong already.
  }
}

async function load(force = false) {
  if (panel.dirty && !force) return;
  const note = byId("rules-note");
  try {
    const inForce = await api("GET", URL);
    if (!force && panel.dirty) return;
    panel.version = inForce.version;
    panel.draft = inForce.rules.map(split);
    panel.dirty = false;
    panel.errors = {};
    note.textContent = inForce.version
      ? `version ${inForce.version}, written ${stamp.format(new Date(inForce.written_at))} ` +
        `by key ${inForce.key_id}`
      : "no rule set written yet: the model alone decides";
    render();
    await loadVersions();
  } catch (error) {
    note.textContent = error.status === 401 || error.status === 403
      ? `needs a key the API knows (${error.status})`
      : `not available (${typeof error.detail === "string" ? error.detail : error.message})`;
  }
}

// A 422 names the field at fault: ["body", "rules", 2, "text"] goes next to rule 3's condition.
function fieldErrors(detail) {
  const errors = {};
  for (const item of Array.isArray(detail) ? detail : []) {
    const [, , index, field] = item.loc || [];
    if (Number.isInteger(index)) errors[`${index}.${field === "name" ? "name" : "text"}`] = item.msg;
    else errors.set = item.msg;
  }
  return errors;
}

async function change(call, done) {
  panel.busy = true;
  render();
  try {
    const result = await call();
    panel.dirty = false;
    say(done(result), "ok");
    await load(true);
  } catch (error) {
    if (error.status === 422) {
      panel.errors = fieldErrors(error.detail);
      say("The rule set was not saved: see the rule marked below.", "error");
    } else {
      const why = typeof error.detail === "string" ? error.detail : error.message;
      say(`Refused (${error.status || "no answer"}: ${why})`, "error");
    }
  } finally {
    panel.busy = false;
    render();
  }
}

function save() {
  change(() => api("PUT", URL, body()),
    (result) => `Version ${result.version} is in force, applied by every scorer within a second.`);
}

function rollback(version) {
  change(() => api("POST", `${URL}/rollback/${encodeURIComponent(version)}`),
    (result) => `The rules of version ${version} are in force again, as version ${result.version}.`);
}

byId("rules-add").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = byId("rule-new-name").value.trim();
  const condition = byId("rule-new-condition").value.trim();
  if (!name || !condition) return;
  panel.draft.push({ name, condition, action: byId("rule-new-action").value, enabled: true });
  byId("rule-new-name").value = "";
  byId("rule-new-condition").value = "";
  panel.errors = {};
  edited();
  render();
});
byId("rules-save").addEventListener("click", save);
byId("rules-discard").addEventListener("click", () => {
  panel.dirty = false;
  say("", "");
  load(true);
});
document.addEventListener(KEY_CHANGED, () => load(true));
every(load);
