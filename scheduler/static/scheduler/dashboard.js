/*
 * The live dashboard and the task page: plain JavaScript, no build step, no remote code.
 *
 * The server renders each page complete; this script then keeps it current. It opens the
 * `/ws/events/` websocket (which first sends a backfill of recent events, then every event
 * live), folds task events into the feed's rows in place by task id, counts them into the
 * last-hour counters and the throughput chart, and re-reads `/dashboard/summary.json` every
 * half minute (sooner after a schedule change) for the slower panels. When the socket drops
 * it reconnects with exponential back-off and says so in the header.
 *
 * Data only ever reaches the DOM as text (textContent, attributes): never as HTML.
 */
"use strict";

(() => {
  // The states that end a run: the server's one list (scheduler/protocol.py), from the config.
  let FINAL = new Set();
  const STATE_LABELS = {
    PENDING: "queued",
    RECEIVED: "received",
    STARTED: "running",
    SUCCESS: "success",
    FAILURE: "failed",
    RETRY: "retrying",
    REVOKED: "revoked",
    SKIPPED: "skipped",
  };
  // What the last-hour counters count a task as, by the state of its latest event.
  const CATEGORY = {
    PENDING: "queued",
    RECEIVED: "queued",
    RETRY: "queued",
    STARTED: "running",
    SUCCESS: "succeeded",
    FAILURE: "failed",
  };
  const RANK = { queued: 0, running: 1, succeeded: 2, failed: 2 };
  const FEED_ROWS = 50;
  const CHART_WIDTH = 600;
  const CHART_HEIGHT = 120;
  const SPARK_BAR = 5;
  const SPARK_GAP = 1;
  const SPARK_HEIGHT = 20;
  const REFRESH_EVERY = 30000;
  const REFRESH_AT_MOST_EVERY = 5000;

  // --- DOM and formatting ----------------------------------------------------------------------

  const $ = (selector, root = document) => root.querySelector(selector);
  const SVG = "http://www.w3.org/2000/svg";

  function setAttrs(node, attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    return node;
  }

  /** el("td", {class: "num"}, "text", childNode): strings become text nodes, never HTML. */
  function el(tag, attrs = {}, ...children) {
    const node = setAttrs(document.createElement(tag), attrs);
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  function svgEl(tag, attrs = {}, ...children) {
    const node = setAttrs(document.createElementNS(SVG, tag), attrs);
    for (const child of children) if (child) node.append(child);
    return node;
  }

  function readJson(id) {
    const node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function formatter(timeZone, options) {
    try {
      return new Intl.DateTimeFormat("en-GB", { ...options, timeZone, hourCycle: "h23" });
    } catch (error) {
      return new Intl.DateTimeFormat("en-GB", { ...options, hourCycle: "h23" });
    }
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
    if (seconds < 60) return `${seconds.toFixed(1)} s`;
    let minutes = Math.floor(Math.round(seconds) / 60);
    const rest = Math.round(seconds) % 60;
    if (minutes < 60) return rest ? `${minutes} min ${rest} s` : `${minutes} min`;
    const hours = Math.floor(minutes / 60);
    minutes %= 60;
    return minutes ? `${hours} h ${minutes} min` : `${hours} h`;
  }

  const percent = (fraction) =>
    fraction === null || fraction === undefined ? "—" : `${Math.round(fraction * 100)}%`;
  const stateLabel = (state) => STATE_LABELS[state] || (state ? state.toLowerCase() : "unknown");
  const badge = (state) =>
    el("span", { class: `badge badge-${(state || "").toLowerCase()}`, text: stateLabel(state) });

  /** An error's first line of text, at most 200 characters: the server's error_summary. */
  function oneLine(text) {
    const plain = String(text || "")
      .replace(/<(script|style)\b[\s\S]*?<\/\1\s*>/gi, " ")
      .replace(/<(br|\/p|\/h[1-6]|\/title|\/div|\/li|\/tr)\b[^>]*>/gi, "\n")
      .replace(/<[^>]*>/g, "");
    const lines = plain
      .split("\n")
      .map((part) => part.trim().replace(/\s+/g, " "))
      .filter(Boolean);
    let line = lines[0] || "";
    if (line.endsWith(":") && lines.length > 1) line = `${line} ${lines[1]}`;
    return line.length > 200 ? `${line.slice(0, 199)}…` : line;
  }

  /**
   * A scrolling box whose height is a whole number of its table's rows: its CSS max-height,
   * trimmed to the bottom of the last row that fits, so that no row is cut in half (rows then
   * snap under the sticky header as it scrolls: --head is the header's height).
   */
  function fitWholeRows(box) {
    const table = box.querySelector("table");
    if (!table || !table.tBodies.length) return;
    box.style.maxHeight = "";
    const head = table.tHead ? table.tHead.getBoundingClientRect().height : 0;
    box.style.setProperty("--head", `${head}px`);
    if (box.scrollHeight <= box.clientHeight + 1) return;
    const top = table.getBoundingClientRect().top;
    const room = box.clientHeight;
    let fit = head;
    for (const tr of table.tBodies[0].rows) {
      const bottom = tr.getBoundingClientRect().bottom - top;
      if (bottom > room + 0.5) break;
      fit = bottom;
    }
    if (fit <= head) return;
    const frame = box.offsetHeight - box.clientHeight; // borders, and a horizontal scrollbar
    box.style.maxHeight = `${Math.floor(fit + frame)}px`;
  }

  let fitPending = false;
  function fitAllSoon() {
    if (fitPending) return;
    fitPending = true;
    requestAnimationFrame(() => {
      fitPending = false;
      for (const box of document.querySelectorAll(".scroll")) fitWholeRows(box);
    });
  }
  window.addEventListener("resize", fitAllSoon);

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function errorText(body) {
    if (!body || typeof body !== "object") return "";
    if (typeof body.detail === "string") return body.detail;
    return Object.entries(body)
      .map(([field, value]) => `${field}: ${Array.isArray(value) ? value.join(" ") : value}`)
      .join("; ");
  }

  async function postJson(url) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        Accept: "application/json",
        "Content-Type": "application/json",
        "X-CSRFToken": csrfToken(),
      },
      body: "{}",
    });
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      body = null;
    }
    if (!response.ok) throw new Error(errorText(body) || `HTTP ${response.status}`);
    return body;
  }

  let noticeTimer = null;
  function notify(text, kind = "info", link = null) {
    const notice = $("#notice");
    if (!notice) return;
    notice.replaceChildren(text);
    if (link) notice.append(" ", el("a", { href: link.href, text: link.text }));
    notice.dataset.kind = kind;
    notice.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => {
      notice.hidden = true;
    }, 7000);
  }

  // --- Actions: Run now, Pause, Resume, Retry --------------------------------------------------

  function installActions(config, afterAction) {
    const taskUrl = (id) => config.task_url.replace("__id__", encodeURIComponent(id));
    document.addEventListener("click", async (event) => {
      const button = event.target.closest("button[data-action]");
      if (!button) return;
      event.stopPropagation();
      const action = button.dataset.action;
      const api = config.api_root;
      const url =
        action === "retry"
          ? `${api}tasks/${encodeURIComponent(button.dataset.taskId)}/retry/`
          : `${api}schedules/${encodeURIComponent(button.dataset.id)}/${action}/`;
      const what = { run: "run it", enable: "resume it", disable: "pause it", retry: "retry it" };
      button.disabled = true;
      try {
        const body = await postJson(url);
        if (action === "run" || action === "retry") {
          notify(`Queued task ${String(body.task_id).slice(0, 8)}…`, "info", {
            href: taskUrl(body.task_id),
            text: "details",
          });
        } else {
          notify(action === "enable" ? `Resumed ${body.name}.` : `Paused ${body.name}.`);
        }
        afterAction(action, body);
      } catch (error) {
        notify(`Could not ${what[action] || action}: ${error.message}`, "error");
      } finally {
        button.disabled = false;
      }
    });
  }

  // --- The dashboard ---------------------------------------------------------------------------

  function dashboard(config, initial) {
    const zone = config.timezone;
    const fmtTime = formatter(zone, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    const fmtDayTime = formatter(zone, { weekday: "short", hour: "2-digit", minute: "2-digit" });
    const fmtDaySeconds = formatter(zone, {
      weekday: "short",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
    const fmtHourMinute = formatter(zone, { hour: "2-digit", minute: "2-digit" });
    const taskUrl = (id) => config.task_url.replace("__id__", encodeURIComponent(id));
    const catalog = new Set(config.catalog || []);
    // The server's clock, not the browser's, says which minute it is (the chart's last bar).
    const clockSkew = Date.parse(initial.generated_at) - Date.now();
    const now = () => Date.now() + clockSkew;

    // Feed: task id -> {data, tr}; rows are updated in place, never re-created.
    const feedBody = $("#feed-body");
    const feedEmpty = $("#feed-empty");
    const feed = new Map();
    const serverRows = new Map([...feedBody.children].map((tr) => [tr.dataset.taskId, tr]));
    for (const row of initial.feed) {
      const data = {
        ...row,
        queued_at: Date.parse(row.queued_at),
        at: row.at ? Date.parse(row.at) : null,
      };
      const tr = serverRows.get(row.task_id) || makeFeedRow();
      if (!tr.isConnected) feedBody.append(tr);
      feed.set(row.task_id, { data, tr });
      renderFeedRow(feed.get(row.task_id));
    }

    // The feed's filter, from the page's query string: the websocket is asked for the same
    // events (task, state, object); it has no periodic-task filter, so that one is applied here.
    const filter = config.filter || {};
    const filterQuery = ["task", "state", "object"]
      .filter((key) => filter[key])
      .map((key) => `${key}=${encodeURIComponent(filter[key])}&`)
      .join("");
    const wanted = (event) =>
      !filter.periodic_task ||
      event.periodic_task_name === filter.periodic_task ||
      (!event.periodic_task_name && feed.has(event.task_id));

    // While the live connection is down, the workers and beat shown may be long gone.
    const cluster = $("#cluster");
    document.addEventListener("live:state", (event) => {
      const stale = event.detail.state !== "live" && event.detail.state !== "connecting";
      cluster.toggleAttribute("data-stale", stale);
      $("#cluster-stale").hidden = !stale;
    });

    function makeFeedRow() {
      return el(
        "tr",
        {},
        el("td", { class: "c-state" }, el("span", { class: "badge" })),
        el("td", { class: "c-task" }, el("a", {})),
        el("td", { class: "c-periodic" }),
        el("td", { class: "c-duration num" }),
        el("td", { class: "c-worker mono" }),
        el("td", { class: "c-time nowrap" }, el("time", {})),
      );
    }

    function renderFeedRow({ data, tr }) {
      tr.dataset.taskId = data.task_id;
      tr.dataset.state = data.state;
      const badgeNode = $(".c-state .badge", tr);
      badgeNode.className = `badge badge-${data.state.toLowerCase()}`;
      badgeNode.textContent = stateLabel(data.state);
      const cell = $(".c-task", tr);
      const link = $("a", cell);
      link.href = taskUrl(data.task_id);
      link.textContent = data.task_name || "—";
      let error = $(".c-error", cell);
      if (data.state === "FAILURE" && data.message) {
        if (!error) error = cell.appendChild(el("div", { class: "c-error" }));
        error.textContent = oneLine(data.message);
        error.title = data.message;
      } else if (error) {
        error.remove();
      }
      $(".c-periodic", tr).textContent = data.periodic_task_name || "—";
      $(".c-duration", tr).textContent = duration(data.duration);
      $(".c-worker", tr).textContent = data.worker || "—";
      const time = $(".c-time time", tr);
      time.dateTime = new Date(data.queued_at).toISOString();
      time.textContent = fmtTime.format(data.queued_at);
    }

    function eventWins(data, state, at) {
      // Same rule as selectors.task_feed: by time, but nothing undoes the end of a run.
      if (data.at === null || at >= data.at) return true;
      return FINAL.has(state) && !FINAL.has(data.state);
    }

    function feedEvent(event, live) {
      const at = Date.parse(event.at);
      let entry = feed.get(event.task_id);
      const fresh = !entry;
      if (fresh) {
        entry = {
          data: {
            task_id: event.task_id,
            queued_at: at,
            at: null,
            state: "",
            task_name: "",
            periodic_task_name: "",
            worker: "",
            duration: null,
            message: "",
          },
          tr: makeFeedRow(),
        };
      }
      const data = entry.data;
      data.queued_at = Math.min(data.queued_at, at);
      for (const key of ["task_name", "periodic_task_name", "worker"]) {
        if (event[key]) data[key] = event[key];
      }
      if (event.duration !== null && event.duration !== undefined) data.duration = event.duration;
      if (eventWins(data, event.state, at)) {
        data.state = event.state;
        data.at = at;
        data.message = event.message || "";
      }
      renderFeedRow(entry);
      if (fresh) {
        feed.set(event.task_id, entry);
        const before = [...feedBody.children].find((tr) => {
          const other = feed.get(tr.dataset.taskId);
          return other && other.data.queued_at < data.queued_at;
        });
        feedBody.insertBefore(entry.tr, before || null);
        if (live) entry.tr.classList.add("fresh");
        while (feedBody.children.length > FEED_ROWS) {
          const last = feedBody.lastElementChild;
          feed.delete(last.dataset.taskId);
          last.remove();
        }
        feedEmpty.hidden = true;
        fitAllSoon();
      }
    }

    feedBody.addEventListener("click", (event) => {
      if (event.target.closest("a, button")) return;
      const tr = event.target.closest("tr[data-task-id]");
      if (tr) location.assign(taskUrl(tr.dataset.taskId));
    });

    // Counters and throughput: the summary's figures as of `snapshot`, plus every task event
    // after it. Events are kept by key (a worker's events carry no id until written) so that a
    // newer summary can replace the figures and the events it has not counted yet be re-added.
    let counts = { ...initial.counts };
    let snapshot = Date.parse(initial.generated_at);
    let known = new Map(Object.entries(initial.in_flight));
    let bins = new Map();
    let counted = new Map();
    const eventKey = (event) => `${event.type}|${event.task_id}|${Date.parse(event.at)}`;

    function loadThroughput(throughput) {
      bins = new Map(
        throughput.map((bin) => [
          Date.parse(bin.minute),
          { succeeded: bin.succeeded, failed: bin.failed },
        ]),
      );
    }
    loadThroughput(initial.throughput);

    function countEvent(event) {
      const at = Date.parse(event.at);
      const key = eventKey(event);
      if (!(at > snapshot) || counted.has(key)) return;
      counted.set(key, event);
      const old = known.get(event.task_id);
      const category = CATEGORY[event.state];
      if (!category) {
        // Revoked or skipped: no longer waiting or running, counted nowhere.
        if (old === "queued" || old === "running") {
          counts[old] = Math.max(0, counts[old] - 1);
          known.set(event.task_id, "ended");
        }
        return;
      }
      if (old === category || old === "ended") return;
      if (old && RANK[category] < RANK[old] && event.type !== "task.retried") return;
      if (old && old !== "succeeded" && old !== "failed") {
        counts[old] = Math.max(0, counts[old] - 1);
      } else if (old) {
        return; // an ended run does not start again under the same id, except by a retry
      }
      counts[category] += 1;
      known.set(event.task_id, category);
      if (category === "succeeded" || category === "failed") {
        const minute = Math.floor(at / 60000) * 60000;
        const bin = bins.get(minute) || { succeeded: 0, failed: 0 };
        bin[category] += 1;
        bins.set(minute, bin);
      }
      scheduleDraw();
    }

    function renderCounters() {
      for (const node of document.querySelectorAll("[data-counter]")) {
        node.textContent = String(counts[node.dataset.counter] ?? 0);
      }
    }

    function renderChart() {
      const chart = $("#throughput");
      const current = Math.floor(now() / 60000) * 60000;
      const minutes = [];
      for (let k = 59; k >= 0; k -= 1) minutes.push(current - k * 60000);
      const values = minutes.map((minute) => bins.get(minute) || { succeeded: 0, failed: 0 });
      const peak = Math.max(0, ...values.map((v) => v.succeeded + v.failed));
      const width = CHART_WIDTH / minutes.length;
      const bars = values.map((value, k) => {
        const ok = peak ? (CHART_HEIGHT * value.succeeded) / peak : 0;
        const failed = peak ? (CHART_HEIGHT * value.failed) / peak : 0;
        return svgEl(
          "g",
          {},
          svgEl("title", {
            text: `${fmtHourMinute.format(minutes[k])}: ${value.succeeded} succeeded, ${value.failed} failed`,
          }),
          svgEl("rect", { class: "bar-ok", x: k * width + 1, y: CHART_HEIGHT - ok, width: width - 2, height: ok }),
          svgEl("rect", {
            class: "bar-failed",
            x: k * width + 1,
            y: CHART_HEIGHT - ok - failed,
            width: width - 2,
            height: failed,
          }),
        );
      });
      chart.replaceChildren(...bars);
      $("#throughput-peak").textContent = String(peak);
      $("#throughput-total").textContent = String(
        values.reduce((sum, v) => sum + v.succeeded + v.failed, 0),
      );
    }

    let drawPending = false;
    function scheduleDraw() {
      if (drawPending) return;
      drawPending = true;
      requestAnimationFrame(() => {
        drawPending = false;
        renderCounters();
        renderChart();
      });
    }
    // The chart slides by one bar every minute even when nothing happens.
    setInterval(scheduleDraw, 10000);

    // Failures: a failed run shows up at once; the summary brings its stored error later.
    const failuresBody = $("#failures-body");
    function failureRow(failure) {
      const cells = [
        el("td", { class: "nowrap", text: failure.date_done ? fmtDaySeconds.format(Date.parse(failure.date_done)) : "—" }),
        el("td", {}, el("a", { href: taskUrl(failure.task_id), text: failure.task_name || "—" })),
        el("td", { text: failure.periodic_task_name || "—" }),
        el(
          "td",
          { class: "c-error-cell" },
          el("div", { class: "c-error", title: failure.error || "", text: oneLine(failure.error) || "—" }),
        ),
      ];
      if (config.can_run) {
        cells.push(
          el(
            "td",
            { class: "num" },
            failure.retryable
              ? el("button", { type: "button", class: "btn", "data-action": "retry", "data-task-id": failure.task_id, text: "Retry" })
              : el("span", { class: "muted", title: "not a catalog task", text: "—" }),
          ),
        );
      }
      return el("tr", { "data-task-id": failure.task_id }, ...cells);
    }

    function renderFailures(failures) {
      if (!failures.length) {
        failuresBody.replaceChildren(
          el("tr", { class: "placeholder" }, el("td", { colspan: 5, class: "empty", text: "No failed run." })),
        );
        return;
      }
      failuresBody.replaceChildren(...failures.map(failureRow));
    }

    function failureEvent(event) {
      if (!(Date.parse(event.at) > snapshot)) return;
      const exists = [...failuresBody.children].some((tr) => tr.dataset.taskId === event.task_id);
      if (exists) return;
      const placeholder = $("tr.placeholder", failuresBody);
      if (placeholder) placeholder.remove();
      failuresBody.prepend(
        failureRow({
          task_id: event.task_id,
          task_name: event.task_name,
          periodic_task_name: event.periodic_task_name,
          date_done: event.at,
          error: event.message,
          retryable: catalog.has(event.task_name),
        }),
      );
    }

    // Periodic tasks
    function sparkline(runs) {
      const width = 20 * (SPARK_BAR + SPARK_GAP);
      const longest = Math.max(0, ...runs.map((run) => run.duration || 0));
      const bars = runs.map((run, k) => {
        const share = longest ? (run.duration || 0) / longest : 1;
        const height = Math.max(3, SPARK_HEIGHT * share);
        const kind = run.state === "SUCCESS" ? "s-success" : run.state === "FAILURE" ? "s-failure" : "s-other";
        return svgEl(
          "rect",
          { class: kind, x: k * (SPARK_BAR + SPARK_GAP), y: SPARK_HEIGHT - height, width: SPARK_BAR, height },
          svgEl("title", {
            text: `${stateLabel(run.state)} ${fmtDayTime.format(Date.parse(run.at))} · ${duration(run.duration)}`,
          }),
        );
      });
      return svgEl(
        "svg",
        { class: "spark", width, height: SPARK_HEIGHT, viewBox: `0 0 ${width} ${SPARK_HEIGHT}`, role: "img", "aria-label": `last ${runs.length} runs` },
        ...bars,
      );
    }

    function renderPeriodic(periodic) {
      const body = $("#periodic-body");
      $("#periodic-count").textContent = `${periodic.rows.length} of ${periodic.total}`;
      if (!periodic.rows.length) {
        body.replaceChildren(
          el("tr", {}, el("td", { colspan: 9, class: "empty", text: "No periodic task yet: create one in the admin, or run python manage.py seed_demo." })),
        );
        return;
      }
      body.replaceChildren(
        ...periodic.rows.map((task) => {
          const name = el(
            "td",
            {},
            el("a", { href: `/admin/django_celery_beat/periodictask/${encodeURIComponent(task.id)}/change/`, text: task.name }),
          );
          if (!task.enabled) name.append(" ", el("span", { class: "tag", text: "paused" }));
          const outside = task.in_catalog === false ? " — outside the catalog" : "";
          name.append(el("div", { class: "muted mono", text: `${task.task}${outside}` }));
          const last = el("td", { class: "nowrap" });
          if (task.last_status) last.append(badge(task.last_status), " ");
          if (task.last_run_at) last.append(el("span", { class: "muted", text: fmtDayTime.format(Date.parse(task.last_run_at)) }));
          else if (!task.last_status) last.append(el("span", { class: "muted", text: "never" }));
          const cells = [
            name,
            el("td", { text: task.schedule }),
            el(
              "td",
              { class: "nowrap" },
              task.next_run
                ? el("time", { datetime: task.next_run, text: fmtDayTime.format(Date.parse(task.next_run)) })
                : el("span", { class: "muted", text: "—" }),
            ),
            last,
            el("td", {}, sparkline(task.runs)),
            el("td", { class: "num", text: percent(task.success_rate) }),
            el("td", { class: "num", text: duration(task.p50) }),
            el("td", { class: "num", text: duration(task.p95) }),
          ];
          if (config.can_change) {
            const toggle = task.enabled
              ? el("button", { type: "button", class: "btn", "data-action": "disable", "data-id": task.id, text: "Pause" })
              : el("button", { type: "button", class: "btn", "data-action": "enable", "data-id": task.id, text: "Resume" });
            cells.push(
              el(
                "td",
                {},
                el(
                  "div",
                  { class: "actions" },
                  el("button", { type: "button", class: "btn", "data-action": "run", "data-id": task.id, text: "Run now" }),
                  toggle,
                ),
              ),
            );
          }
          return el("tr", { "data-schedule-id": task.id, "data-enabled": String(task.enabled) }, ...cells);
        }),
      );
    }

    // Upcoming heatmap: the same shades as views.heat_level.
    const heatLevel = (count, peak) =>
      count <= 0 || peak <= 0 ? 0 : Math.max(1, Math.min(4, Math.ceil((4 * count) / peak)));

    function renderUpcoming(upcoming) {
      const holder = $("#upcoming");
      const note = $("#upcoming-note");
      const plural = (n) => `${n} run${n === 1 ? "" : "s"}`;
      let text = "";
      if (upcoming.busiest) {
        const more = upcoming.busiest.slots - 1;
        const tie = more > 0 ? ` (and ${more} more slot${more === 1 ? "" : "s"} as busy)` : "";
        text += `Busiest: ${fmtDayTime.format(Date.parse(upcoming.busiest.at))}, ${plural(upcoming.busiest.runs)}${tie}. `;
      }
      if (upcoming.schedules_read < upcoming.schedules_enabled) {
        text += `Showing the first ${upcoming.schedules_read} of ${upcoming.schedules_enabled} enabled schedules. `;
      }
      note.textContent = text;
      if (!upcoming.rows.length) {
        holder.replaceChildren(el("p", { class: "empty", text: "No run of an enabled schedule in the next 24 hours." }));
        return;
      }
      const slots = upcoming.slots.map((slot) => Date.parse(slot));
      const peak = Math.max(0, ...upcoming.totals);
      const rowPeak = Math.max(
        0,
        ...upcoming.rows.filter((row) => !row.frequent).map((row) => Math.max(...row.counts)),
      );
      const head = el(
        "tr",
        {},
        el("th", { class: "label" }),
        ...slots.map((slot, k) =>
          el("th", { text: k % 4 === 0 && k < slots.length - 2 ? fmtHourMinute.format(slot) : "" }),
        ),
      );
      const total = el(
        "tr",
        { class: "total" },
        el("td", { class: "label", text: "All schedules" }),
        ...upcoming.totals.map((count, k) =>
          el("td", {
            class: `cell h${heatLevel(count, peak)}`,
            title: `${fmtDayTime.format(slots[k])}: ${plural(count)}`,
            text: count ? String(count) : "",
          }),
        ),
      );
      const rows = upcoming.rows.map((row) => {
        if (row.frequent) {
          const more = `more than ${upcoming.per_schedule} runs`;
          return el(
            "tr",
            { class: "frequent" },
            el("td", { class: "label", title: `${row.name} (${row.task}): ${more} in 24 hours`, text: row.name }),
            el("td", { class: "cell band", colspan: slots.length, text: `runs all day: ${more}, left out of the totals` }),
          );
        }
        const label = el("td", { class: "label", title: `${row.name} (${row.task})`, text: row.name });
        return el(
          "tr",
          {},
          label,
          ...row.counts.map((count, k) =>
            el("td", {
              class: `cell h${heatLevel(count, rowPeak)}`,
              title: `${row.name} · ${fmtDayTime.format(slots[k])}: ${plural(count)}`,
            }),
          ),
        );
      });
      holder.replaceChildren(el("table", { class: "heatmap" }, el("thead", {}, head), el("tbody", {}, total, ...rows)));
    }

    // Workers and queues
    function renderCluster(cluster) {
      const error = $("#cluster-error");
      error.hidden = !cluster.error;
      error.textContent = cluster.error ? `Cannot read the broker: ${cluster.error}` : "";
      const workers = $("#workers");
      workers.replaceChildren(
        ...(cluster.workers.length
          ? cluster.workers.map((worker) =>
              el(
                "li",
                {},
                el("span", { class: "mono" }, el("span", { class: "dot" }), worker.name),
                el("span", { class: "muted", text: `seen ${fmtTime.format(Date.parse(worker.last_seen))}` }),
              ),
            )
          : [el("li", { class: "muted", text: "No worker online." })]),
      );
      renderBeat(cluster.beat);
      $("#queues").replaceChildren(
        ...cluster.queues.map((queue) =>
          el("tr", {}, el("td", { title: queue.purpose, text: queue.name }), el("td", { class: "num", text: String(queue.depth) })),
        ),
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
      holder.replaceChildren(
        el(
          "p",
          { class: "mono" },
          ...(beat.leader ? [el("span", { class: "dot" }), beat.leader] : ["no leader"]),
          " ",
          el("span", { class: "muted", text: details.join(", ") }),
        ),
        el("p", {
          class: "muted",
          text: `${standbys.length} standby${standbys.length === 1 ? "" : "s"}${standbys.length ? ": " + standbys.join(", ") : ""}`,
        }),
        ...(beat.missed || []).map((run) =>
          el("p", { class: "missed" }, `Missed run: ${run.name} `, el("span", { class: "muted", text: `published ${run.at}, no result` })),
        ),
      );
    }

    // The summary: every half minute, and soon (at most every 5 s) after a schedule changed.
    let refreshing = false;
    let lastRefresh = 0;
    let soonTimer = null;

    function applySummary(summary) {
      counts = { ...summary.counts };
      snapshot = Date.parse(summary.generated_at);
      known = new Map(Object.entries(summary.in_flight));
      loadThroughput(summary.throughput);
      const pending = [...counted.values()].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
      counted = new Map();
      for (const event of pending) countEvent(event);
      scheduleDraw();
      renderPeriodic(summary.periodic);
      renderUpcoming(summary.upcoming);
      renderFailures(summary.failures);
      renderCluster(summary.cluster);
      fitAllSoon();
    }

    async function refresh() {
      if (refreshing) return;
      refreshing = true;
      lastRefresh = Date.now();
      try {
        const response = await fetch(config.summary_url, {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
        });
        if (response.ok) applySummary(await response.json());
      } catch (error) {
        // The server is restarting: the websocket's indicator already says so.
      } finally {
        refreshing = false;
      }
    }

    function refreshSoon() {
      if (soonTimer !== null) return;
      const wait = Math.max(1000, lastRefresh + REFRESH_AT_MOST_EVERY - Date.now());
      soonTimer = setTimeout(() => {
        soonTimer = null;
        refresh();
      }, wait);
    }
    setInterval(refresh, REFRESH_EVERY);

    function handleEvent(event, live) {
      if (!event || typeof event.type !== "string") return;
      if (event.type.startsWith("task.") && event.task_id) {
        if (wanted(event)) feedEvent(event, live);
        countEvent(event);
        if (event.type === "task.failed") failureEvent(event);
        if (event.periodic_task_name && FINAL.has(event.state)) refreshSoon();
      } else if (event.type.startsWith("schedule.")) {
        refreshSoon();
      }
    }

    installActions(config, (action) => {
      if (action === "enable" || action === "disable") refresh();
      else refreshSoon();
    });

    window.liveConnection({
      path: config.ws_path,
      query: `${filterQuery}backfill=300`,
      onMessage(message) {
        if (message.kind === "backfill") {
          for (const event of message.events) handleEvent(event, false);
          // Back after a restart: the slower panels may have moved on too.
          if (message.reconnected) refresh();
        } else if (message.kind === "event") {
          handleEvent(message.event, true);
        }
      },
    });
    scheduleDraw();
    fitAllSoon();
  }

  // --- The task page ---------------------------------------------------------------------------

  function taskPage(config) {
    const timeline = $("#timeline");
    const stateBadge = $("#task-state");
    const fmtTime = formatter(config.timezone, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    const seen = new Set(
      [...timeline.querySelectorAll("li[data-type]")].map(
        (li) => `${li.dataset.type}|${Date.parse(li.dataset.at)}`,
      ),
    );
    let latest = { at: null, state: stateBadge.dataset.state };

    function add(event) {
      const at = Date.parse(event.at);
      const key = `${event.type}|${at}`;
      if (seen.has(key)) return;
      seen.add(key);
      const placeholder = $("li.muted", timeline);
      if (placeholder) placeholder.remove();
      const item = el(
        "li",
        { "data-state": event.state, "data-key": key },
        el("strong", { text: event.type }),
        el("span", { class: "when", text: fmtTime.format(at) }),
      );
      if (event.worker) item.append(el("div", { class: "muted mono", text: event.worker }));
      if (event.duration !== null && event.duration !== undefined) {
        item.append(el("div", { class: "muted", text: `took ${duration(event.duration)}` }));
      }
      if (event.message) item.append(el("div", { class: "c-error", title: event.message, text: oneLine(event.message) }));
      timeline.append(item);
      if (latest.at === null || at >= latest.at || (FINAL.has(event.state) && !FINAL.has(latest.state))) {
        latest = { at, state: event.state };
        stateBadge.dataset.state = event.state;
        stateBadge.className = `badge badge-${event.state.toLowerCase()}`;
        stateBadge.textContent = stateLabel(event.state);
        if (FINAL.has(event.state)) $("#task-finished").hidden = false;
      }
    }

    installActions(config, () => {});
    const filter = config.task_name ? `task=${encodeURIComponent(config.task_name)}&` : "";
    window.liveConnection({
      path: config.ws_path,
      query: `${filter}backfill=100`,
      onMessage(message) {
        const events = message.kind === "backfill" ? message.events : message.kind === "event" ? [message.event] : [];
        for (const event of events) if (event.task_id === config.task_id) add(event);
      },
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const dashboardConfig = readJson("dashboard-config");
    const taskConfig = readJson("task-config");
    FINAL = new Set((dashboardConfig || taskConfig || {}).finished_states || []);
    if (dashboardConfig) dashboard(dashboardConfig, readJson("dashboard-initial"));
    if (taskConfig) taskPage(taskConfig);
  });
})();
