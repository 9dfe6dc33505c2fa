/*
 * The JSON requests the pages make: with the session cookie, the CSRF token on a POST, and the
 * server's refusal as the error's message.
 */

/** A URL from a template the server gave (its "__id__" replaced by `id`). */
export const fillId = (template, id) => template.replace("__id__", encodeURIComponent(id));

export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

/** What an error response of the API says: its detail, or each field's complaints. */
export function errorText(body) {
  if (!body || typeof body !== "object") return "";
  if (typeof body.detail === "string") return body.detail;
  return Object.entries(body)
    .map(([field, value]) => `${field}: ${Array.isArray(value) ? value.join(" ") : value}`)
    .join("; ");
}

/** POSTs `data` as JSON; the answer's JSON (null if none), or an Error with what was refused.
 * `headers`: more request headers. */
export async function postJson(url, data = {}, token = csrfToken(), headers = {}) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: {
      Accept: "application/json",
      "Content-Type": "application/json",
      "X-CSRFToken": token,
      ...headers,
    },
    body: JSON.stringify(data),
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

/** GETs JSON: the answer's body, or null if the server refused. */
export async function getJson(url) {
  const response = await fetch(url, {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
  return response.ok ? response.json() : null;
}
