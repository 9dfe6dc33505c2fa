/*
 * The chat page (templates/agents/chat.html): plain JavaScript modules, no build step, no
 * remote code.
 *
 * The server renders the conversation; this module sends what is typed to
 * POST /api/sessions/<id>/messages/ (session cookie + CSRF token), and shows every message of the
 * session as it arrives on the `/ws/events/?object=session:<id>` websocket (its `session.message`
 * events), so the agent's reply appears without a reload. It also follows the run that answers
 * (task.started / retried / failed events of the session) to say "thinking", "retrying" or why
 * no reply came. When the socket drops it reconnects with exponential back-off and says so in
 * the header (scheduler/lib/live.js); the backfill sent on each connection brings what was
 * missed meanwhile. Failures and incidents of the session and of its agent (a second, quiet
 * connection to `object=agent:<id>`: the runs of the agent's schedules) raise toasts
 * (scheduler/lib/alerts.js).
 *
 * Data only ever reaches the DOM as text (textContent, attributes): never as HTML.
 */
import { alertToasts } from "../scheduler/lib/alerts.js";
import { $, el, readJson, showText } from "../scheduler/lib/dom.js";
import { dateTimeFormatter, timeElement } from "../scheduler/lib/format.js";
import { fillId, postJson } from "../scheduler/lib/http.js";
import { liveConnection } from "../scheduler/lib/live.js";

/** The messages shown, in id order, each once. */
class Conversation {
  constructor(list, empty, format) {
    this.list = list;
    this.empty = empty;
    this.format = format;
    this.shown = new Set(
      Array.from(list.querySelectorAll("[data-message-id]"), (node) => Number(node.dataset.messageId)),
    );
  }

  scrollToEnd() {
    this.list.scrollTop = this.list.scrollHeight;
  }

  show(message, { fresh = true } = {}) {
    if (!message || typeof message.id !== "number" || this.shown.has(message.id)) return;
    this.shown.add(message.id);
    const item = el(
      "li",
      { class: `msg msg-${message.role}${fresh ? " fresh" : ""}`, "data-message-id": message.id },
      el(
        "div",
        { class: "msg-meta" },
        el("span", { class: "msg-role", text: message.role }),
        " ",
        timeElement(message.created_at, this.format),
      ),
      el("div", { class: "msg-content", text: message.content }),
    );
    // In id order, whatever order the events came in (a backfill after a live event).
    const after = Array.from(this.list.children).find(
      (node) => Number(node.dataset.messageId) > message.id,
    );
    this.list.insertBefore(item, after || null);
    if (this.empty) this.empty.hidden = true;
    this.scrollToEnd();
  }
}

/** The runs answering what was sent from this page, until their reply arrives: #pending. */
class PendingRuns {
  constructor(line, taskUrl) {
    this.line = line;
    this.taskUrl = taskUrl;
    // Task id -> {id, kind, text}.
    this.pending = new Map();
    // The latest event of each run of this session, also of runs this page has not sent yet:
    // with a fast worker the reply can arrive on the socket before the POST's answer does.
    this.latest = new Map();
  }

  render() {
    if (!this.line) return;
    const states = Array.from(this.pending.values());
    if (!states.length) {
      this.line.hidden = true;
      this.line.replaceChildren();
      return;
    }
    const last = states[states.length - 1];
    this.line.dataset.kind = last.kind;
    showText(this.line, last.text, { href: this.taskUrl(last.id), text: "task" });
    this.line.hidden = false;
  }

  track(taskId, kind, text) {
    this.pending.set(taskId, { id: taskId, kind, text });
    this.render();
  }

  settle(taskId) {
    if (this.pending.delete(taskId)) this.render();
  }

  /** A message sent: followed from now on, from the latest event already seen if any. */
  sent(taskId) {
    this.track(taskId, "info", "Sent: waiting for the agent…");
    if (this.latest.has(taskId)) this.apply(taskId, this.latest.get(taskId));
  }

  apply(taskId, event) {
    if (event.type === "session.message") this.settle(taskId);
    else if (event.type === "task.started") this.track(taskId, "info", "The agent is thinking…");
    else if (event.type === "task.retried") {
      this.track(taskId, "info", `Retrying: ${event.message || "temporary failure"}…`);
    } else if (event.type === "task.failed") {
      this.track(taskId, "error", `No reply: ${event.message || "the run failed"}.`);
    } else if (event.type === "task.succeeded") {
      // A message delivered twice gets no second reply: the first one stands.
      this.settle(taskId);
    }
  }

  event(taskId, event) {
    this.latest.set(taskId, event);
    if (this.pending.has(taskId)) this.apply(taskId, event);
  }

  failed(text) {
    this.line.dataset.kind = "error";
    this.line.replaceChildren(text);
    this.line.hidden = false;
  }
}

/** The form: Enter (or the button) sends, Shift+Enter makes a new line. */
function installComposer(form, config, conversation, runs) {
  const text = $("#composer-text", form);
  const button = $("button[type=submit]", form);
  const csrf = $("input[name=csrfmiddlewaretoken]", form);

  async function send() {
    const value = text.value;
    if (!value.trim()) return;
    button.disabled = true;
    try {
      const body = await postJson(config.messages_url, { text: value }, csrf ? csrf.value : "");
      text.value = "";
      if (body.queued) {
        runs.sent(body.task_id);
      } else {
        conversation.show(body.message);
        conversation.show(body.reply);
      }
    } catch (error) {
      runs.failed(`Not sent: ${error.message}`);
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

function chat(config) {
  const conversation = new Conversation($("#messages"), $("#messages-empty"), dateTimeFormatter(config.timezone));
  const runs = new PendingRuns($("#pending"), (id) => fillId(config.task_url, id));

  function onEvent(event) {
    if (!event) return;
    const message = event.type === "session.message" && event.data ? event.data.message : null;
    if (message) conversation.show(message);
    const taskId = event.task_id;
    if (!taskId || (message && message.role !== "assistant")) return;
    runs.event(taskId, event);
  }

  const alerts = alertToasts(config.alerts);
  liveConnection({
    path: config.ws_path,
    query: config.ws_query,
    onMessage(data) {
      if (data.kind === "backfill") for (const event of data.events || []) onEvent(event);
      else if (data.kind === "event") {
        onEvent(data.event);
        alerts.event(data.event);
      }
    },
  });
  if (config.alerts_query) {
    liveConnection({
      path: config.ws_path,
      query: config.alerts_query,
      quiet: true,
      onMessage(data) {
        if (data.kind === "event") alerts.event(data.event);
        // Said on the indicator, for whoever needs to know the agent's alerts arrive too.
        else if (data.kind === "backfill" && $("#connection")) $("#connection").dataset.alerts = "live";
      },
    });
  }
  conversation.scrollToEnd();

  const form = $("#composer");
  if (form && config.can_send) installComposer(form, config, conversation, runs);
}

const config = readJson("chat-config");
if (config) chat(config);
