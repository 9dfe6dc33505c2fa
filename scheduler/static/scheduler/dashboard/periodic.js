/*
 * The periodic tasks panel: a page of the schedules the search and filters match (the server
 * searches and pages them: /dashboard/schedules.json), each with its schedule, next and last
 * run, a sparkline of the recent runs, success rate and durations, and the Run now/Pause/Resume
 * buttons for who may change schedules. Typing in the search box or choosing a filter reads
 * the first page again; the URL keeps the search, so that it can be shared. Each summary
 * brings the same page again, up to date.
 */
import { $, el } from "../lib/dom.js";
import { sparkline } from "../lib/charts.js";
import { duration, percent } from "../lib/format.js";
import { errorText } from "../lib/http.js";
import { badge, stateLabel } from "./states.js";

// The query string's names (scheduler/dashboard/schedules.py): the form's fields and the page.
const FIELDS = ["q", "enabled", "paused", "failing", "owner"];
const PARAMS = [...FIELDS, "after", "before", "limit"];
const TYPING_PAUSE = 250;
const NO_MATCH = "No periodic task matches this search.";

const SPARK = { bar: 5, gap: 1, height: 20, slots: 20 };
const EMPTY = "No periodic task yet: create one in the admin, or run python manage.py seed_demo.";

const button = (action, id, text) =>
  el("button", { type: "button", class: "btn", "data-action": action, "data-id": id, text });

function runsSparkline(runs, format) {
  const values = runs.map((run) => ({
    value: run.duration,
    class: run.state === "SUCCESS" ? "s-success" : run.state === "FAILURE" ? "s-failure" : "s-other",
    title: `${stateLabel(run.state)} ${format.format(Date.parse(run.at))} · ${duration(run.duration)}`,
  }));
  return sparkline(values, { ...SPARK, label: `last ${runs.length} runs` });
}

/** "paused by alice until Wed 13:04: deploy freeze" (the server's _pause_line). */
function pauseLine(pause, format) {
  const by = pause.paused_by ? ` by ${pause.paused_by}` : "";
  const line = el("div", { class: "muted pause-line" }, `paused${by} `);
  if (pause.until) {
    line.append("until ", el("time", { datetime: pause.until, text: format.format(Date.parse(pause.until)) }));
  } else {
    line.append("until resumed");
  }
  if (pause.note) line.append(`: ${pause.note}`);
  return line;
}

function nameCell(task, format) {
  const href = `/admin/django_celery_beat/periodictask/${encodeURIComponent(task.id)}/change/`;
  const name = el("td", {}, el("a", { href, text: task.name }));
  if (!task.enabled) name.append(" ", el("span", { class: "tag", text: "paused" }));
  if (task.failure_streak) {
    name.append(" ", el("span", { class: "tag tag-failing", text: `${task.failure_streak} failed in a row` }));
  }
  if (task.pause) name.append(pauseLine(task.pause, format));
  const outside = task.in_catalog === false ? " — outside the catalog" : "";
  const owner = task.owner ? ` · ${task.owner.type} ${task.owner.id}` : "";
  name.append(el("div", { class: "muted mono", text: `${task.task}${outside}${owner}` }));
  return name;
}

function lastCell(task, format) {
  const last = el("td", { class: "nowrap" });
  if (task.last_status) last.append(badge(task.last_status), " ");
  if (task.last_run_at) {
    last.append(el("span", { class: "muted", text: format.format(Date.parse(task.last_run_at)) }));
  } else if (!task.last_status) {
    last.append(el("span", { class: "muted", text: "never" }));
  }
  return last;
}

function nextCell(task, format) {
  const next = task.next_run
    ? el("time", { datetime: task.next_run, text: format.format(Date.parse(task.next_run)) })
    : el("span", { class: "muted", text: "—" });
  return el("td", { class: "nowrap" }, next);
}

function actionsCell(task) {
  const toggle = task.enabled
    ? button("pause", task.id, "Pause")
    : button("resume", task.id, "Resume");
  return el("td", {}, el("div", { class: "actions" }, button("run", task.id, "Run now"), toggle));
}

function periodicRow(task, { canChange, format }) {
  const cells = [
    nameCell(task, format),
    el("td", { text: task.schedule }),
    nextCell(task, format),
    lastCell(task, format),
    el("td", {}, runsSparkline(task.runs, format)),
    el("td", { class: "num", text: percent(task.success_rate) }),
    el("td", { class: "num", text: duration(task.p50) }),
    el("td", { class: "num", text: duration(task.p95) }),
  ];
  if (canChange) cells.push(actionsCell(task));
  return el("tr", { "data-schedule-id": task.id, "data-enabled": String(task.enabled) }, ...cells);
}

/** The non-empty values of `query` (the server's echo, or the page's own), in one order. */
function canonical(query) {
  return PARAMS.filter((name) => query[name]).map((name) => `${name}=${query[name]}`).join("&");
}

