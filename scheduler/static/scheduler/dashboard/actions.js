/*
 * The buttons of the dashboard and the task page: Run now, Pause, Resume, Retry. They post to
 * the API and say what happened in a toast (lib/toasts.js).
 */
import { fillId, postJson } from "../lib/http.js";
import { notify } from "../lib/toasts.js";

const WHAT = { run: "run it", enable: "resume it", disable: "pause it", retry: "retry it" };

function actionUrl(api, button) {
  const action = button.dataset.action;
  return action === "retry"
    ? `${api}tasks/${encodeURIComponent(button.dataset.taskId)}/retry/`
    : `${api}schedules/${encodeURIComponent(button.dataset.id)}/${action}/`;
}

function done(config, action, body) {
  if (action === "run" || action === "retry") {
    notify(`Queued task ${String(body.task_id).slice(0, 8)}…`, "info", {
      href: fillId(config.task_url, body.task_id),
      text: "details",
    });
  } else {
    notify(action === "enable" ? `Resumed ${body.name}.` : `Paused ${body.name}.`);
  }
}

/** Handles every button[data-action] of the page; `afterAction(action, body)` once done. */
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
      afterAction(action, body);
    } catch (error) {
      notify(`Could not ${WHAT[action] || action}: ${error.message}`, "error");
    } finally {
      button.disabled = false;
    }
  });
}
