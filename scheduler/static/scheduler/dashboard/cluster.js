/*
 * The workers and queues panel: workers online, beat's leader and standbys, queue depths and
 * pauses (with Pause, Resume and Purge for staff who may control workers: dashboard/actions.js
 * posts them); marked stale while the live connection is down (the workers shown may be long
 * gone).
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

function pausedBadge(queue) {
  const by = queue.paused_by ? ` by ${queue.paused_by}` : "";
  const note = queue.note ? `: ${queue.note}` : "";
  return el("span", { class: "badge badge-paused", title: `paused${by}${note}`, text: "paused" });
}

function queueButtons(queue) {
  const toggle = queue.paused ? ["queue-resume", "Resume"] : ["queue-pause", "Pause"];
  return el(
    "td",
    { class: "num nowrap" },
    el("button", { type: "button", class: "btn", "data-action": toggle[0], "data-queue": queue.name, text: toggle[1] }),
    " ",
    el("button", { type: "button", class: "btn btn-stop", "data-action": "queue-purge", "data-queue": queue.name, text: "Purge" }),
  );
}

function queueRow(queue, canControl) {
  const name = el("td", { title: queue.purpose }, queue.name);
  if (queue.paused) name.append(" ", pausedBadge(queue));
  return el(
    "tr",
    { "data-queue": queue.name, "data-paused": Boolean(queue.paused) },
    name,
    el("td", { class: "num", text: String(queue.depth) }),
    canControl ? queueButtons(queue) : null,
  );
}

/** `format`: when a worker was last seen ("13:04:05"); `canControl`: the user may pause, resume
 * and purge queues. */
export function renderCluster(cluster, format, canControl = false) {
  const error = $("#cluster-error");
  error.hidden = !cluster.error;
  error.textContent = cluster.error ? `Cannot read the broker: ${cluster.error}` : "";
  $("#workers").replaceChildren(
    ...(cluster.workers.length
      ? cluster.workers.map((worker) => workerItem(worker, format))
      : [el("li", { class: "muted", text: "No worker online." })]),
  );
  renderBeat(cluster.beat);
  $("#queues").replaceChildren(...cluster.queues.map((queue) => queueRow(queue, canControl)));
}