/** The table, its search form and its pager: `periodic` is the page the server rendered. */
export class SchedulesTable {
  constructor(config, periodic, { format }) {
    this.url = config.schedules_url;
    this.canChange = config.can_change;
    this.format = format;
    this.form = $("#schedule-filter");
    this.page = { after: periodic.query.after || "", before: periodic.query.before || "" };
    this.limit = periodic.query.limit || "";
    this.current = periodic;
    this.declaredDrift = 0;
    this.asked = 0;
    this.typing = null;
    if (!this.form) return;
    this.form.addEventListener("input", (event) => {
      if (event.target.name !== "q") return;
      clearTimeout(this.typing);
      this.typing = setTimeout(() => this.search(), TYPING_PAUSE);
    });
    this.form.addEventListener("change", (event) => {
      if (event.target.tagName === "SELECT") this.search();
    });
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.search();
    });
    const clear = $("#schedule-filter-clear");
    if (clear) {
      clear.addEventListener("click", (event) => {
        event.preventDefault();
        for (const name of FIELDS) this.form.elements.namedItem(name).value = "";
        this.search();
      });
    }
    $("#periodic-prev").addEventListener("click", (event) => this.turn(event, "before"));
    $("#periodic-next").addEventListener("click", (event) => this.turn(event, "after"));
  }

  /** The query of the page shown: the form's fields, the page's cursor and size. */
  query() {
    const query = {};
    if (this.form) {
      for (const name of FIELDS) {
        const field = this.form.elements.namedItem(name);
        if (field && field.value.trim()) query[name] = field.value.trim();
      }
    }
    if (this.page.after) query.after = this.page.after;
    else if (this.page.before) query.before = this.page.before;
    if (this.limit) query.limit = this.limit;
    return query;
  }

  /** The query string summary.json and schedules.json take. */
  queryString() {
    return new URLSearchParams(this.query()).toString();
  }

  search() {
    clearTimeout(this.typing);
    this.page = { after: "", before: "" };
    this.load();
  }

  turn(event, direction) {
    event.preventDefault();
    const cursor = this.current[direction];
    if (!cursor) return;
    this.page = { after: "", before: "", [direction]: cursor };
    this.load();
  }

  async load() {
    const asked = ++this.asked;
    const response = await fetch(`${this.url}?${this.queryString()}`, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      body = null;
    }
    if (asked !== this.asked) return; // a later search is on its way
    const problems = $("#schedule-problems");
    if (!response.ok) {
      if (problems) {
        problems.textContent = `Left out of the search: ${errorText(body) || `HTTP ${response.status}`}.`;
        problems.hidden = false;
      }
      return;
    }
    if (problems) problems.hidden = true;
    this.render(body);
    this.remember();
  }

  /** The URL says what the table shows (the feed's filter and the rest kept), to be shared. */
  remember() {
    const url = new URL(window.location.href);
    for (const name of PARAMS) url.searchParams.delete(name);
    for (const [name, value] of Object.entries(this.query())) url.searchParams.set(name, value);
    window.history.replaceState(window.history.state, "", url);
  }

  /** The page of a summary: drawn when it is the page asked for (not one from before a search). */
  fromSummary(periodic, declaredDrift = 0) {
    this.declaredDrift = declaredDrift;
    if (periodic && canonical(periodic.query) === canonical(this.query())) this.render(periodic);
  }

  render(periodic) {
    this.current = periodic;
    renderPeriodic(periodic, {
      canChange: this.canChange,
      format: this.format,
      declaredDrift: this.declaredDrift,
    });
    $("#periodic-prev").hidden = !periodic.before;
    $("#periodic-next").hidden = !periodic.after;
    if (periodic.links) {
      $("#periodic-prev").setAttribute("href", periodic.links.before || "#");
      $("#periodic-next").setAttribute("href", periodic.links.after || "#");
    }
    const clear = $("#schedule-filter-clear");
    if (clear) clear.hidden = !periodic.filtered;
  }
}

/** `format`: the times' ("Wed 13:04"); `canChange`: whether to show the buttons. */
export function renderPeriodic(periodic, { canChange, format, declaredDrift = 0 }) {
  const body = $("#periodic-body");
  const drifted = declaredDrift ? ` · ${declaredDrift} changed here since declared in code` : "";
  const matching = periodic.filtered ? " matching" : "";
  const shown = periodic.rows.length ? `${periodic.start + 1}–${periodic.end} of ` : "";
  $("#periodic-count").textContent = `${shown}${periodic.total}${matching}${drifted}`;
  if (!periodic.rows.length) {
    const text = periodic.filtered ? NO_MATCH : EMPTY;
    body.replaceChildren(el("tr", {}, el("td", { colspan: 9, class: "empty", text })));
    return;
  }
  body.replaceChildren(...periodic.rows.map((task) => periodicRow(task, { canChange, format })));
}
