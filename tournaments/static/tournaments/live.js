/*
 * A tournament's live page (templates/tournaments/tournament.html): plain JavaScript modules,
 * no build step, no remote code.
 *
 * The server renders the page and embeds what it shows (#tournament-data, the same JSON as
 * live.json). On the `/ws/events/?object=tournament:<id>` websocket (scheduler/lib/live.js):
 * - each `tournament.leaderboard` event re-ranks the table at once (rows are moved, not
 *   rebuilt), adds a point to every entry's equity chart, then live.json is read again for the
 *   trades, the status and the equity series as the database has them;
 * - the tournament's start and end events read live.json again (its status);
 * - the finished runs of its entries' decisions read it again too, at most every few seconds
 *   (their trades).
 * A leaderboard older than the one shown is never applied (a late answer, a backfill), so the
 * table never goes back in time. After a reconnect live.json is read again: it has what was
 * missed meanwhile. Failures and incidents of the tournament's runs raise toasts
 * (scheduler/lib/alerts.js).
 *
 * Data only ever reaches the DOM as text (textContent, attributes): never as HTML.
 */
import { alertToasts } from "../scheduler/lib/alerts.js";
import { $, el, readJson } from "../scheduler/lib/dom.js";
import { dateTimeFormatter, timeElement } from "../scheduler/lib/format.js";
import { getJson } from "../scheduler/lib/http.js";
import { liveConnection } from "../scheduler/lib/live.js";
import { Leaderboard } from "./leaderboard.js";

// Decisions finish in bursts (one per entry, every interval): one read for the burst.
const REFRESH_AFTER_RUNS = 2000;
const RUN_TASKS = new Set([
  "tournaments.run_agent_decision",
  "tournaments.recover_agent_state",
  "tournaments.run_live_tournament_agents",
]);
const LIFE_EVENTS = new Set(["tournament.started", "tournament.finished", "tournament.cancelled"]);

/** The recent trades, the ones not shown before marked fresh. */
class Trades {
  constructor(format) {
    this.body = $("#trades tbody");
    this.empty = $("#trades-empty");
    this.format = format;
    this.seen = null;
  }

  row(trade, known) {
    return el(
      "tr",
      { "data-trade-id": trade.id, class: known && !known.has(trade.id) ? "fresh" : null },
      el("td", { class: "nowrap" }, timeElement(trade.executed_at, this.format)),
      el("td", { class: "agent", text: trade.name }),
      el("td", {}, el("span", { class: `side side-${trade.side}`, text: trade.side })),
      el("td", { class: "num", text: trade.quantity }),
      el("td", { class: "mono", text: trade.symbol }),
      el("td", { class: "num", text: trade.price }),
      el("td", { class: "num", text: trade.tick }),
    );
  }

  apply(list) {
    const known = this.seen;
    this.seen = new Set(list.map((trade) => trade.id));
    this.body.replaceChildren(...list.map((trade) => this.row(trade, known)));
    this.empty.hidden = list.length > 0;
  }
}

function applyStatus(tournament) {
  const tag = $("#tournament-status");
  if (!tag || !tournament) return;
  tag.className = `status status-${tournament.status}`;
  tag.dataset.status = tournament.status;
  tag.textContent = tournament.status_label;
}

/** Reads live.json with `render`: once at a time, again after if asked meanwhile. */
function liveReader(url, render) {
  let reading = false;
  let readAgain = false;
  let soon = null;

  async function refresh() {
    if (reading) {
      readAgain = true; // what changed meanwhile is read once this read is done
      return;
    }
    reading = true;
    try {
      const data = await getJson(url);
      if (data) render(data);
    } catch (error) {
      // The server is gone: the connection indicator says so, the reconnect reads again.
    } finally {
      reading = false;
      if (readAgain) {
        readAgain = false;
        refresh();
      }
    }
  }

  function refreshSoon() {
    if (soon !== null) return;
    soon = setTimeout(() => {
      soon = null;
      refresh();
    }, REFRESH_AFTER_RUNS);
  }

  return { refresh, refreshSoon };
}

function tournamentPage(config, initial) {
  const format = dateTimeFormatter(config.timezone);
  const initialCash = Number(initial.tournament.initial_cash);
  const board = new Leaderboard({ seriesPoints: config.series_points, initialCash, format });
  const trades = new Trades(format);

  function render(data) {
    applyStatus(data.tournament);
    // The series belong with the leaderboard they were read with.
    if (board.apply(data.leaderboard, data.board_at)) board.setSeries(data.series);
    board.drawCharts();
    trades.apply(data.trades || []);
  }
  const live = liveReader(config.live_url, render);

  function onLeaderboard(event) {
    const entries = event.data && event.data.leaderboard;
    if (!board.apply(entries, event.at, { strict: true })) return false;
    board.addPoint(entries, event.at);
    board.drawCharts();
    return true;
  }

  function onEvent(event) {
    if (!event) return;
    if (event.type === "tournament.leaderboard") {
      if (onLeaderboard(event)) live.refresh();
    } else if (LIFE_EVENTS.has(event.type)) {
      live.refresh();
    } else if (event.type === "task.succeeded" && RUN_TASKS.has(event.task_name)) {
      live.refreshSoon();
    }
  }

  render(initial);
  const alerts = alertToasts(config.alerts);
  liveConnection({
    path: config.ws_path,
    query: config.ws_query,
    onMessage(data) {
      if (data.kind === "event") {
        onEvent(data.event);
        alerts.event(data.event);
      } else if (data.kind === "backfill") {
        // Only the rankings matter here (older ones are ignored); after a reconnect the page
        // reads everything it may have missed.
        const events = (data.events || []).filter((e) => e.type === "tournament.leaderboard");
        const latest = events[events.length - 1];
        const applied = latest ? onLeaderboard(latest) : false;
        if (applied || data.reconnected) live.refresh();
      }
    },
  });
}

const config = readJson("tournament-config");
const data = readJson("tournament-data");
if (config && data) tournamentPage(config, data);
