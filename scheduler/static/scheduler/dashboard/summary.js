/*
 * /dashboard/summary.json, read again every half minute for the slower panels, and soon (at
 * most every 5 s) after something they show changed.
 */
import { getJson } from "../lib/http.js";

const REFRESH_EVERY = 30000;
const REFRESH_AT_MOST_EVERY = 5000;

/** Reads `url` (or the URL a function of it gives at each read) every half minute and hands the
 * summary to `apply`: {refresh, refreshSoon}. */
export function summaryReader(url, apply) {
  let refreshing = false;
  let lastRefresh = 0;
  let soonTimer = null;

  async function refresh() {
    if (refreshing) return;
    refreshing = true;
    lastRefresh = Date.now();
    try {
      const summary = await getJson(typeof url === "function" ? url() : url);
      if (summary) apply(summary);
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
  return { refresh, refreshSoon };
}
