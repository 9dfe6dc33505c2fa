/*
 * A tournament's live page: plain JavaScript, no build step, no remote code.
 *
 * The server renders the page and embeds what it shows (#tournament-data, the same JSON as
 * live.json). On the `/ws/events/?object=tournament:<id>` websocket (scheduler/live.js):
 * - each `tournament.leaderboard` event re-ranks the table at once (rows are moved, not
 *   rebuilt), adds a point to every entry's equity chart, then live.json is read again for the
 *   trades, the status and the equity series as the database has them;
 * - the tournament's start and end events read live.json again (its status);
 * - the finished runs of its entries' decisions read it again too, at most every few seconds
 *   (their trades).
 * A leaderboard older than the one shown is never applied (a late answer, a backfill), so the
 * table never goes back in time. After a reconnect live.json is read again: it has what was
 * missed meanwhile.
 *
 * Data only ever reaches the DOM as text (textContent, attributes): never as HTML.
 */
"use strict";

(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const CHART = { width: 160, height: 36, pad: 3 };
  // Decisions finish in bursts (one per entry, every interval): one read for the burst.
  const REFRESH_AFTER_RUNS = 2000;
  const RUN_TASKS = new Set([
    "tournaments.run_agent_decision",
    "tournaments.recover_agent_state",
    "tournaments.run_live_tournament_agents",
  ]);
  const LIFE_EVENTS = new Set([
    "tournament.started",
    "tournament.finished",
    "tournament.cancelled",
  ]);

  const $ = (selector, root = document) => root.querySelector(selector);

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  function svg(tag, attrs = {}) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    return node;
  }

  // Shared with the other live pages (scheduler/static/scheduler/live.js).
  const { readJson, formatter } = window.pageHelpers;

  // Milliseconds since the epoch; no time at all is older than any time.
  function stamp(iso) {
    const value = iso ? Date.parse(iso) : Number.NaN;
    return Number.isNaN(value) ? -Infinity : value;
  }

  function tournamentPage(config, initial) {
    const board = $("#leaderboard tbody");
    const boardEmpty = $("#leaderboard-empty");
    const trades = $("#trades tbody");
    const tradesEmpty = $("#trades-empty");
    const statusTag = $("#tournament-status");
    const rankedAt = $("#ranked-at");
    const fmt = formatter(config.timezone);
    const initialCash = Number(initial.tournament.initial_cash);
    // Entry id -> [{at, equity}], oldest first.
    const series = new Map();
    let boardAt = -Infinity;
    let tradesSeen = null;

    function time(iso) {
      const at = new Date(iso);
      return el("time", { datetime: iso, text: Number.isNaN(at.getTime()) ? iso : fmt.format(at) });
    }

    // --- The leaderboard -----------------------------------------------------------------------

    function newRow(entryId) {
      const chart = svg("svg", {
        class: "equity-chart",
        viewBox: `0 0 ${CHART.width} ${CHART.height}`,
        preserveAspectRatio: "none",
        role: "img",
      });
      return el(
        "tr",
        { "data-entry-id": entryId },
        el("td", { class: "num rank" }),
        el(
          "td",
          { class: "name" },
          el("span", { class: "agent-name" }),
          " ",
          el("span", { class: "muted mono agent-slug" }),
        ),
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

    /**
     * The rows in the leaderboard's order; false (and nothing changed) if it is older than the
     * one shown. An event of the ranking shown (`strict`: the backfill's copy of it) is not
     * applied twice; live.json's is (it has the database's rows of that ranking).
     */
    function applyBoard(entries, at, { strict = false } = {}) {
      const when = stamp(at);
      if (!Array.isArray(entries) || when < boardAt || (strict && when === boardAt)) return false;
      boardAt = when;
      const rows = new Map(
        Array.from(board.children, (row) => [Number(row.dataset.entryId), row]),
      );
      const before = Array.from(board.children);
      const ranked = new Set();
      for (const entry of entries) {
        let row = rows.get(entry.entry);
        if (!row) row = newRow(entry.entry);
        fill(row, entry);
        ranked.add(row);
        board.append(row); // moves an existing row: the same element, in its new place
      }
      // Entries past the event's top (it carries 100) keep their order, after the ranked ones.
      for (const row of before) if (!ranked.has(row)) board.append(row);
      Array.from(board.children).forEach((row, index) => {
        const was = before.indexOf(row);
        if (was !== -1 && was !== index) {
          row.classList.remove("moved");
          void row.offsetWidth; // restart the animation
          row.classList.add("moved");
        }
      });
      if (rankedAt) {
        if (Number.isFinite(when)) rankedAt.replaceChildren("ranked ", time(at));
        else rankedAt.replaceChildren("not ranked yet");
      }
      boardEmpty.hidden = board.children.length > 0;
      return true;
    }

    // --- Equity charts -------------------------------------------------------------------------

    function setSeries(bySeries) {
      series.clear();
      for (const [entryId, points] of Object.entries(bySeries || {})) {
        series.set(
          Number(entryId),
          points.map((point) => ({ at: stamp(point.at), equity: Number(point.equity) })),
        );
      }
    }

    function addPoint(entries, at) {
      const when = stamp(at);
      for (const entry of entries) {
        const points = series.get(entry.entry) || [];
        const last = points[points.length - 1];
        if (last && last.at >= when) continue;
        points.push({ at: when, equity: Number(entry.equity) });
        if (points.length > config.series_points) points.splice(0, points.length - config.series_points);
        series.set(entry.entry, points);
      }
    }

    function draw(chart, points) {
      const { width, height, pad } = CHART;
      chart.replaceChildren();
      if (!points.length) return;
      const values = points.map((point) => point.equity);
      let low = Math.min(initialCash, ...values);
      let high = Math.max(initialCash, ...values);
      if (high === low) {
        high += 1;
        low -= 1;
      }
      const x = (index) =>
        points.length === 1 ? width / 2 : pad + (index * (width - 2 * pad)) / (points.length - 1);
      const y = (value) => height - pad - ((value - low) * (height - 2 * pad)) / (high - low);
      const last = values[values.length - 1];
      const trend = last >= initialCash ? "up" : "down";
      const base = y(initialCash).toFixed(2);
      chart.append(svg("line", { class: "baseline", x1: 0, x2: width, y1: base, y2: base }));
      chart.append(
        svg("polyline", {
          class: `line ${trend}`,
          points: values.map((value, index) => `${x(index).toFixed(2)},${y(value).toFixed(2)}`).join(" "),
        }),
      );
      chart.append(
        svg("circle", {
          class: `dot-last ${trend}`,
          cx: x(values.length - 1).toFixed(2),
          cy: y(last).toFixed(2),
          r: 2,
        }),
      );
      const title = svg("title");
      title.textContent = `${values.length} ranking${values.length === 1 ? "" : "s"}: ${values[0]} → ${last} (started with ${initialCash})`;
      chart.append(title);
    }

    function drawCharts() {
      for (const row of board.children) {
        draw($(".equity-chart", row), series.get(Number(row.dataset.entryId)) || []);
      }
    }

    // --- Trades and status ---------------------------------------------------------------------

    function applyTrades(list) {
      const known = tradesSeen;
      tradesSeen = new Set(list.map((trade) => trade.id));
      trades.replaceChildren(
        ...list.map((trade) =>
          el(
            "tr",
            { "data-trade-id": trade.id, class: known && !known.has(trade.id) ? "fresh" : null },
            el("td", { class: "nowrap" }, time(trade.executed_at)),
            el("td", { class: "agent", text: trade.name }),
            el("td", {}, el("span", { class: `side side-${trade.side}`, text: trade.side })),
            el("td", { class: "num", text: trade.quantity }),
            el("td", { class: "mono", text: trade.symbol }),
            el("td", { class: "num", text: trade.price }),
            el("td", { class: "num", text: trade.tick }),
          ),
        ),
      );
      tradesEmpty.hidden = list.length > 0;
    }

    function applyStatus(tournament) {
      if (!statusTag || !tournament) return;
      statusTag.className = `status status-${tournament.status}`;
      statusTag.dataset.status = tournament.status;
      statusTag.textContent = tournament.status_label;
    }

    function render(data) {
      applyStatus(data.tournament);
      // The series belong with the leaderboard they were read with.
      if (applyBoard(data.leaderboard, data.board_at)) setSeries(data.series);
      drawCharts();
      applyTrades(data.trades || []);
    }

    // --- live.json, read again ------------------------------------------------------------------

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
        const response = await fetch(config.live_url, {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
        });
        if (response.ok) render(await response.json());
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

    // --- Events ---------------------------------------------------------------------------------

    function onLeaderboard(event) {
      const entries = event.data && event.data.leaderboard;
      if (!applyBoard(entries, event.at, { strict: true })) return false;
      addPoint(entries, event.at);
      drawCharts();
      return true;
    }

    function onEvent(event) {
      if (!event) return;
      if (event.type === "tournament.leaderboard") {
        if (onLeaderboard(event)) refresh();
      } else if (LIFE_EVENTS.has(event.type)) {
        refresh();
      } else if (event.type === "task.succeeded" && RUN_TASKS.has(event.task_name)) {
        refreshSoon();
      }
    }

    render(initial);
    window.liveConnection({
      path: config.ws_path,
      query: config.ws_query,
      onMessage(data) {
        if (data.kind === "event") {
          onEvent(data.event);
        } else if (data.kind === "backfill") {
          // Only the rankings matter here (older ones are ignored); after a reconnect the page
          // reads everything it may have missed.
          const events = (data.events || []).filter((e) => e.type === "tournament.leaderboard");
          const latest = events[events.length - 1];
          const applied = latest ? onLeaderboard(latest) : false;
          if (applied || data.reconnected) refresh();
        }
      },
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const config = readJson("tournament-config");
    const data = readJson("tournament-data");
    if (config && data) tournamentPage(config, data);
  });
})();
