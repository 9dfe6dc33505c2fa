"use strict";

// The live connection to /ws/events/ shared by the dashboard and the chat page: reconnects with
// exponential back-off and jitter, pings to find dead connections, and shows its state in the
// page's #connection element. Loaded before the page's own script, which calls
// `window.liveConnection({ path, query, onMessage })`.

(() => {
  const PING_EVERY = 25000;
  const MAX_BACKOFF = 30000;
  const $ = (selector, root = document) => root.querySelector(selector);

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  // --- The websocket, with reconnection --------------------------------------------------------

  /**
   * Connects to /ws/events/ and reconnects with exponential back-off (1 s, 2 s, 4 s ... 30 s,
   * with jitter so that a restarted server is not hit by every browser at once). The header's
   * indicator says "Live" once the backfill arrived, "Reconnecting…" with a countdown between
   * attempts, and stops for good on 4401/4403 (signed out, no permission).
   */
  function liveConnection({ path, query, onMessage }) {
    const indicator = $("#connection");
    let attempt = 0;
    let socket = null;
    let retryTimer = null;
    let countdownTimer = null;
    let pingTimer = null;
    let lastHeard = 0;
    let connections = 0;

    function show(state, text, link = null) {
      // Panels that show what the live connection keeps current listen to this (stale marks).
      document.dispatchEvent(new CustomEvent("live:state", { detail: { state } }));
      if (!indicator) return;
      indicator.dataset.state = state;
      indicator.replaceChildren(text);
      if (link) indicator.append(" ", el("a", { href: link.href, text: link.text }));
    }

    function clearTimers() {
      clearTimeout(retryTimer);
      clearInterval(countdownTimer);
      clearInterval(pingTimer);
      retryTimer = countdownTimer = pingTimer = null;
    }

    function connect() {
      clearTimers();
      if (attempt === 0) show("connecting", "Connecting…");
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      const ws = new WebSocket(`${scheme}//${location.host}${path}?${query}`);
      socket = ws;
      ws.addEventListener("open", () => {
        lastHeard = Date.now();
        // A connection that stops answering pings is dead even if TCP has not noticed yet.
        pingTimer = setInterval(() => {
          if (Date.now() - lastHeard > 2 * PING_EVERY + 5000) {
            ws.close();
            return;
          }
          if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ action: "ping" }));
        }, PING_EVERY);
      });
      ws.addEventListener("message", (message) => {
        lastHeard = Date.now();
        let data;
        try {
          data = JSON.parse(message.data);
        } catch (error) {
          return;
        }
        if (data.kind === "backfill") {
          attempt = 0;
          connections += 1;
          show("live", "Live");
          data.reconnected = connections > 1;
        }
        onMessage(data);
      });
      ws.addEventListener("close", (event) => {
        if (socket !== ws) return;
        clearTimers();
        if (event.code === 4401) {
          show("closed", "Signed out:", { href: `/admin/login/?next=${encodeURIComponent(location.pathname)}`, text: "sign in" });
          return;
        }
        if (event.code === 4403) {
          show("closed", "No permission to watch events");
          return;
        }
        if (event.code === 4400) {
          // The same filter would be refused again: say so rather than retry for ever.
          show("closed", "Filter refused by the server");
          return;
        }
        scheduleReconnect();
      });
    }

    function scheduleReconnect() {
      const ceiling = Math.min(MAX_BACKOFF, 1000 * 2 ** attempt);
      const delay = ceiling / 2 + (Math.random() * ceiling) / 2;
      attempt += 1;
      const due = Date.now() + delay;
      const tick = () => {
        const seconds = Math.max(1, Math.ceil((due - Date.now()) / 1000));
        show("reconnecting", `Reconnecting… (attempt ${attempt}, next in ${seconds} s)`);
      };
      tick();
      countdownTimer = setInterval(tick, 1000);
      retryTimer = setTimeout(connect, delay);
    }

    // Back online or back to the tab: try now rather than at the end of a long back-off.
    const retryNow = () => {
      if (retryTimer !== null && document.visibilityState === "visible") connect();
    };
    window.addEventListener("online", retryNow);
    document.addEventListener("visibilitychange", retryNow);
    connect();
  }

  function readJson(id) {
    const node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function formatter(timeZone) {
    const options = {
      year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    };
    try {
      return new Intl.DateTimeFormat("sv-SE", { ...options, timeZone });
    } catch (error) {
      return new Intl.DateTimeFormat("sv-SE", options);
    }
  }

  window.liveConnection = liveConnection;
  // Small helpers the chat and tournament pages share: the JSON a template embedded, and a
  // date-time formatter in a zone (the browser's own if the zone is unknown to it).
  window.pageHelpers = { readJson, formatter };
})();
