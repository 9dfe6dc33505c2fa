/*
 * The chat page: plain JavaScript, no build step, no remote code.
 *
 * The server renders the conversation; this script sends what is typed to
 * POST /api/sessions/<id>/messages/ (session cookie + CSRF token), and shows every message of the
 * session as it arrives on the `/ws/events/?object=session:<id>` websocket (its `session.message`
 * events), so the agent's reply appears without a reload. It also follows the run that answers
 * (task.started / retried / failed events of the session) to say "thinking", "retrying" or why
 * no reply came. When the socket drops it reconnects with exponential back-off and says so in
 * the header; the backfill sent on each connection brings what was missed meanwhile.
 *
 * Data only ever reaches the DOM as text (textContent, attributes): never as HTML.
 */
"use strict";

(() => {

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

  // Shared with the other live pages (scheduler/static/scheduler/live.js).
  const { readJson, formatter } = window.pageHelpers;

  function errorText(body) {
    if (!body || typeof body !== "object") return "";
    if (typeof body.detail === "string") return body.detail;
    return Object.entries(body)
      .map(([field, value]) => `${field}: ${Array.isArray(value) ? value.join(" ") : value}`)
      .join("; ");
  }

  // --- The conversation ------------------------------------------------------------------------

  function chat(config) {
    const list = $("#messages");
    const empty = $("#messages-empty");
    const pendingLine = $("#pending");
    const form = $("#composer");
    const fmt = formatter(config.timezone);
    const shown = new Set(
      Array.from(list.querySelectorAll("[data-message-id]"), (node) => Number(node.dataset.messageId)),
    );
    // Task ids of the runs answering what was sent from this page, until their reply arrives.
    const pending = new Map();

    function scrollToEnd() {
      list.scrollTop = list.scrollHeight;
    }

    function showMessage(message, { fresh = true } = {}) {
      if (!message || typeof message.id !== "number" || shown.has(message.id)) return;
      shown.add(message.id);
      const at = new Date(message.created_at);
      const item = el(
        "li",
        { class: `msg msg-${message.role}${fresh ? " fresh" : ""}`, "data-message-id": message.id },
        el(
          "div",
          { class: "msg-meta" },
          el("span", { class: "msg-role", text: message.role }),
          " ",
          el("time", {
            datetime: message.created_at,
            text: Number.isNaN(at.getTime()) ? message.created_at : fmt.format(at),
          }),
        ),
        el("div", { class: "msg-content", text: message.content }),
      );
      // In id order, whatever order the events came in (a backfill after a live event).
      const after = Array.from(list.children).find(
        (node) => Number(node.dataset.messageId) > message.id,
      );
      list.insertBefore(item, after || null);
      if (empty) empty.hidden = true;
      scrollToEnd();
    }

    function showPending() {
      if (!pendingLine) return;
      const states = Array.from(pending.values());
      if (!states.length) {
        pendingLine.hidden = true;
        pendingLine.replaceChildren();
        return;
      }
      const last = states[states.length - 1];
      pendingLine.dataset.kind = last.kind;
      pendingLine.replaceChildren(last.text, " ");
      pendingLine.append(
        el("a", { href: config.task_url.replace("__id__", encodeURIComponent(last.id)), text: "task" }),
      );
      pendingLine.hidden = false;
    }

    function track(taskId, kind, text) {
      pending.set(taskId, { id: taskId, kind, text });
      showPending();
    }

    function settle(taskId) {
      if (pending.delete(taskId)) showPending();
    }

    // The latest event of each run of this session, also of runs this page has not sent yet:
    // with a fast worker the reply can arrive on the socket before the POST's answer does.
    const latest = new Map();

    function apply(taskId, event) {
      if (event.type === "session.message") settle(taskId);
      else if (event.type === "task.started") track(taskId, "info", "The agent is thinking…");
      else if (event.type === "task.retried") {
        track(taskId, "info", `Retrying: ${event.message || "temporary failure"}…`);
      } else if (event.type === "task.failed") {
        track(taskId, "error", `No reply: ${event.message || "the run failed"}.`);
      } else if (event.type === "task.succeeded") {
        // A message delivered twice gets no second reply: the first one stands.
        settle(taskId);
      }
    }

    function onEvent(event) {
      if (!event) return;
      const message = event.type === "session.message" && event.data ? event.data.message : null;
      if (message) showMessage(message);
      const taskId = event.task_id;
      if (!taskId || (message && message.role !== "assistant")) return;
      latest.set(taskId, event);
      if (pending.has(taskId)) apply(taskId, event);
    }

    window.liveConnection({
      path: config.ws_path,
      query: config.ws_query,
      onMessage(data) {
        if (data.kind === "backfill") for (const event of data.events || []) onEvent(event);
        else if (data.kind === "event") onEvent(data.event);
      },
    });
    scrollToEnd();

    if (!form || !config.can_send) return;
    const text = $("#composer-text", form);
    const button = $("button[type=submit]", form);
    const csrf = $("input[name=csrfmiddlewaretoken]", form);

    async function send() {
      const value = text.value;
      if (!value.trim()) return;
      button.disabled = true;
      try {
        const response = await fetch(config.messages_url, {
          method: "POST",
          credentials: "same-origin",
          headers: {
            Accept: "application/json",
            "Content-Type": "application/json",
            "X-CSRFToken": csrf ? csrf.value : "",
          },
          body: JSON.stringify({ text: value }),
        });
        let body = null;
        try {
          body = await response.json();
        } catch (error) {
          body = null;
        }
        if (!response.ok) throw new Error(errorText(body) || `HTTP ${response.status}`);
        text.value = "";
        if (body.queued) {
          track(body.task_id, "info", "Sent: waiting for the agent…");
          if (latest.has(body.task_id)) apply(body.task_id, latest.get(body.task_id));
        } else {
          showMessage(body.message);
          showMessage(body.reply);
        }
      } catch (error) {
        pendingLine.dataset.kind = "error";
        pendingLine.replaceChildren(`Not sent: ${error.message}`);
        pendingLine.hidden = false;
      } finally {
        button.disabled = false;
        text.focus();
      }
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      send();
    });
    text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        send();
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const config = readJson("chat-config");
    if (config) chat(config);
  });
})();
