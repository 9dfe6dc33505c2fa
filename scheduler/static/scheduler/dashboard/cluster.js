/*
 * The workers and queues panel: workers online, beat's leader and standbys, queue depths;
 * marked stale while the live connection is down (the workers shown may be long gone).
 */
import { $, el } from "../lib/dom.js";
import { plural } from "../lib/format.js";

export function watchStale() {
  const cluster = $("#cluster");
  document.addEventListener("live:state", (event) => {
    const stale = event.detail.state !== "live" && event.detail.state !== "connecting";
    cluster.toggleAttribute("data-stale", stale);
    $("#cluster-stale").hidden = !stale;
  });
}

function workerItem(worker, format) {
  return el(
    "li",
    // workers.js adds the pool and the buttons by hostname.
    { "data-hostname": worker.name },
    el("span", { class: "mono" }, el("span", { class: "dot" }), worker.name),
    el("span", { class: "muted", text: `seen ${format.format(Date.parse(worker.last_seen))}` }),
  );
}

function renderBeat(beat) {
  const holder = $("#beat");
  if (!beat) {
    holder.replaceChildren(el("p", { class: "muted", text: "No beat has recorded a heartbeat." }));
    return;
  }
  const details = [];
  if (beat.seconds_ago !== null && beat.seconds_ago !== undefined) details.push(`heartbeat ${beat.seconds_ago} s ago`);
  if (beat.entries !== null && beat.entries !== undefined) details.push(`${beat.entries} entries`);
  const standbys = beat.standbys || [];
  const leader = beat.leader ? [el("span", { class: "dot" }), beat.leader] : ["no leader"];
  holder.replaceChildren(
    el("p", { class: "mono" }, ...leader, " ", el("span", { class: "muted", text: details.join(", ") })),
    el("p", {
      class: "muted",
      text: `${plural(standbys.length, "standby")}${standbys.length ? ": " + standbys.join(", ") : ""}`,
    }),
    ...(beat.missed || []).map((run) =>
      el("p", { class: "missed" }, `Missed run: ${run.name} `, el("span", { class: "muted", text: `published ${run.at}, no result` })),
    ),
  );
}

/** `format`: when a worker was last seen ("13:04:05"). */
export function renderCluster(cluster, format) {
  const error = $("#cluster-error");
  error.hidden = !cluster.error;
  error.textContent = cluster.error ? `Cannot read the broker: ${cluster.error}` : "";
  $("#workers").replaceChildren(
    ...(cluster.workers.length
      ? cluster.workers.map((worker) => workerItem(worker, format))
      : [el("li", { class: "muted", text: "No worker online." })]),
  );
  renderBeat(cluster.beat);
  $("#queues").replaceChildren(
    ...cluster.queues.map((queue) =>
      el("tr", {}, el("td", { title: queue.purpose, text: queue.name }), el("td", { class: "num", text: String(queue.depth) })),
    ),
  );
}
