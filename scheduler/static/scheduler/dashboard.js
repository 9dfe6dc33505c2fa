/*
 * The live dashboard (templates/scheduler/dashboard.html): plain JavaScript modules, no build
 * step, no remote code.
 *
 * The server renders the page complete; this module then keeps it current. It opens the
 * `/ws/events/` websocket (which first sends a backfill of recent events, then every event
 * live), folds task events into the feed's rows in place by task id, counts them into the
 * last-hour counters and the throughput chart, lists custom events and alerts in the events
 * panel, and re-reads `/dashboard/summary.json` every half minute (sooner after a schedule
 * change) for the slower panels. The periodic tasks table is searched, filtered and paged on
 * the server (`/dashboard/schedules.json`), its search kept in the URL. Incidents opening and
 * closing redraw the "Open incidents" panel, and failures and new incidents raise toasts
 * (lib/alerts.js). A queue paused, resumed or purged redraws the queues panel at once. When
 * the socket drops
 * it reconnects with exponential back-off and says so in the header (lib/live.js).
 *
 * Each panel is a module of dashboard/; data only ever reaches the DOM as text.
 */
import { alertToasts } from "./lib/alerts.js";
import { readJson } from "./lib/dom.js";
import { timeFormats } from "./lib/format.js";
import { liveConnection } from "./lib/live.js";
import { installActions } from "./dashboard/actions.js";
import { renderCluster, watchStale } from "./dashboard/cluster.js";
import { Counters } from "./dashboard/counters.js";
import { EventLog, isPanelEvent } from "./dashboard/events.js";
import { DeadLetters } from "./dashboard/dead_letters.js";
import { renderDispatchLag } from "./dashboard/dispatch_lag.js";
import { Failures } from "./dashboard/failures.js";
import { Feed } from "./dashboard/feed.js";
import { fitAllSoon } from "./dashboard/fit.js";
import { Incidents } from "./dashboard/incidents.js";
import { SchedulesTable } from "./dashboard/periodic.js";
import { summaryReader } from "./dashboard/summary.js";
import { renderUpcoming } from "./dashboard/upcoming.js";
import { WorkerControls } from "./dashboard/workers.js";

function dashboard(config, initial) {
  // The states that end a run: the server's one list (scheduler/protocol.py), from the config.
  const finished = new Set(config.finished_states || []);
  const formats = timeFormats(config.timezone);
  const feed = new Feed(config, initial.feed, { finished, format: formats.time });
  const counters = new Counters(initial, formats.hourMinute);
  const failures = new Failures(config, formats.daySeconds);
  const eventLog = new EventLog(formats.time);
  const deadLetters = new DeadLetters(config, formats.daySeconds);
  const incidents = new Incidents(config, formats.dayTime);
  const alerts = alertToasts(config.alerts);
  const workers = new WorkerControls(config);
  const schedules = new SchedulesTable(config, initial.periodic, { format: formats.dayTime });
  watchStale();
  // The chart slides by one bar every minute even when nothing happens.
  setInterval(() => counters.draw(), 10000);

  // The summary brings the page of the periodic tasks table the search shows.
  const summaryUrl = () => `${config.summary_url}?${schedules.queryString()}`;
  const summary = summaryReader(summaryUrl, (data) => {
    counters.load(data);
    schedules.fromSummary(data.periodic, data.declared_drift);
    renderUpcoming(data.upcoming, formats);
    renderDispatchLag(data.dispatch_lag);
    failures.render(data.failures);
    deadLetters.render(data.dead_letters);
    renderCluster(data.cluster, formats.time, config.can_control_workers);
    workers.render();
    workers.refresh();
    // Matches added and acknowledgements by others send no event: read with the rest.
    incidents.refresh();
    fitAllSoon();
  });

  function handleEvent(event, live) {
    if (!event || typeof event.type !== "string") return;
    if (isPanelEvent(event)) eventLog.event(event);
    if (live) {
      alerts.event(event);
      incidents.event(event);
    }
    if (event.type.startsWith("task.") && event.task_id) {
      if (feed.wants(event)) feed.event(event, live);
      counters.count(event);
      if (event.type === "task.failed" || event.type === "task.retried") {
        failures.event(event, counters.snapshot);
      } else {
        failures.settle(event, counters.snapshot);
      }
      if (event.type === "task.dead_letter") deadLetters.event(event, counters.snapshot);
      if (event.periodic_task_name && finished.has(event.state)) summary.refreshSoon();
    } else if (event.type.startsWith("schedule.")) {
      summary.refreshSoon();
    } else if (event.type.startsWith("dead_letter.")) {
      deadLetters.remove((event.data || {}).dead_letter_id);
    } else if (event.type.startsWith("queue.") && live) {
      // A queue paused, resumed or purged (here or elsewhere): the queues panel says so now.
      summary.refresh();
    }
  }

  installActions(config, (action, body, button) => {
    if (action === "requeue" || action === "discard") deadLetters.remove(button.dataset.id);
    const now = ["enable", "disable", "pause", "resume"].includes(action) || action.startsWith("queue-");
    if (now) summary.refresh();
    else summary.refreshSoon();
  });
  liveConnection({
    path: config.ws_path,
    query: `${feed.query}backfill=300`,
    onMessage(message) {
      if (message.kind === "backfill") {
        for (const event of message.events) handleEvent(event, false);
        // Back after a restart: the slower panels (incidents too) may have moved on.
        if (message.reconnected) summary.refresh();
      } else if (message.kind === "event") {
        handleEvent(message.event, true);
      }
    },
  });
  counters.draw();
  workers.render();
  workers.refresh();
  fitAllSoon();
}

const config = readJson("dashboard-config");
if (config) dashboard(config, readJson("dashboard-initial"));
