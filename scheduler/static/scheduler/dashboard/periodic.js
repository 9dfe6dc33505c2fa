/*
 * The periodic tasks panel, rebuilt from each summary: schedule, next and last run, a
 * sparkline of the recent runs, success rate and durations, and the Run now/Pause/Resume
 * buttons for who may change schedules.
 */
import { $, el } from "../lib/dom.js";
import { sparkline } from "../lib/charts.js";
import { duration, percent } from "../lib/format.js";
import { badge, stateLabel } from "./states.js";

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
  if (task.pause) name.append(pauseLine(task.pause, format));
  const outside = task.in_catalog === false ? " — outside the catalog" : "";
  name.append(el("div", { class: "muted mono", text: `${task.task}${outside}` }));
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

/** `format`: the times' ("Wed 13:04"); `canChange`: whether to show the buttons. */
export function renderPeriodic(periodic, { canChange, format, declaredDrift = 0 }) {
  const body = $("#periodic-body");
  const drifted = declaredDrift ? ` · ${declaredDrift} changed here since declared in code` : "";
  $("#periodic-count").textContent = `${periodic.rows.length} of ${periodic.total}${drifted}`;
  if (!periodic.rows.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 9, class: "empty", text: EMPTY })));
    return;
  }
  body.replaceChildren(...periodic.rows.map((task) => periodicRow(task, { canChange, format })));
}
