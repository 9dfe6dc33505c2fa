/*
 * The last-hour counters and the throughput chart: the summary's figures as of its time (the
 * snapshot), plus every task event after it. Events are kept by key (a worker's events carry
 * no id until written) so that a newer summary can replace the figures and the events it has
 * not counted yet be re-added.
 */
import { $ } from "../lib/dom.js";
import { stackedBars } from "../lib/charts.js";
import { CATEGORY, RANK } from "./states.js";

const CHART_WIDTH = 600;
const CHART_HEIGHT = 120;
const MINUTE = 60000;
const eventKey = (event) => `${event.type}|${event.task_id}|${Date.parse(event.at)}`;

export class Counters {
  /** `initial`: the page's summary; `format`: the chart's minutes ("13:04"). */
  constructor(initial, format) {
    this.format = format;
    // The server's clock, not the browser's, says which minute it is (the chart's last bar).
    const clockSkew = Date.parse(initial.generated_at) - Date.now();
    this.now = () => Date.now() + clockSkew;
    this.counted = new Map();
    this.drawPending = false;
    this.reset(initial);
  }

  reset(summary) {
    this.counts = { ...summary.counts };
    this.snapshot = Date.parse(summary.generated_at);
    this.known = new Map(Object.entries(summary.in_flight));
    this.bins = new Map(
      summary.throughput.map((bin) => [
        Date.parse(bin.minute),
        { succeeded: bin.succeeded, failed: bin.failed },
      ]),
    );
  }

  /** A newer summary: its figures, plus the events counted since that it has not seen. */
  load(summary) {
    this.reset(summary);
    const pending = [...this.counted.values()].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
    this.counted = new Map();
    for (const event of pending) this.count(event);
    this.draw();
  }

  count(event) {
    const at = Date.parse(event.at);
    const key = eventKey(event);
    if (!(at > this.snapshot) || this.counted.has(key)) return;
    this.counted.set(key, event);
    const old = this.known.get(event.task_id);
    const category = CATEGORY[event.state];
    if (!category) {
      // Revoked or skipped: no longer waiting or running, counted nowhere.
      if (old === "queued" || old === "running") {
        this.counts[old] = Math.max(0, this.counts[old] - 1);
        this.known.set(event.task_id, "ended");
        this.draw();
      }
      return;
    }
    if (old === category || old === "ended") return;
    // A retried run waits again, and so does a buffered one (its turn comes after the running run).
    const waitsAgain = event.type === "task.retried" || event.type === "task.buffered";
    if (old && RANK[category] < RANK[old] && !waitsAgain) return;
    if (old && old !== "succeeded" && old !== "failed") {
      this.counts[old] = Math.max(0, this.counts[old] - 1);
    } else if (old) {
      return; // an ended run does not start again under the same id, except by a retry
    }
    this.counts[category] += 1;
    this.known.set(event.task_id, category);
    if (category === "succeeded" || category === "failed") this.bin(at, category);
    this.draw();
  }

  bin(at, category) {
    const minute = Math.floor(at / MINUTE) * MINUTE;
    const bin = this.bins.get(minute) || { succeeded: 0, failed: 0 };
    bin[category] += 1;
    this.bins.set(minute, bin);
  }

  /** Draws the counters and the chart at the next frame (once, however often asked). */
  draw() {
    if (this.drawPending) return;
    this.drawPending = true;
    requestAnimationFrame(() => {
      this.drawPending = false;
      this.renderCounters();
      this.renderChart();
    });
  }

  renderCounters() {
    for (const node of document.querySelectorAll("[data-counter]")) {
      node.textContent = String(this.counts[node.dataset.counter] ?? 0);
    }
  }

  renderChart() {
    const current = Math.floor(this.now() / MINUTE) * MINUTE;
    const minutes = [];
    for (let k = 59; k >= 0; k -= 1) minutes.push(current - k * MINUTE);
    const values = minutes.map((minute) => this.bins.get(minute) || { succeeded: 0, failed: 0 });
    const peak = Math.max(0, ...values.map((v) => v.succeeded + v.failed));
    const columns = values.map((value, k) => ({
      title: `${this.format.format(minutes[k])}: ${value.succeeded} succeeded, ${value.failed} failed`,
      parts: [
        { class: "bar-ok", value: value.succeeded },
        { class: "bar-failed", value: value.failed },
      ],
    }));
    const step = CHART_WIDTH / minutes.length;
    $("#throughput").replaceChildren(...stackedBars(columns, { step, height: CHART_HEIGHT, peak }));
    $("#throughput-peak").textContent = String(peak);
    $("#throughput-total").textContent = String(
      values.reduce((sum, v) => sum + v.succeeded + v.failed, 0),
    );
  }
}
