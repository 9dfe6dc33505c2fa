/*
 * The events panel: events apps publish (`scheduler.live.publish`: a custom type, its source and
 * priority), alerts and queue controls, newest first, from the backfill and live, at most EVENT_ROWS of them.
 * Runs and schedule changes have panels of their own; chat messages and leaderboards their pages.
 */
import { $, el } from "../lib/dom.js";
import { oneLine } from "../lib/format.js";

const EVENT_ROWS = 20;
const ALERT_LABELS = {
  "incident.opened": "incident opened",
  "incident.resolved": "incident resolved",
  "task.dead_letter": "dead letter",
  // Staff's controls of a queue (the message says who, and why).
  "queue.paused": "queue paused",
  "queue.resumed": "queue resumed",
  "queue.purged": "queue purged",
};
const PRIORITIES = new Set(["low", "normal", "high", "critical"]);

/** A custom event's own details: `publish` stores {data, source, priority}. */
function published(event) {
  const data = event.data || {};
  return PRIORITIES.has(data.priority) ? data : null;
}

/** What the panel calls a type: alerts by name, any other type as written. */
export const eventLabel = (type) => ALERT_LABELS[type] || type || "event";

/** Whether the panel shows `event`: a published custom event or an alert. */
export const isPanelEvent = (event) => Boolean(published(event) || ALERT_LABELS[event.type]);

export class EventLog {
  /** `format`: the event's time. */
  constructor(format) {
    this.body = $("#events-body");
    this.format = format;
  }

  row(event, key) {
    const details = published(event) || {};
    const source = details.source || "";
    const priority = details.priority || "";
    // publish writes "<source>: <text>" for the event log; the source has its own column here.
    let message = event.message || "";
    if (source && message.startsWith(`${source}: `)) message = message.slice(source.length + 2);
    return el(
      "tr",
      { "data-key": key, "data-type": event.type, "data-priority": priority || null },
      el("td", { class: "nowrap" }, el("time", { datetime: event.at, text: this.format.format(Date.parse(event.at)) })),
      el("td", { class: "mono", title: event.type, text: eventLabel(event.type) }),
      el("td", {}, priority ? el("span", { class: `badge badge-priority-${priority}`, text: priority }) : "—"),
      el("td", { text: source || "—" }),
      el("td", { class: "c-error-cell" }, el("div", { class: "c-message", title: message, text: oneLine(message) || "—" })),
    );
  }

  /** An event for the panel, in its place by time; each once (a backfill after a reconnect). */
  event(event) {
    // Not the id: a worker's events go out live before their row (and id) exists.
    const key = `${event.type}@${event.at}@${event.message}`;
    const rows = [...this.body.querySelectorAll("tr[data-key]")];
    if (rows.some((tr) => tr.dataset.key === key)) return;
    const placeholder = $("tr.placeholder", this.body);
    if (placeholder) placeholder.remove();
    const tr = this.row(event, key);
    const at = Date.parse(event.at);
    const before = rows.find((other) => Date.parse($("time", other).dateTime) < at);
    this.body.insertBefore(tr, before || null);
    while (this.body.children.length > EVENT_ROWS) this.body.lastElementChild.remove();
  }
}
