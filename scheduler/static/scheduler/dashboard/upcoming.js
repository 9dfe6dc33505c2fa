/*
 * The upcoming-runs heatmap: runs of every enabled schedule in the next 24 hours, per slot, in
 * the same shades as the server's (views.heat_level). Past what fits, a row holds many
 * schedules and says how many (selectors.upcoming_runs).
 */
import { $, el } from "../lib/dom.js";
import { plural } from "../lib/format.js";

const heatLevel = (count, peak) =>
  count <= 0 || peak <= 0 ? 0 : Math.max(1, Math.min(4, Math.ceil((4 * count) / peak)));
const runs = (count) => plural(count, "run");

function noteText(upcoming, format) {
  let text = "";
  const busiest = upcoming.busiest;
  if (busiest) {
    const more = busiest.slots - 1;
    const tie = more > 0 ? ` (and ${plural(more, "more slot")} as busy)` : "";
    text += `Busiest: ${format.format(Date.parse(busiest.at))}, ${runs(busiest.runs)}${tie}. `;
  }
  if (upcoming.schedules_enabled) {
    const rows = plural(upcoming.rows.length, "row");
    const idle = upcoming.idle ? `, ${upcoming.idle} with no run in the next 24 hours` : "";
    const grouped = upcoming.grouped ? ": a row of many schedules says how many" : "";
    text += `${plural(upcoming.schedules_enabled, "enabled schedule")} in ${rows}${idle}${grouped}. `;
  }
  return text;
}

/** The server's heat_row_title: "name (task)", or how many and the first names. */
function rowTitle(row) {
  if ((row.schedules || 1) === 1) return `${row.name} (${row.task})`;
  const more = row.schedules > row.names.length ? ", …" : "";
  return `${row.name}: ${row.names.join(", ")}${more}`;
}

function headRow(slots, format) {
  // A label every hour, none on the last two slots (no room).
  const label = (slot, k) => (k % 4 === 0 && k < slots.length - 2 ? format.format(slot) : "");
  return el("tr", {}, el("th", { class: "label" }), ...slots.map((slot, k) => el("th", { text: label(slot, k) })));
}

function totalRow(upcoming, slots, format) {
  const peak = Math.max(0, ...upcoming.totals);
  return el(
    "tr",
    { class: "total" },
    el("td", { class: "label", text: "All schedules" }),
    ...upcoming.totals.map((count, k) =>
      el("td", {
        class: `cell h${heatLevel(count, peak)}`,
        title: `${format.format(slots[k])}: ${runs(count)}`,
        text: count ? String(count) : "",
      }),
    ),
  );
}

function frequentRow(row, upcoming, slots) {
  const more = `more than ${upcoming.per_schedule} runs`;
  const runs = row.schedules > 1 ? "each runs" : "runs";
  return el(
    "tr",
    { class: "frequent", "data-schedules": row.schedules },
    el("td", { class: "label", title: `${rowTitle(row)}: ${more} in 24 hours`, text: row.name }),
    el("td", { class: "cell band", colspan: slots.length, text: `${runs} all day: ${more}, left out of the totals` }),
  );
}

function scheduleRow(row, slots, rowPeak, format) {
  return el(
    "tr",
    { "data-schedules": row.schedules },
    el("td", { class: "label", title: rowTitle(row), text: row.name }),
    ...row.counts.map((count, k) =>
      el("td", {
        class: `cell h${heatLevel(count, rowPeak)}`,
        title: `${row.name} · ${format.format(slots[k])}: ${runs(count)}`,
      }),
    ),
  );
}

/** `formats`: "Wed 13:04" (`dayTime`) and "13:04" (`hourMinute`). */
export function renderUpcoming(upcoming, { dayTime, hourMinute }) {
  const holder = $("#upcoming");
  $("#upcoming-note").textContent = noteText(upcoming, dayTime);
  if (!upcoming.rows.length) {
    holder.replaceChildren(el("p", { class: "empty", text: "No run of an enabled schedule in the next 24 hours." }));
    return;
  }
  const slots = upcoming.slots.map((slot) => Date.parse(slot));
  const rowPeak = Math.max(
    0,
    ...upcoming.rows.filter((row) => !row.frequent).map((row) => Math.max(...row.counts)),
  );
  const rows = upcoming.rows.map((row) =>
    row.frequent ? frequentRow(row, upcoming, slots) : scheduleRow(row, slots, rowPeak, dayTime),
  );
  const head = headRow(slots, hourMinute);
  const body = el("tbody", {}, totalRow(upcoming, slots, dayTime), ...rows);
  holder.replaceChildren(el("table", { class: "heatmap" }, el("thead", {}, head), body));
}
