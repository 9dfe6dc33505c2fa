/*
 * Toasts: short messages in the corner of the page (#notice, in templates/scheduler/base.html),
 * a few at a time, each gone after a while or when closed. They say what the person's clicks
 * did (`notify`) and which alerts arrived live (lib/alerts.js).
 *
 * Data only ever reaches the DOM as text.
 */
import { $, el, showText } from "./dom.js";

const SHOWN_FOR = 7000;
// Older toasts give way to newer ones beyond this many.
const AT_MOST = 4;

function region() {
  let box = $("#notice");
  if (!box) {
    box = el("div", { id: "notice", role: "status", "aria-live": "polite", hidden: true });
    document.body.append(box);
  }
  return box;
}

/**
 * Shows `text` (and `link`: {href, text}) for `timeout` ms (0: until closed); `kind` is info,
 * error or alert. Returns the toast's element.
 */
export function toast(text, { kind = "info", link = null, timeout = SHOWN_FOR } = {}) {
  const box = region();
  const message = el("span", { class: "toast-text" });
  showText(message, text, link);
  const close = el("button", { type: "button", class: "toast-close", "aria-label": "Dismiss", text: "×" });
  const item = el("div", { class: "toast", "data-kind": kind }, message, close);
  const dismiss = () => {
    item.remove();
    if (!box.children.length) box.hidden = true;
  };
  close.addEventListener("click", dismiss);
  box.append(item);
  box.hidden = false;
  while (box.children.length > AT_MOST) box.firstElementChild.remove();
  if (timeout) setTimeout(dismiss, timeout);
  return item;
}

/** What a click did: "Queued task…", "Could not …" (kind info or error). */
export const notify = (text, kind = "info", link = null) => toast(text, { kind, link });
