/*
 * The dispatch lag panel, rebuilt from each summary: per schedule run lately, p50 and p95 of
 * each step of its latest runs (due -> published -> started -> finished). The figures are the
 * server's (scheduler/selectors/dispatch.py); the steps come in its order.
 */
import { $, el } from "../lib/dom.js";
import { duration } from "../lib/format.js";

const EMPTY = "No schedule has run lately: each one's dispatch lag shows here once its runs finish.";

function nameCell(row) {
  if (row.id === null || row.id === undefined) {
    return el("td", {}, row.name, " ", el("span", { class: "muted", text: "(deleted)" }));
  }
  const href = `/admin/django_celery_beat/periodictask/${encodeURIComponent(row.id)}/change/`;
  return el("td", {}, el("a", { href, text: row.name }));
}

function lagRow(row, steps) {
  const cells = [nameCell(row), el("td", { class: "num", text: String(row.runs) })];
  for (const step of steps) {
    const lag = (row.steps || {})[step] || {};
    for (const quantile of ["p50", "p95"]) {
      cells.push(
        el("td", { class: "num", "data-step": step, "data-quantile": quantile, text: duration(lag[quantile]) }),
      );
    }
  }
  return el("tr", { "data-schedule": row.name }, ...cells);
}

export function renderDispatchLag(panel) {
  if (!panel) return;
  const error = $("#dispatch-lag-error");
  error.hidden = !panel.error;
  error.textContent = panel.error ? `Cannot read Redis: ${panel.error}` : "";
  $("#dispatch-lag-count").textContent = `${panel.rows.length} of ${panel.total}`;
  const body = $("#dispatch-lag-body");
  if (!panel.rows.length) {
    body.replaceChildren(
      el("tr", { class: "placeholder" }, el("td", { colspan: 8, class: "empty", text: EMPTY })),
    );
    return;
  }
  body.replaceChildren(...panel.rows.map((row) => lagRow(row, panel.steps)));
}
