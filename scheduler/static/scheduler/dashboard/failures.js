/*
 * The failures panel: a failed run shows up at once; the summary brings its stored error later.
 * A run failing now (an attempt failed, a retry is due) shows up as retrying, with a Revoke
 * button that drops its next attempt; it leaves the panel when it ends otherwise than failed.
 */
import { $, el } from "../lib/dom.js";
import { oneLine } from "../lib/format.js";
import { fillId } from "../lib/http.js";

const RETRYING = "RETRY";

export class Failures {
  /** `format`: the failure's time ("Wed 13:04:05"). */
  constructor(config, format) {
    this.body = $("#failures-body");
    this.config = config;
    this.format = format;
    this.catalog = new Set(config.catalog || []);
  }

  actionCell(failure) {
    let action;
    if (failure.revocable) {
      action = el("button", {
        type: "button",
        class: "btn btn-stop",
        "data-action": "revoke",
        "data-task-id": failure.task_id,
        title: "drop its next attempt",
        text: "Revoke",
      });
    } else if (failure.retryable) {
      action = el("button", { type: "button", class: "btn", "data-action": "retry", "data-task-id": failure.task_id, text: "Retry" });
    } else {
      action = el("span", { class: "muted", title: "not a catalog task", text: "—" });
    }
    return el("td", { class: "num" }, action);
  }

  row(failure) {
    const at = failure.date_done ? this.format.format(Date.parse(failure.date_done)) : "—";
    const link = { href: fillId(this.config.task_url, failure.task_id), text: failure.task_name || "—" };
    const error = { class: "c-error", title: failure.error || "", text: oneLine(failure.error) || "—" };
    const task = el("td", {}, el("a", link));
    if (failure.revocable) task.append(" ", el("span", { class: "badge badge-retry", text: "retrying" }));
    const cells = [
      el("td", { class: "nowrap", text: at }),
      task,
      el("td", { text: failure.periodic_task_name || "—" }),
      el("td", { class: "c-error-cell" }, el("div", error)),
    ];
    if (this.config.can_run) cells.push(this.actionCell(failure));
    return el("tr", { "data-task-id": failure.task_id, "data-state": failure.state || "FAILURE" }, ...cells);
  }

  render(failures) {
    if (!failures.length) {
      this.showEmpty();
      return;
    }
    this.body.replaceChildren(...failures.map((failure) => this.row(failure)));
  }

  showEmpty() {
    this.body.replaceChildren(
      el("tr", { class: "placeholder" }, el("td", { colspan: 5, class: "empty", text: "No failed run." })),
    );
  }

  rowOf(taskId) {
    return [...this.body.children].find((tr) => tr.dataset.taskId === taskId) || null;
  }

  /** A task.failed or task.retried event after the summary's `snapshot`: its row on top, once
   * (a retrying row becomes a failed one when its last attempt fails). */
  event(event, snapshot) {
    if (!(Date.parse(event.at) > snapshot)) return;
    const retrying = event.type === "task.retried";
    const existing = this.rowOf(event.task_id);
    if (existing && (retrying || existing.dataset.state !== RETRYING)) return;
    const row = this.row({
      task_id: event.task_id,
      task_name: event.task_name,
      periodic_task_name: event.periodic_task_name,
      date_done: event.at,
      error: event.message,
      state: retrying ? RETRYING : "FAILURE",
      retryable: !retrying && this.catalog.has(event.task_name),
      revocable: retrying,
    });
    if (existing) existing.remove();
    const placeholder = $("tr.placeholder", this.body);
    if (placeholder) placeholder.remove();
    this.body.prepend(row);
  }

  /** Any other event of a run after the summary's `snapshot`: a retrying run that went on
   * (started again, succeeded, was revoked) is no longer failing now. */
  settle(event, snapshot) {
    if (!(Date.parse(event.at) > snapshot)) return;
    const existing = this.rowOf(event.task_id);
    if (!existing || existing.dataset.state !== RETRYING) return;
    if (event.state === RETRYING || event.type === "task.queued") return;
    existing.remove();
    if (!this.body.children.length) this.showEmpty();
  }
}
