/*
 * Alert toasts, on every live page (the dashboard, a chat, a tournament): a run that failed
 * (`task.failed`) or an incident that opened (`incident.opened`), as it arrives live on the
 * page's websocket, raises a toast (lib/toasts.js); and a desktop notification as well while
 * the tab is hidden, if the person allowed them. A burst is throttled: at most BURST toasts in
 * any WINDOW, the rest collapsed into one "N more failures" toast when the window ends. While
 * the browser has not been told whether this site may notify, a small "Enable desktop
 * notifications" button in the header asks.
 *
 *   const alerts = alertToasts(config.alerts);   // {task_url, incidents_url} from the server
 *   alerts.event(event);                          // every live event (not the backfill's)
 *
 * Data only ever reaches the DOM as text.
 */
import { $, el } from "./dom.js";
import { oneLine } from "./format.js";
import { fillId } from "./http.js";
import { toast } from "./toasts.js";

const WINDOW = 5000;
const BURST = 3;
const SHOWN_FOR = 10000;
const NOUNS = { failure: ["failure", "failures"], incident: ["incident", "incidents"] };

const canNotify = () => "Notification" in window;

/** What to say of `event`, or null when it is not an alert. */
function describe(event, links) {
  if (!event || typeof event.type !== "string") return null;
  if (event.type === "task.failed") {
    const name = event.periodic_task_name || event.task_name || "a task";
    const error = oneLine(event.message);
    return {
      what: "failure",
      kind: "error",
      text: `Failed: ${name}${error ? ` — ${error}` : ""}`,
      link: event.task_id ? { href: fillId(links.task_url, event.task_id), text: "details" } : null,
      title: `Failed: ${name}`,
      body: error || "The run failed.",
      tag: `task-${event.task_id || name}`,
    };
  }
  if (event.type === "incident.opened") {
    const data = event.data || {};
    const title = event.message || data.subject || "an incident";
    return {
      what: "incident",
      kind: "alert",
      text: `Incident: ${title}${data.rule ? ` (rule ${data.rule})` : ""}`,
      link: { href: links.incidents_url, text: "incidents" },
      title: `Incident: ${title}`,
      body: data.rule ? `Rule ${data.rule}` : "",
      tag: `incident-${data.incident || title}`,
    };
  }
  return null;
}

/** A desktop notification, only while the tab is hidden and notifications are allowed. */
function desktop(alert) {
  if (document.visibilityState !== "hidden" || !canNotify()) return;
  if (Notification.permission !== "granted") return;
  try {
    const notification = new Notification(alert.title, { body: alert.body, tag: alert.tag });
    notification.onclick = () => {
      window.focus();
      notification.close();
    };
  } catch (error) {
    // Some browsers (Chrome on Android) notify only from a service worker: the toast stays.
  }
}

/** The header's "Enable desktop notifications", while the browser has not been told. */
function offerDesktop() {
  if (!canNotify() || Notification.permission !== "default" || $("#enable-notifications")) return;
  const button = el("button", {
    type: "button",
    class: "btn btn-notify",
    id: "enable-notifications",
    text: "Enable desktop notifications",
    title: "Failures and incidents as desktop notifications while this tab is hidden",
  });
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await Notification.requestPermission();
    } catch (error) {
      // Refused without asking (an insecure origin): the button says no more than before.
    }
    button.disabled = false;
    if (Notification.permission !== "default") button.remove();
  });
  const indicator = $("#connection");
  if (indicator) indicator.before(button);
  else if ($(".topbar")) $(".topbar").append(button);
}

class AlertToasts {
  constructor(links) {
    this.links = { task_url: "/dashboard/tasks/__id__/", incidents_url: "/dashboard/incidents/", ...links };
    // When the toasts of the current window were raised.
    this.recent = [];
    this.held = { failure: 0, incident: 0 };
    this.timer = null;
    offerDesktop();
  }

  /** A live event: a toast if it is an alert and the window has room, else counted for later. */
  event(event) {
    const alert = describe(event, this.links);
    if (!alert) return;
    const now = Date.now();
    this.recent = this.recent.filter((at) => now - at < WINDOW);
    if (this.timer === null && this.recent.length < BURST) {
      this.recent.push(now);
      this.raise(alert);
      return;
    }
    this.held[alert.what] += 1;
    if (this.timer === null) {
      this.timer = setTimeout(() => this.flush(), Math.max(0, this.recent[0] + WINDOW - now));
    }
  }

  /** The window is over: one toast for what it held back. */
  flush() {
    this.timer = null;
    const held = this.held;
    this.held = { failure: 0, incident: 0 };
    const parts = Object.entries(held)
      .filter(([, count]) => count > 0)
      .map(([what, count]) => `${count} more ${NOUNS[what][count === 1 ? 0 : 1]}`);
    if (!parts.length) return;
    const text = parts.join(" and ");
    this.recent.push(Date.now());
    this.raise({
      kind: held.incident ? "alert" : "error",
      text,
      link: held.incident ? { href: this.links.incidents_url, text: "incidents" } : null,
      title: text,
      body: "",
      tag: "alerts-more",
    });
  }

  raise(alert) {
    toast(alert.text, { kind: alert.kind, link: alert.link, timeout: SHOWN_FOR });
    desktop(alert);
  }
}

export function alertToasts(links = {}) {
  return new AlertToasts(links);
}
