/*
 * A tournament's leaderboard: rows re-ranked in place (moved, not rebuilt), never back in time,
 * each with the entry's equity chart.
 */
import { $, el, svgEl } from "../scheduler/lib/dom.js";
import { lineChart } from "../scheduler/lib/charts.js";
import { plural, timeElement } from "../scheduler/lib/format.js";

const CHART = { width: 160, height: 36, pad: 3 };

/** Milliseconds since the epoch; no time at all is older than any time. */
export function stamp(iso) {
  const value = iso ? Date.parse(iso) : Number.NaN;
  return Number.isNaN(value) ? -Infinity : value;
}

function newRow(entryId) {
  const chart = svgEl("svg", {
    class: "equity-chart",
    viewBox: `0 0 ${CHART.width} ${CHART.height}`,
    preserveAspectRatio: "none",
    role: "img",
  });
  return el(
    "tr",
    { "data-entry-id": entryId },
    el("td", { class: "num rank" }),
    el("td", { class: "name" }, el("span", { class: "agent-name" }), " ", el("span", { class: "muted mono agent-slug" })),
    el("td", { class: "strategy" }),
    el("td", { class: "num equity" }),
    el("td", { class: "num cash" }),
    el("td", { class: "chart-cell" }, chart),
    el("td", { class: "entry-status" }, el("span", { class: "status" })),
    el("td", { class: "num decisions" }),
  );
}

function fill(row, entry) {
  $(".rank", row).textContent = entry.rank === null || entry.rank === undefined ? "—" : entry.rank;
  $(".agent-name", row).textContent = entry.name;
  $(".agent-slug", row).textContent = entry.agent;
  $(".strategy", row).textContent = entry.strategy;
  $(".equity", row).textContent = entry.equity;
  $(".cash", row).textContent = entry.cash;
  $(".decisions", row).textContent = entry.decisions;
  const status = $(".entry-status .status", row);
  status.className = `status status-${entry.status}`;
  status.textContent = entry.status;
  $(".equity-chart", row).setAttribute("aria-label", `equity of ${entry.name}`);
}

/** Marks the rows that changed place (the animation restarts on each move). */
function markMoved(rows, before) {
  rows.forEach((row, index) => {
    const was = before.indexOf(row);
    if (was !== -1 && was !== index) {
      row.classList.remove("moved");
      void row.offsetWidth; // restart the animation
      row.classList.add("moved");
    }
  });
}

export class Leaderboard {
  /** `format`: the ranking's time; `initialCash`: the charts' baseline. */
  constructor({ seriesPoints, initialCash, format }) {
    this.board = $("#leaderboard tbody");
    this.empty = $("#leaderboard-empty");
    this.rankedAt = $("#ranked-at");
    this.seriesPoints = seriesPoints;
    this.initialCash = initialCash;
    this.format = format;
    // Entry id -> [{at, equity}], oldest first.
    this.series = new Map();
    this.at = -Infinity;
  }

  /**
   * The rows in the leaderboard's order; false (and nothing changed) if it is older than the
   * one shown. An event of the ranking shown (`strict`: the backfill's copy of it) is not
   * applied twice; live.json's is (it has the database's rows of that ranking).
   */
  apply(entries, at, { strict = false } = {}) {
    const when = stamp(at);
    if (!Array.isArray(entries) || when < this.at || (strict && when === this.at)) return false;
    this.at = when;
    const before = Array.from(this.board.children);
    const rows = new Map(before.map((row) => [Number(row.dataset.entryId), row]));
    const ranked = new Set();
    for (const entry of entries) {
      const row = rows.get(entry.entry) || newRow(entry.entry);
      fill(row, entry);
      ranked.add(row);
      this.board.append(row); // moves an existing row: the same element, in its new place
    }
    // Entries past the event's top (it carries 100) keep their order, after the ranked ones.
    for (const row of before) if (!ranked.has(row)) this.board.append(row);
    markMoved(Array.from(this.board.children), before);
    if (this.rankedAt) {
      if (Number.isFinite(when)) this.rankedAt.replaceChildren("ranked ", timeElement(at, this.format));
      else this.rankedAt.replaceChildren("not ranked yet");
    }
    this.empty.hidden = this.board.children.length > 0;
    return true;
  }

  /** The equity series as live.json has them. */
  setSeries(bySeries) {
    this.series.clear();
    for (const [entryId, points] of Object.entries(bySeries || {})) {
      this.series.set(
        Number(entryId),
        points.map((point) => ({ at: stamp(point.at), equity: Number(point.equity) })),
      );
    }
  }

  /** A ranking's point on every entry's chart (at most `seriesPoints` kept). */
  addPoint(entries, at) {
    const when = stamp(at);
    for (const entry of entries) {
      const points = this.series.get(entry.entry) || [];
      const last = points[points.length - 1];
      if (last && last.at >= when) continue;
      points.push({ at: when, equity: Number(entry.equity) });
      if (points.length > this.seriesPoints) points.splice(0, points.length - this.seriesPoints);
      this.series.set(entry.entry, points);
    }
  }

  drawCharts() {
    const base = this.initialCash;
    for (const row of this.board.children) {
      const values = (this.series.get(Number(row.dataset.entryId)) || []).map((point) => point.equity);
      const last = values[values.length - 1];
      const title = `${plural(values.length, "ranking")}: ${values[0]} → ${last} (started with ${base})`;
      lineChart($(".equity-chart", row), values, { ...CHART, base, title });
    }
  }
}
