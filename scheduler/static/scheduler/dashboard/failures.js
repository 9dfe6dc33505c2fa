/*
 * The failures panel: a failed run shows up at once; the summary brings its stored error later.
 */
import { $, el } from "../lib/dom.js";
import { oneLine } from "../lib/format.js";
import { fillId } from "../lib/http.js";

export class Failures {
  /** `format`: the failure's time ("Wed 13:04:05"). */
  constructor(config, format) {
    this.body = $("#failures-body");
    this.config = config;
    this.format = format;
    this.catalog = new Set(config.catalog || []);
  }

  retryCell(failure) {
    return el(
      "td",
      { class: "num" },
      failure.retryable
        ? el("button", { type: "button", class: "btn", "data-action": "retry", "data-task-id": failure.task_id, text: "Retry" })
        : el("span", { class: "muted", title: "not a catalog task", text: "—" }),
    );
  }

  row(failure) {
    const at = failure.date_done ? this.format.format(Date.parse(failure.date_done)) : "—";
    const link = { href: fillId(this.config.task_url, failure.task_id), text: failure.task_name || "—" };
    const error = { class: "c-error", title: failure.error || "", text: oneLine(failure.error) || "—" };
    const cells = [
      el("td", { class: "nowrap", text: at }),
      el("td", {}, el("a", link)),
      el("td", { text: failure.periodic_task_name || "—" }),
      el("td", { class: "c-error-cell" }, el("div", error)),
    ];
    if (this.config.can_run) cells.push(this.retryCell(failure));
    return el("tr", { "data-task-id": failure.task_id }, ...cells);
  }

  render(failures) {
    if (!failures.length) {
      this.body.replaceChildren(
        el("tr", { class: "placeholder" }, el("td", { colspan: 5, class: "empty", text: "No failed run." })),
      );
      return;
    }
    this.body.replaceChildren(...failures.map((failure) => this.row(failure)));
  }

  /** A task.failed event after the summary's `snapshot`: its row on top, once. */
  event(event, snapshot) {
    if (!(Date.parse(event.at) > snapshot)) return;
    const exists = [...this.body.children].some((tr) => tr.dataset.taskId === event.task_id);
    if (exists) return;
    const placeholder = $("tr.placeholder", this.body);
    if (placeholder) placeholder.remove();
    this.body.prepend(
      this.row({
        task_id: event.task_id,
        task_name: event.task_name,
        periodic_task_name: event.periodic_task_name,
        date_done: event.at,
        error: event.message,
        retryable: this.catalog.has(event.task_name),
      }),
    );
  }
}
