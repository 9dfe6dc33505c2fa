/*
 * The buttons of the dashboard and the task page: Run now, Pause, Resume, Retry, and a dead
 * letter's Requeue and Discard. They post to the API and say what happened in a toast
 * (lib/toasts.js).
 */
import { fillId, postJson } from "../lib/http.js";
import { notify } from "../lib/toasts.js";

const WHAT = {
  run: "run it",
  enable: "resume it",
  disable: "pause it",
  resume: "resume it",
  pause: "pause it",
  retry: "retry it",
  requeue: "requeue it",
  discard: "discard it",
};
const DEAD_LETTER_ACTIONS = new Set(["requeue", "discard"]);

function actionUrl(api, button) {
  const action = button.dataset.action;
  if (action === "retry") return `${api}tasks/${encodeURIComponent(button.dataset.taskId)}/retry/`;
  const part = DEAD_LETTER_ACTIONS.has(action) ? "dead-letters" : "schedules";
  return `${api}${part}/${encodeURIComponent(button.dataset.id)}/${action}/`;
}

function done(config, action, body) {
  if (action === "run" || action === "retry" || action === "requeue") {
    notify(`Queued task ${String(body.task_id).slice(0, 8)}…`, "info", {
      href: fillId(config.task_url, body.task_id),
      text: "details",
    });
  } else if (action === "discard") {
    notify(`Discarded the dead letter of ${body.task_name}.`);
  } else {
    const resumed = action === "enable" || action === "resume";
    notify(resumed ? `Resumed ${body.name}.` : `Paused ${body.name}.`);
  }
}

/** Handles every button[data-action] of the page; `afterAction(action, body, button)` once
 * done. */
export function installActions(config, afterAction) {
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    event.stopPropagation();
    const action = button.dataset.action;
    button.disabled = true;
    try {
      const body = await postJson(actionUrl(config.api_root, button));
      done(config, action, body);
      afterAction(action, body, button);
    } catch (error) {
      notify(`Could not ${WHAT[action] || action}: ${error.message}`, "error");
    } finally {
      button.disabled = false;
    }
  });
}
