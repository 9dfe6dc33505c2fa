/*
 * The live task feed: a row per run, newest first, folded in place by task id as the run's
 * events arrive (rows are updated, never re-created), at most FEED_ROWS of them. A run not
 * finished has its stop button (Revoke before it starts, Terminate while it runs) for staff who
 * may run tasks; dashboard/actions.js posts it.
 */
import { $, el } from "../lib/dom.js";
import { duration, oneLine } from "../lib/format.js";
import { fillId } from "../lib/http.js";
import { fitAllSoon } from "./fit.js";
import { runControl, runControlButton, setBadge } from "./states.js";

const FEED_ROWS = 50;

/** `canRun`: the user may revoke and terminate runs (a Stop cell). */
function makeRow(canRun) {
  return el(
    "tr",
    {},
    el("td", { class: "c-state" }, el("span", { class: "badge" })),
    el("td", { class: "c-task" }, el("a", {})),
    el("td", { class: "c-periodic" }),
    el("td", { class: "c-duration num" }),
    el("td", { class: "c-worker mono" }),
    el("td", { class: "c-time nowrap" }, el("time", {})),
    canRun ? el("td", { class: "c-actions num" }) : null,
  );
}

const blank = (taskId, at) => ({
  task_id: taskId,
  queued_at: at,
  at: null,
  state: "",
  task_name: "",
  periodic_task_name: "",
  worker: "",
  duration: null,
  message: "",
});

export class Feed {
  /** `finished`: the states that end a run; `format`: the queued time's format. */
  constructor(config, rows, { finished, format }) {
    this.body = $("#feed-body");
    this.empty = $("#feed-empty");
    this.taskUrl = (id) => fillId(config.task_url, id);
    this.finished = finished;
    this.format = format;
    this.canRun = Boolean(config.can_run);
    // The filter, from the page's query string: see `query` and `wants`.
    this.filter = config.filter || {};
    // Task id -> {data, tr}.
    this.entries = new Map();
    this.load(rows);
    this.body.addEventListener("click", (event) => {
      if (event.target.closest("a, button")) return;
      const tr = event.target.closest("tr[data-task-id]");
      if (tr) location.assign(this.taskUrl(tr.dataset.taskId));
    });
  }

  /** The server's rows, taken over (or made, if the page has none for a run). */
  load(rows) {
    const serverRows = new Map([...this.body.children].map((tr) => [tr.dataset.taskId, tr]));
    for (const row of rows) {
      const data = { ...row, queued_at: Date.parse(row.queued_at), at: row.at ? Date.parse(row.at) : null };
      const tr = serverRows.get(row.task_id) || makeRow(this.canRun);
      if (!tr.isConnected) this.body.append(tr);
      this.entries.set(row.task_id, { data, tr });
      this.render(this.entries.get(row.task_id));
    }
  }

  /** The websocket is asked for the filter's events (task, state, object): "key=value&"... */
  get query() {
    return ["task", "state", "object"]
      .filter((key) => this.filter[key])
      .map((key) => `${key}=${encodeURIComponent(this.filter[key])}&`)
      .join("");
  }

  /** ... it has no periodic-task filter, so that one is applied here. */
  wants(event) {
    const periodic = this.filter.periodic_task;
    return (
      !periodic ||
      event.periodic_task_name === periodic ||
      (!event.periodic_task_name && this.entries.has(event.task_id))
    );
  }

  render({ data, tr }) {
    tr.dataset.taskId = data.task_id;
    tr.dataset.state = data.state;
    setBadge($(".c-state .badge", tr), data.state);
    const cell = $(".c-task", tr);
    const link = $("a", cell);
    link.href = this.taskUrl(data.task_id);
    link.textContent = data.task_name || "—";
    let error = $(".c-error", cell);
    if (data.state === "FAILURE" && data.message) {
      if (!error) error = cell.appendChild(el("div", { class: "c-error" }));
      error.textContent = oneLine(data.message);
      error.title = data.message;
    } else if (error) {
      error.remove();
    }
    $(".c-periodic", tr).textContent = data.periodic_task_name || "—";
    $(".c-duration", tr).textContent = duration(data.duration);
    $(".c-worker", tr).textContent = data.worker || "—";
    const time = $(".c-time time", tr);
    time.dateTime = new Date(data.queued_at).toISOString();
    time.textContent = this.format.format(data.queued_at);
    const actions = $(".c-actions", tr);
    if (actions) {
      const shown = $("button[data-action]", actions);
      const wanted = runControl(data.state, this.finished);
      if ((shown ? shown.dataset.action : "") !== wanted) {
        const button = runControlButton(data.task_id, data.state, this.finished);
        actions.replaceChildren(...(button ? [button] : []));
      }
    }
  }

  /** Same rule as selectors.task_feed: by time, but nothing undoes the end of a run. */
  eventWins(data, state, at) {
    if (data.at === null || at >= data.at) return true;
    return this.finished.has(state) && !this.finished.has(data.state);
  }

  /** Folds a task event into its run's row; `live`: just happened (not from the backfill). */
  event(event, live) {
    const at = Date.parse(event.at);
    const known = this.entries.get(event.task_id);
    const entry = known || { data: blank(event.task_id, at), tr: makeRow(this.canRun) };
    const data = entry.data;
    data.queued_at = Math.min(data.queued_at, at);
    for (const key of ["task_name", "periodic_task_name", "worker"]) {
      if (event[key]) data[key] = event[key];
    }
    if (event.duration !== null && event.duration !== undefined) data.duration = event.duration;
    if (this.eventWins(data, event.state, at)) {
      data.state = event.state;
      data.at = at;
      data.message = event.message || "";
    }
    this.render(entry);
    if (!known) this.insert(event.task_id, entry, live);
  }

  /** A new run's row, in its place by the time it was queued; the oldest rows go past 50. */
  insert(taskId, entry, live) {
    this.entries.set(taskId, entry);
    const before = [...this.body.children].find((tr) => {
      const other = this.entries.get(tr.dataset.taskId);
      return other && other.data.queued_at < entry.data.queued_at;
    });
    this.body.insertBefore(entry.tr, before || null);
    if (live) entry.tr.classList.add("fresh");
    while (this.body.children.length > FEED_ROWS) {
      const last = this.body.lastElementChild;
      this.entries.delete(last.dataset.taskId);
      last.remove();
    }
    this.empty.hidden = true;
    fitAllSoon();
  }
}
