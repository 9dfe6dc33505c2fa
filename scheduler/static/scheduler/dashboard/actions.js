/*
 * The buttons of the dashboard and the task page: Run now, Pause, Resume, Retry, a dead
 * letter's Requeue and Discard, a run's Revoke and Terminate, and a queue's Pause, Resume and
 * Purge. They post to the API (saying they are the dashboard's, for the audit trail) and say
 * what happened in a toast (lib/toasts.js). What cannot be undone is asked first: a revoke or a
 * terminate is confirmed, a purge needs the queue's name typed.
 */
import { csrfToken, fillId, postJson } from "../lib/http.js";
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
  revoke: "revoke it",
  terminate: "terminate it",
  "queue-pause": "pause the queue",
  "queue-resume": "resume the queue",
  "queue-purge": "purge the queue",
};
const DEAD_LETTER_ACTIONS = new Set(["requeue", "discard"]);
const SOURCE_HEADERS = { "X-Scheduler-Source": "dashboard" };
const short = (taskId) => `${String(taskId).slice(0, 8)}…`;

function actionUrl(api, button) {
  const action = button.dataset.action;
  const task = encodeURIComponent(button.dataset.taskId || "");
  if (action === "retry") return `${api}tasks/${task}/retry/`;
  if (action === "revoke" || action === "terminate") return `${api}tasks/${task}/revoke/`;
  if (action.startsWith("queue-")) {
    return `${api}queues/${encodeURIComponent(button.dataset.queue)}/${action.slice(6)}/`;
  }
  const part = DEAD_LETTER_ACTIONS.has(action) ? "dead-letters" : "schedules";
  return `${api}${part}/${encodeURIComponent(button.dataset.id)}/${action}/`;
}

/** The request's body, after asking what must be asked; null: the user said no. */
function askedBody(button) {
  const action = button.dataset.action;
  const queue = button.dataset.queue;
  if (action === "revoke") {
    return confirm(`Revoke run ${short(button.dataset.taskId)}? It will not run.`) ? { terminate: false } : null;
  }
  if (action === "terminate") {
    return confirm(`Terminate run ${short(button.dataset.taskId)}? Its process is stopped (SIGTERM).`)
      ? { terminate: true }
      : null;
  }
  if (action === "queue-pause") {
    const note = prompt(`Pause queue ${queue} on every worker? Its runs wait until it is resumed.\nA note (optional):`, "");
    return note === null ? null : { note };
  }
  if (action === "queue-purge") {
    const typed = prompt(`Purge queue ${queue}? Every waiting message is removed for good.\nType the queue's name to confirm:`, "");
    return typed === null ? null : { confirm: typed };
  }
  return {};
}

function queueDone(body, action) {
  const workers = (body.answered || []).length;
  const confirmed = `${workers} worker${workers === 1 ? "" : "s"} confirmed`;
  if (action === "queue-purge") {
    notify(`Purged queue ${body.queue}: ${body.purged} message${body.purged === 1 ? "" : "s"} removed.`);
  } else if (!body.changed) {
    notify(`Queue ${body.name} was ${body.paused ? "paused" : "not paused"} already (${confirmed}).`);
  } else {
    notify(`${body.paused ? "Paused" : "Resumed"} queue ${body.name} (${confirmed}).`);
  }
}

function done(config, action, body) {
  if (action === "run" || action === "retry" || action === "requeue") {
    notify(`Queued task ${short(body.task_id)}`, "info", {
      href: fillId(config.task_url, body.task_id),
      text: "details",
    });
  } else if (action === "revoke" || action === "terminate") {
    const what = body.periodic_task_name || body.task_name || short(body.task_id);
    notify(`Asked the workers to ${action === "terminate" ? "stop" : "drop"} ${what}.`, "info", {
      href: fillId(config.task_url, body.task_id),
      text: "details",
    });
  } else if (action.startsWith("queue-")) {
    queueDone(body, action);
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
    const data = askedBody(button);
    if (data === null) return;
    button.disabled = true;
    try {
      const body = await postJson(actionUrl(config.api_root, button), data, csrfToken(), SOURCE_HEADERS);
      done(config, action, body);
      afterAction(action, body, button);
    } catch (error) {
      notify(`Could not ${WHAT[action] || action}: ${error.message}`, "error");
    } finally {
      button.disabled = false;
    }
  });
}
