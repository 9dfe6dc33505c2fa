/*
 * A task's page (templates/scheduler/task_detail.html): its timeline and state badge kept
 * current from the `/ws/events/` websocket, its Retry button, and its Revoke (queued) or
 * Terminate (running) button, which follows the run's state.
 *
 * Data only ever reaches the DOM as text (textContent, attributes): never as HTML.
 */
import { $, el, readJson } from "./lib/dom.js";
import { duration, oneLine, timeFormats } from "./lib/format.js";
import { liveConnection } from "./lib/live.js";
import { installActions } from "./dashboard/actions.js";
import { runControl, runControlButton, setBadge } from "./dashboard/states.js";

function timelineItem(event, key, at, format) {
  const item = el(
    "li",
    { "data-state": event.state, "data-key": key },
    el("strong", { text: event.type }),
    el("span", { class: "when", text: format.format(at) }),
  );
  if (event.worker) item.append(el("div", { class: "muted mono", text: event.worker }));
  if (event.duration !== null && event.duration !== undefined) {
    item.append(el("div", { class: "muted", text: `took ${duration(event.duration)}` }));
  }
  if (event.message) item.append(el("div", { class: "c-error", title: event.message, text: oneLine(event.message) }));
  return item;
}

function taskPage(config) {
  // The states that end a run: the server's one list (scheduler/protocol.py), from the config.
  const finished = new Set(config.finished_states || []);
  const timeline = $("#timeline");
  const stateBadge = $("#task-state");
  const format = timeFormats(config.timezone).time;
  const seen = new Set(
    [...timeline.querySelectorAll("li[data-type]")].map((li) => `${li.dataset.type}|${Date.parse(li.dataset.at)}`),
  );
  let latest = { at: null, state: stateBadge.dataset.state };
  const wins = (at, state) =>
    latest.at === null || at >= latest.at || (finished.has(state) && !finished.has(latest.state));

  function add(event) {
    const at = Date.parse(event.at);
    const key = `${event.type}|${at}`;
    if (seen.has(key)) return;
    seen.add(key);
    const placeholder = $("li.muted", timeline);
    if (placeholder) placeholder.remove();
    timeline.append(timelineItem(event, key, at, format));
    if (!wins(at, event.state)) return;
    latest = { at, state: event.state };
    stateBadge.dataset.state = event.state;
    setBadge(stateBadge, event.state);
    showControl(event.state);
    if (finished.has(event.state)) $("#task-finished").hidden = false;
  }

  const control = $("#task-control");
  function showControl(state) {
    if (!control) return;
    const shown = $("button[data-action]", control);
    if ((shown ? shown.dataset.action : "") === runControl(state, finished)) return;
    const button = runControlButton(config.task_id, state, finished);
    control.replaceChildren(...(button ? [button] : []));
  }

  installActions(config, () => {});
  const filter = config.task_name ? `task=${encodeURIComponent(config.task_name)}&` : "";
  liveConnection({
    path: config.ws_path,
    query: `${filter}backfill=100`,
    onMessage(message) {
      const events = message.kind === "backfill" ? message.events : message.kind === "event" ? [message.event] : [];
      for (const event of events) if (event.task_id === config.task_id) add(event);
    },
  });
}

const config = readJson("task-config");
if (config) taskPage(config);
