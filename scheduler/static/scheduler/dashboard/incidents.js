/*
 * The "Open incidents" panel (templates/scheduler/_incidents_panel.html): shown at the top while
 * any incident is open. It is read again from the API (GET /api/incidents/?status=open) when an
 * incident opens or resolves, after a failure (a match may have been added), after a reconnect
 * and with the slower panels; its buttons acknowledge an incident (with a note) or silence it
 * for an hour through the API.
 */
import { $, el } from "../lib/dom.js";
import { getJson, postJson } from "../lib/http.js";
import { toast } from "../lib/toasts.js";
import { fitAllSoon } from "./fit.js";

const SILENCE_SECONDS = 3600;
// One read for a burst of events.
const SOON = 400;
const AFTER_FAILURE = 2000;

export class Incidents {
  /** `format`: how the panel writes when an incident opened ("Wed 13:04"). */
  constructor(config, format) {
    this.section = $("#incidents");
    this.body = $("#incidents-body");
    this.count = $("#incidents-count");
    this.api = `${config.api_root}incidents/`;
    this.listUrl = `${this.api}?status=open&page_size=${config.incidents_shown || 20}`;
    this.canManage = Boolean(config.can_manage_alerts);
    this.format = format;
    this.reading = false;
    this.readAgain = false;
    this.soon = null;
    if (this.section) this.section.addEventListener("click", (event) => this.clicked(event));
  }

  /** A live event: incidents opening and closing, and failures, which may add a match. */
  event(event) {
    if (event.type === "incident.opened" || event.type === "incident.resolved") this.refreshSoon();
    else if (event.type === "task.failed") this.refreshSoon(AFTER_FAILURE);
  }

  refreshSoon(delay = SOON) {
    if (this.soon !== null) return;
    this.soon = setTimeout(() => {
      this.soon = null;
      this.refresh();
    }, delay);
  }

  async refresh() {
    if (!this.section) return;
    if (this.reading) {
      this.readAgain = true; // what changed meanwhile is read once this read is done
      return;
    }
    this.reading = true;
    try {
      const data = await getJson(this.listUrl);
      if (data) this.render(data.results || [], data.open_count || 0);
    } catch (error) {
      // The server is gone: the connection indicator says so, the reconnect reads again.
    } finally {
      this.reading = false;
      if (this.readAgain) {
        this.readAgain = false;
        this.refresh();
      }
    }
  }

  render(incidents, openCount) {
    const known = new Set(Array.from(this.body.children, (tr) => tr.dataset.incidentId));
    this.body.replaceChildren(...incidents.map((incident) => this.row(incident, known)));
    this.count.textContent = String(openCount);
    this.section.hidden = openCount === 0;
    fitAllSoon();
  }

  row(incident, known) {
    const id = String(incident.id);
    const opened = new Date(incident.opened_at);
    const cells = [
      el("td", { class: "c-title", text: incident.title }),
      el("td", { class: "c-rule", text: incident.rule }),
      el(
        "td",
        { class: "c-since nowrap" },
        el("time", { datetime: incident.opened_at, text: this.format.format(opened) }),
      ),
      el("td", { class: "c-matches num", text: incident.match_count }),
      el("td", { class: "c-handled" }, this.handled(incident)),
    ];
    if (this.canManage) cells.push(this.actions(incident));
    return el("tr", { "data-incident-id": id, class: known.has(id) ? null : "fresh" }, ...cells);
  }

  /** Who acknowledged it, and until when it is silenced. */
  handled(incident) {
    const parts = [];
    if (incident.acknowledged_by) {
      const note = incident.acknowledge_note ? `: ${incident.acknowledge_note}` : "";
      parts.push(`acknowledged by ${incident.acknowledged_by}${note}`);
    }
    const until = incident.silenced_until ? new Date(incident.silenced_until) : null;
    if (until && until.getTime() > Date.now()) {
      parts.push(`silenced until ${this.format.format(until)}`);
    }
    if (!parts.length) return el("span", { class: "muted", text: "—" });
    return el("span", { class: "handled", text: parts.join(" · ") });
  }

  actions(incident) {
    const button = (action, text) =>
      el("button", {
        type: "button",
        class: "btn",
        "data-incident-action": action,
        "data-incident-id": incident.id,
        text,
      });
    const cell = el("td", { class: "c-actions num nowrap" });
    if (!incident.acknowledged_by) cell.append(button("acknowledge", "Acknowledge"), " ");
    cell.append(button("silence", "Silence 1 h"));
    return cell;
  }

  async clicked(event) {
    const button = event.target.closest("button[data-incident-action]");
    if (!button) return;
    const id = button.dataset.incidentId;
    const action = button.dataset.incidentAction;
    let body = { for: SILENCE_SECONDS };
    if (action === "acknowledge") {
      const note = window.prompt(`Acknowledge incident #${id}: a note for the others (optional)`, "");
      if (note === null) return;
      body = { note };
    }
    button.disabled = true;
    try {
      await postJson(`${this.api}${encodeURIComponent(id)}/${action}/`, body);
      toast(action === "acknowledge" ? `Acknowledged incident #${id}.` : `Silenced incident #${id} for 1 h.`);
      this.refresh();
    } catch (error) {
      toast(`Could not ${action} incident #${id}: ${error.message}`, { kind: "error" });
    } finally {
      button.disabled = false;
    }
  }
}
