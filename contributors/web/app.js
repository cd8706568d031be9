// The contributor page: loads the session from the provider, builds the grid for its table,
// checks the cells against the schema, and on submit shares and seals every value in the
// browser and posts only the sealed boxes; shows the receipt or the provider's error.
import { createGrid } from "./grid.js";
import { checkTable, columnKind } from "./schema.js";
import { checkSessionSafety, sealSubmission } from "./seal.js";
import { readTableFile } from "./tabular_text.js";

const PROBLEMS_LISTED = 8;
const byId = (id) => document.getElementById(id);

/** Shows a message in one of the page's message boxes (kind: "error", "info" or "" to hide). */
function say(box, kind, text) {
  const element = byId(box);
  element.textContent = text;
  element.className = kind ? `message ${kind}` : "message hidden";
}

/** Fetches JSON; an HTTP error becomes an Error carrying the provider's one-line message. */
async function fetchJson(url, options) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (error) {
    throw new Error(`the server could not be reached (${error.message})`);
  }
  let body = null;
  try { body = await response.json(); } catch { /* not JSON: reported below */ }
  if (!response.ok) {
    throw new Error(body?.error ?? `the server answered ${response.status} ${response.statusText}`);
  }
  if (body === null) throw new Error("the server's answer was not JSON");
  return body;
}

function describeColumns(columns) {
  const list = byId("column-help");
  list.replaceChildren(...columns.map((column) => {
    const item = document.createElement("li");
    const name = document.createElement("strong");
    name.textContent = column.name;
    const kind = columnKind(column).kind;
    const detail = kind === "category" ? `one of ${column.values.join(", ")}`
      : [kind === "int" ? "whole number" : kind === "bool" ? "yes or no" : "number",
         column.min !== undefined ? `min ${column.min}` : "",
         column.max !== undefined ? `max ${column.max}` : ""].filter(Boolean).join(", ");
    item.append(name, `: ${detail}`);
    return item;
  }));
}

function showStatus(session) {
  byId("session-name").textContent = session.name;
  byId("table-name").textContent = session.table.name;
  const status = byId("session-status");
  status.textContent = session.status;
  status.className = `badge status-${session.status}`;
  if (session.status !== "open") {
    say("session-message", "info", `This session is ${session.status}: submissions are `
        + "accepted only while it is open. You can prepare your data now and reload this page "
        + "to submit once it is open.");
  }
}

/** The page's state after each change of the grid: the check of the table and the summary. */
function refreshCheck(state) {
  state.check = checkTable(state.session.table.columns, state.grid.getRows());
  const { rows, problems, blankRows } = state.check;
  const summary = byId("check-summary");
  const list = byId("problem-list");
  list.replaceChildren(...problems.slice(0, PROBLEMS_LISTED).map((p) => {
    const item = document.createElement("li");
    item.textContent = `Row ${p.position}, ${p.column}: ${p.message}`;
    return item;
  }));
  if (problems.length > PROBLEMS_LISTED) {
    const more = document.createElement("li");
    more.textContent = `... and ${problems.length - PROBLEMS_LISTED} more`;
    list.append(more);
  }
  const ignored = blankRows ? ` (${blankRows} empty rows are ignored)` : "";
  summary.className = problems.length ? "summary bad" : "summary";
  summary.textContent = problems.length
    ? `${problems.length} cell${problems.length > 1 ? "s need" : " needs"} fixing before you `
      + "can submit (highlighted in red; hover a cell for the reason):"
    : rows.length === 0 ? "No rows yet: type, paste or load your data."
    : `${rows.length} row${rows.length === 1 ? "" : "s"} ready to submit${ignored}.`;
  if (problems.length === 0) say("submit-message", "", "");
}

/** Validates, shares, seals and posts the table; shows the receipt or the reason it failed. */
async function submit(state) {
  const code = byId("code").value.trim();
  refreshCheck(state);
  const { rows, problems } = state.check;
  if (!code) return say("submit-message", "error", "Enter your participation code first.");
  if (problems.length) {
    return say("submit-message", "error", `Nothing was sent: fix the ${problems.length} `
               + "highlighted cell(s) first.");
  }
  if (rows.length === 0) return say("submit-message", "error", "Enter at least one row.");
  if (state.session.max_rows && rows.length > state.session.max_rows) {
    return say("submit-message", "error", `Nothing was sent: at most `
               + `${state.session.max_rows} rows are accepted, the table has ${rows.length}.`);
  }
  const button = byId("submit");
  button.disabled = true;
  say("submit-message", "info", "Encrypting and sending ...");
  try {
    const body = await sealSubmission(state.session, code, rows.map((r) => r.values));
    const answer = await fetchJson("api/submit", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    showReceipt(answer.receipt);
    say("submit-message", "", "");
  } catch (error) {
    say("submit-message", "error", `Not submitted: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

function showReceipt(receipt) {
  const when = new Date(receipt.submitted_at);
  const shown = Number.isNaN(when.getTime()) ? receipt.submitted_at
    : when.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  byId("receipt-rows").textContent = String(receipt.rows);
  byId("receipt-time").textContent = shown;
  byId("receipt-id").textContent = String(receipt.submission);
  byId("receipt-replaces").textContent = receipt.replaces === null || receipt.replaces === undefined
    ? "" : `It replaces your earlier submission ${receipt.replaces}, which no longer counts.`;
  byId("receipt").classList.remove("hidden");
}

async function upload(state, input) {
  const file = input.files[0];
  input.value = "";  // choosing the same file again must load it again
  if (!file) return;
  try {
    const rows = await readTableFile(state.session.table.columns, file);
    await state.grid.setRows(rows);
    say("load-message", "info", `Loaded ${rows.length} rows from ${file.name}.`);
  } catch (error) {
    say("load-message", "error", `Could not load the file: ${error.message}.`);
  }
}

async function start() {
  let session;
  try {
    session = await fetchJson("api/session");
    checkSessionSafety(session);
    session.table.columns.forEach(columnKind);
  } catch (error) {
    say("session-message", "error", `This page cannot take submissions: ${error.message}.`);
    return;
  }
  showStatus(session);
  describeColumns(session.table.columns);
  const code = new URLSearchParams(window.location.search).get("code");
  if (code) byId("code").value = code;
  const state = { session, check: null, grid: null };
  state.grid = createGrid(byId("grid"), session.table.columns, {
    onChange: () => refreshCheck(state),
    onPasteError: (message) => say("load-message", message ? "error" : "", message ?? ""),
  });
  byId("file").addEventListener("change", (event) => upload(state, event.target));
  byId("add-rows").addEventListener("click", () => state.grid.addBlankRows(10));
  byId("clear").addEventListener("click", () => state.grid.clear());
  byId("submit").disabled = session.status !== "open";
  byId("submit").addEventListener("click", () => submit(state));
  document.body.dataset.ready = "true";
}

start();
