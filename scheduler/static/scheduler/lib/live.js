/*
 * The live connection to /ws/events/ every live page shares: reconnects with exponential
 * back-off and jitter, pings to find dead connections, and shows its state in the page's
 * #connection element.
 *
 *   liveConnection({ path, query, onMessage, quiet })
 *
 * `onMessage` gets each message the server sends; a backfill (sent first on every connection)
 * says `reconnected: true` from the second connection on. Every change of state is also a
 * `live:state` event on the document, for the panels that mark what they show as stale; a
 * `quiet` connection (a page's second one, for alerts only) shows and sends neither.
 */
import { $, showText } from "./dom.js";

const PING_EVERY = 25000;
const MAX_BACKOFF = 30000;
// Closed by the server for a reason that trying again would not change: what to say instead.
const REFUSALS = {
  4401: () => [
    "Signed out:",
    { href: `/admin/login/?next=${encodeURIComponent(location.pathname)}`, text: "sign in" },
  ],
  4403: () => ["No permission to watch events"],
  // The same filter would be refused again: say so rather than retry for ever.
  4400: () => ["Filter refused by the server"],
};

/**
 * Connects to /ws/events/ and reconnects with exponential back-off (1 s, 2 s, 4 s ... 30 s,
 * with jitter so that a restarted server is not hit by every browser at once). The header's
 * indicator says "Live" once the backfill arrived, "Reconnecting…" with a countdown between
 * attempts, and stops for good on 4401/4403/4400 (signed out, no permission, bad filter).
 */
class LiveConnection {
  constructor({ path, query, onMessage, quiet = false }) {
    this.url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}${path}?${query}`;
    this.onMessage = onMessage;
    this.quiet = quiet;
    this.indicator = quiet ? null : $("#connection");
    this.attempt = 0;
    this.socket = null;
    this.retryTimer = null;
    this.countdownTimer = null;
    this.pingTimer = null;
    this.lastHeard = 0;
    this.connections = 0;
  }

  start() {
    // Back online or back to the tab: try now rather than at the end of a long back-off.
    const retryNow = () => {
      if (this.retryTimer !== null && document.visibilityState === "visible") this.connect();
    };
    window.addEventListener("online", retryNow);
    document.addEventListener("visibilitychange", retryNow);
    this.connect();
  }

  show(state, text, link = null) {
    if (this.quiet) return;
    // Panels that show what the live connection keeps current listen to this (stale marks).
    document.dispatchEvent(new CustomEvent("live:state", { detail: { state } }));
    if (!this.indicator) return;
    this.indicator.dataset.state = state;
    showText(this.indicator, text, link);
  }

  clearTimers() {
    clearTimeout(this.retryTimer);
    clearInterval(this.countdownTimer);
    clearInterval(this.pingTimer);
    this.retryTimer = this.countdownTimer = this.pingTimer = null;
  }

  connect() {
    this.clearTimers();
    if (this.attempt === 0) this.show("connecting", "Connecting…");
    const ws = new WebSocket(this.url);
    this.socket = ws;
    ws.addEventListener("open", () => this.opened(ws));
    ws.addEventListener("message", (message) => this.received(message));
    ws.addEventListener("close", (event) => this.closed(ws, event));
  }

  opened(ws) {
    this.lastHeard = Date.now();
    // A connection that stops answering pings is dead even if TCP has not noticed yet.
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastHeard > 2 * PING_EVERY + 5000) {
        ws.close();
        return;
      }
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ action: "ping" }));
    }, PING_EVERY);
  }

  received(message) {
    this.lastHeard = Date.now();
    let data;
    try {
      data = JSON.parse(message.data);
    } catch (error) {
      return;
    }
    if (data.kind === "backfill") {
      this.attempt = 0;
      this.connections += 1;
      this.show("live", "Live");
      data.reconnected = this.connections > 1;
    }
    this.onMessage(data);
  }

  closed(ws, event) {
    if (this.socket !== ws) return;
    this.clearTimers();
    const refusal = REFUSALS[event.code];
    if (refusal) this.show("closed", ...refusal());
    else this.scheduleReconnect();
  }

  scheduleReconnect() {
    const ceiling = Math.min(MAX_BACKOFF, 1000 * 2 ** this.attempt);
    const delay = ceiling / 2 + (Math.random() * ceiling) / 2;
    this.attempt += 1;
    const due = Date.now() + delay;
    const tick = () => {
      const seconds = Math.max(1, Math.ceil((due - Date.now()) / 1000));
      this.show("reconnecting", `Reconnecting… (attempt ${this.attempt}, next in ${seconds} s)`);
    };
    tick();
    this.countdownTimer = setInterval(tick, 1000);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }
}

export function liveConnection(options) {
  const connection = new LiveConnection(options);
  connection.start();
  return connection;
}
