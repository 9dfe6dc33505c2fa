/*
 * The dead letters panel: open runs that failed their last retry, with Requeue and Discard
 * (dashboard/actions.js posts them to /api/dead-letters/<id>/...). A `task.dead_letter` event
 * puts its letter on top at once; a `dead_letter.requeued` or `.discarded` event (this page's
 * click, or anyone else's) takes it away; the summary brings the whole list every half minute.
 */
import { $, el } from "../lib/dom.js";
import { fillId } from "../lib/http.js";

export class DeadLetters {
  /** `format`: the failure's time ("Wed 13:04:05"). */
  constructor(config, format) {
    this.body = $("#dead-letters-body");
    this.count = $("#dead-letters-open");
    this.config = config;
    this.format = format;
    this.catalog = new Set(config.catalog || []);
    this.open = 0;
    this.capped = false;
    // Letters resolved since the summary was read: a late event must not bring them back.
    this.resolved = new Set();
  }

  actionsCell(letter) {
    const requeue = letter.requeueable
      ? el("button", { type: "button", class: "btn", "data-action": "requeue", "data-id": letter.id, text: "Requeue" })
      : null;
    const discard = el("button", { type: "button", class: "btn", "data-action": "discard", "data-id": letter.id, text: "Discard" });
    return el("td", { class: "num nowrap" }, requeue, requeue ? " " : null, discard);
  }

  row(letter) {
    const at = letter.failed_at ? this.format.format(Date.parse(letter.failed_at)) : "—";
    const link = { href: fillId(this.config.task_url, letter.task_id), text: letter.task_name || "—" };
    const summary = letter.error_summary || letter.error || "";
    const error = { class: "c-error", title: letter.error || "", text: summary || "—" };
    const cells = [
      el("td", { class: "nowrap", text: at }),
      el("td", {}, el("a", link)),
      el("td", { text: letter.periodic_task_name || "—" }),
      el("td", { class: "num", text: String(letter.attempts ?? "—") }),
      el("td", { class: "c-error-cell" }, el("div", error)),
    ];
    if (this.config.can_run) cells.push(this.actionsCell(letter));
    return el("tr", { "data-dead-letter-id": String(letter.id) }, ...cells);
  }

  showCount() {
    if (this.count) this.count.textContent = `${this.open}${this.capped ? "+" : ""}`;
  }

  placeholder() {
    const text = "No dead letter: no run is waiting after its last retry failed.";
    return el("tr", { class: "placeholder" }, el("td", { colspan: 6, class: "empty", text }));
  }

  /** The summary's panel: {open, capped, rows}. */
  render(data) {
    if (!data) return;
    this.open = data.open;
    this.capped = data.capped;
    this.resolved.clear();
    this.showCount();
    const rows = data.rows || [];
    this.body.replaceChildren(...(rows.length ? rows.map((letter) => this.row(letter)) : [this.placeholder()]));
  }

  has(id) {
    return [...this.body.children].some((tr) => tr.dataset.deadLetterId === String(id));
  }

  /** A `task.dead_letter` event after the summary's `snapshot`: its letter on top, once. */
  event(event, snapshot) {
    const data = event.data || {};
    const id = data.dead_letter_id;
    if (id === undefined || id === null || (data.status && data.status !== "open")) return;
    if (!(Date.parse(event.at) > snapshot) || this.has(id) || this.resolved.has(String(id))) return;
    const placeholder = $("tr.placeholder", this.body);
    if (placeholder) placeholder.remove();
    this.body.prepend(
      this.row({
        id,
        task_id: event.task_id,
        task_name: event.task_name,
        periodic_task_name: event.periodic_task_name,
        failed_at: event.at,
        attempts: data.attempts,
        error: event.message,
        requeueable: this.catalog.has(event.task_name),
      }),
    );
    this.open += 1;
    this.showCount();
  }

  /** Letter `id` was requeued or discarded (here or elsewhere): its row goes. */
  remove(id) {
    if (id === undefined || id === null) return;
    this.resolved.add(String(id));
    const tr = [...this.body.children].find((row) => row.dataset.deadLetterId === String(id));
    if (!tr) return;
    tr.remove();
    this.open = Math.max(0, this.open - 1);
    this.showCount();
    if (!this.body.children.length) this.body.append(this.placeholder());
  }
}
