/*
 * The backfills' admin pages (templates/admin/scheduler/backfill/): each backfill's progress bar
 * and status kept current from its `backfill.progress` and `backfill.finished` events on
 * /ws/events/ (scheduler/services/backfills.py sends one after each chunk of runs it publishes).
 *
 * Data only ever reaches the DOM as text and attributes: never as HTML.
 */
import { readJson } from "./lib/dom.js";
import { liveConnection } from "./lib/live.js";

const STATUS_LABELS = { running: "Running", done: "Done", failed: "Failed" };
// Per backfill, how far what is shown has got: an older event arriving late changes nothing.
const shown = new Map();

function ahead(data) {
  const done = data.published + data.existing;
  const before = shown.get(data.id);
  const over = data.status !== "running";
  if (before && (done < before.done || (before.over && !over))) return false;
  shown.set(data.id, { done, over });
  return true;
}

function show(data) {
  if (typeof data?.id !== "number" || !ahead(data)) return;
  const done = data.published + data.existing;
  const made = data.existing ? `, ${data.existing} made before` : "";
  for (const node of document.querySelectorAll(`[data-backfill="${data.id}"]`)) {
    const bar = node.querySelector("progress");
    if (bar) {
      bar.max = Math.max(data.total, 1);
      bar.value = done;
    }
    const words = node.querySelector('[data-part="words"]');
    if (words) words.textContent = `${done}/${data.total} runs${made}`;
  }
  for (const node of document.querySelectorAll(`[data-backfill-status="${data.id}"]`)) {
    node.textContent = STATUS_LABELS[data.status] || data.status;
  }
}

function backfillsPage(config) {
  const object = config.backfill ? `object=backfill:${encodeURIComponent(config.backfill)}&` : "";
  liveConnection({
    path: config.ws_path,
    query: `${object}type=backfill.*&backfill=50`,
    onMessage(message) {
      const events = message.kind === "backfill" ? message.events : message.kind === "event" ? [message.event] : [];
      for (const event of events) show(event.data?.data);
    },
  });
}

const config = readJson("backfills-config");
if (config) backfillsPage(config);
