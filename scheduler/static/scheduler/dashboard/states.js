/*
 * A run's states as the dashboard and the task page show them. Which states end a run is not
 * here: it is the server's one list (scheduler/protocol.py), in each page's config.
 */
import { el } from "../lib/dom.js";

const STATE_LABELS = {
  PENDING: "queued",
  RECEIVED: "received",
  STARTED: "running",
  SUCCESS: "success",
  FAILURE: "failed",
  RETRY: "retrying",
  REVOKED: "revoked",
  SKIPPED: "skipped",
  BUFFERED: "buffered",
};

// What the last-hour counters count a task as, by the state of its latest event.
export const CATEGORY = {
  PENDING: "queued",
  RECEIVED: "queued",
  RETRY: "queued",
  BUFFERED: "queued",
  STARTED: "running",
  SUCCESS: "succeeded",
  FAILURE: "failed",
};
export const RANK = { queued: 0, running: 1, succeeded: 2, failed: 2 };

export const stateLabel = (state) =>
  STATE_LABELS[state] || (state ? state.toLowerCase() : "unknown");

export const badge = (state) =>
  el("span", { class: `badge badge-${(state || "").toLowerCase()}`, text: stateLabel(state) });

/** Shows `state` on a badge already in the page. */
export function setBadge(node, state) {
  node.className = `badge badge-${state.toLowerCase()}`;
  node.textContent = stateLabel(state);
}

/** The stop a run in `state` offers: "terminate" while it runs, "revoke" before it has started,
 * "" once it has finished (`finished`: the page's finished states). As the templates'
 * `run_control` filter. */
export function runControl(state, finished) {
  if (!state || finished.has(state)) return "";
  return state === "STARTED" ? "terminate" : "revoke";
}

/** The button of `runControl`, or null when there is none. */
export function runControlButton(taskId, state, finished) {
  const control = runControl(state, finished);
  if (!control) return null;
  const terminate = control === "terminate";
  return el("button", {
    type: "button",
    class: "btn btn-stop",
    "data-action": control,
    "data-task-id": taskId,
    title: terminate ? "stop the running run (SIGTERM)" : "drop the run before it starts",
    text: terminate ? "Terminate" : "Revoke",
  });
}
