/*
 * The pools of the workers panel (#workers, drawn by cluster.js): each worker's pool as it
 * answers `inspect stats` (GET /api/workers/), and for who may control workers
 * (`scheduler.control_workers`) its buttons: +1 and −1 process, Autoscale… (a worker started
 * with --autoscale only: the server says so for any other) and Shut down (warm: it finishes
 * its running tasks, then exits). They post to /api/workers/<hostname>/...; what happened is a
 * toast (lib/toasts.js). A pool changes in the worker within seconds: it is read again after.
 *
 * Data only ever reaches the DOM as text.
 */
import { $, el } from "../lib/dom.js";
import { csrfToken, getJson, postJson } from "../lib/http.js";
import { notify } from "../lib/toasts.js";

// After a control, the pools are read again this many ms later (the worker takes a moment).
const READ_AGAIN_AFTER = [1000, 3000, 8000];

function poolText(row) {
  if (!row) return "";
  if (!row.pool) return "did not answer";
  const pool = row.pool;
  const size = `${pool.processes} process${pool.processes === 1 ? "" : "es"}`;
  return pool.autoscale
    ? `${pool.kind} · ${size} · autoscale ${pool.autoscale.min}–${pool.autoscale.max}`
    : `${pool.kind} · ${size}`;
}

const button = (action, hostname, text, title) =>
  el("button", {
    type: "button",
    class: "btn btn-worker",
    "data-worker-action": action,
    "data-hostname": hostname,
    title,
    text,
  });

function controls(hostname) {
  return el(
    "span",
    { class: "worker-controls" },
    button("grow", hostname, "+1", "Add a process to its pool"),
    button("shrink", hostname, "−1", "Stop an idle process of its pool"),
    button("autoscale", hostname, "Autoscale…", "Set its autoscale range (a worker started with --autoscale)"),
    button("shutdown", hostname, "Shut down", "Warm shutdown: it finishes its running tasks, then exits"),
  );
}

export class WorkerControls {
  constructor(config) {
    this.api = config.api_root;
    this.canControl = Boolean(config.can_control_workers);
    this.rows = new Map();
    document.addEventListener("click", (event) => {
      const target = event.target.closest("button[data-worker-action]");
      if (target) this.act(target);
    });
  }

  /** Reads every worker's pool again, then shows it. */
  async refresh() {
    let rows = null;
    try {
      rows = await getJson(`${this.api}workers/`);
    } catch (error) {
      rows = null;
    }
    if (!Array.isArray(rows)) return;
    this.rows = new Map(rows.map((row) => [row.hostname, row]));
    this.render();
  }

  /** Adds the pool and the buttons to each worker of #workers (redrawn by cluster.js). */
  render() {
    for (const item of document.querySelectorAll("#workers li[data-hostname]")) {
      const hostname = item.dataset.hostname;
      let pool = $(".worker-pool", item);
      if (!pool) {
        pool = el("span", { class: "worker-pool muted" });
        item.append(pool);
      }
      pool.textContent = poolText(this.rows.get(hostname));
      if (this.canControl && !$(".worker-controls", item)) item.append(controls(hostname));
    }
  }

  async act(target) {
    const action = target.dataset.workerAction;
    const hostname = target.dataset.hostname;
    const base = `${this.api}workers/${encodeURIComponent(hostname)}/`;
    let url;
    let body;
    if (action === "grow" || action === "shrink") {
      url = `${base}pool/`;
      body = { [action]: 1 };
    } else if (action === "autoscale") {
      const current = (this.rows.get(hostname) || {}).pool;
      const range = current && current.autoscale ? `${current.autoscale.max},${current.autoscale.min}` : "";
      const answer = window.prompt(`Autoscale ${hostname} between MAX,MIN processes (a worker started with --autoscale only)`, range);
      if (answer === null) return;
      const [max, min] = answer.split(",").map((part) => part.trim());
      url = `${base}autoscale/`;
      // Sent as typed: the server names what is wrong with it.
      body = min === undefined || min === "" ? { max } : { max, min };
    } else if (action === "shutdown") {
      if (!window.confirm(`Shut down ${hostname}? It finishes the tasks it runs, then exits.`)) return;
      url = `${base}shutdown/`;
      body = {};
    } else {
      return;
    }
    target.disabled = true;
    try {
      // Audited as the dashboard's (scheduler/api/base.py `request_source`).
      const done = await postJson(url, body, csrfToken(), { "X-Scheduler-Source": "dashboard" });
      notify(`${hostname}: ${done.detail}.`);
      for (const wait of READ_AGAIN_AFTER) setTimeout(() => this.refresh(), wait);
    } catch (error) {
      notify(`Could not ${action === "shutdown" ? "shut down" : action} ${hostname}: ${error.message}`, "error");
    } finally {
      target.disabled = false;
    }
  }
}
