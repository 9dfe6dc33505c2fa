/*
 * The periodic task form's live preview: as staff edit the form, its values go (debounced) to
 * the admin's preview URL, which answers with what the unsaved schedule would do: the next runs
 * in its zone and in UTC, DST warnings, the policies in words and where the list stops; or,
 * for a value it cannot read, the form's own message for that field.
 *
 * The server renders the first preview into #scheduler-preview; this module redraws it with the
 * same parts and classes (scheduler/admin/schedule_preview.py).
 */

import { el } from "./lib/dom.js";

// Long enough that typing a word sends one request, short enough to feel live.
const DEBOUNCE_MS = 300;

function runItem(run, inUtc) {
  const item = el("li", { class: "scheduler-preview-run" }, run.text);
  if (!inUtc) item.append(el("span", { class: "scheduler-preview-utc", text: ` = ${run.utc_text}` }));
  return item;
}

function previewParts(body) {
  const parts = [];
  const inUtc = body.timezone === "UTC";
  if (body.runs.length) {
    const where = inUtc ? body.timezone : `${body.timezone} and in UTC`;
    parts.push(el("p", { text: `Next runs in ${where}:` }));
    parts.push(el("ol", {}, ...body.runs.map((run) => runItem(run, inUtc))));
  }
  if (body.cutoff) parts.push(el("p", { class: "scheduler-preview-cutoff", text: body.cutoff }));
  if (body.warnings.length) {
    const warnings = body.warnings.map((text) => el("li", { class: "warning", text }));
    parts.push(el("ul", { class: "messagelist" }, ...warnings));
  }
  for (const note of body.notes) parts.push(el("p", { class: "scheduler-preview-note", text: note }));
  if (body.effects.length) {
    const effects = body.effects.map((text) => el("li", { text }));
    parts.push(el("ul", { class: "scheduler-preview-effects" }, ...effects));
  }
  return parts;
}

function errorParts(body, status) {
  if (body && body.errors) {
    const items = Object.entries(body.errors).map(([field, messages]) =>
      el("li", { "data-field": field, text: `${body.labels[field] || field}: ${messages.join(" ")}` }),
    );
    return [el("ul", { class: "errorlist" }, ...items)];
  }
  const detail = body && body.detail ? body.detail : `the server answered ${status}`;
  return [el("ul", { class: "errorlist" }, el("li", { text: `No preview: ${detail}` }))];
}

function start() {
  const script = document.getElementById("scheduler-preview-script");
  const box = document.getElementById("scheduler-preview");
  const form = document.getElementById("periodictask_form");
  if (!script || !box || !form) return;
  const url = script.dataset.url;
  let timer = null;
  let latest = 0;
  let inFlight = null;

  async function refresh() {
    const request = ++latest;
    if (inFlight) inFlight.abort();
    inFlight = new AbortController();
    box.dataset.state = "loading";
    let response;
    let body = null;
    try {
      // The whole form, CSRF token included: the server reads it with the admin's own form.
      response = await fetch(url, {
        method: "POST",
        body: new FormData(form),
        credentials: "same-origin",
        headers: { Accept: "application/json" },
        signal: inFlight.signal,
      });
      body = await response.json().catch(() => null);
    } catch (error) {
      if (error.name === "AbortError") return;
      if (request !== latest) return;
      box.replaceChildren(...errorParts({ detail: String(error.message || error) }, 0));
      box.dataset.state = "failed";
      return;
    }
    // An answer to an older edit arriving late must not replace a newer one.
    if (request !== latest) return;
    if (response.ok && body) {
      box.replaceChildren(...previewParts(body));
      box.dataset.state = "ready";
    } else {
      box.replaceChildren(...errorParts(body, response.status));
      box.dataset.state = response.status === 400 ? "invalid" : "failed";
    }
  }

  const later = () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, DEBOUNCE_MS);
  };
  form.addEventListener("input", later);
  form.addEventListener("change", later);
  // The form may show other values than the saved ones (after a refused save): preview them.
  refresh();
}

start();
